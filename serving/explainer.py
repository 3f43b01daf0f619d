"""The explainer: SHAP over the raw features of the version the predictor serves.

It asks the predictor which version it serves on each request (one small GET), and
switches its own copy to that version, so an explanation always matches the served
model. The background is the sample logged with that version. Its work is KServe's
hooks: `preprocess` (validate), `explain`, `postprocess` (the answer); the REST routes
only read the request and write the answer.

A typed version (categoricals, missing values, derived calendar parts) is explained in
its encoded space, which keeps one column per raw feature (a category's code, an imputed
value) plus one per derived feature: the attribution of `occupation` is that of its code,
and each answer shows the raw value the client sent.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from castml.data.tabular_encoding import EncodingError
from castml.protocol.v2_tensors import feature_columns, features_matrix, tensors_from_json
from castml.shapley import shapley
from castml.web.asgi import App, Request, Response, encode_header, json_response, new_request_id
from serving import anchors
from serving.errors import BadRequestError, MethodUnavailableError, NotFoundError
from serving.metrics import ServerMetrics
from serving.model_slot import ModelSlot
from serving.predictor_client import PredictorClient
from serving.predictor_core import encoding_problems
from serving.server import version_source
from serving.settings import ServingSettings
from serving.transformer import Inputs, row_count
from serving.validation import FeatureValidator, TypedValidator, is_typed
from serving.version_store import ServedModel, startup_spec

METHOD = "shap-permutation-antithetic"
MAX_INSTANCES = 16
MAX_PERMUTATIONS = 64


class Explainer:
    def __init__(self, settings: ServingSettings, project: str | None = None) -> None:
        self.settings = settings
        self.spec = startup_spec(
            project or settings.project,
            settings.model_version,
            lambda name: version_source(settings, name),
        )
        self.typed = is_typed(self.spec)
        # Attributions are per model input: the raw features, then any derived ones.
        self.names = self.spec.model_input_names if self.typed else self.spec.feature_names
        self.metrics = ServerMetrics("explainer")
        self.slot = ModelSlot(version_source(settings, self.spec.name), self.spec, self.metrics)
        self.validator = FeatureValidator(self.spec, MAX_INSTANCES)
        self.typed_validator = TypedValidator(self.spec, MAX_INSTANCES)
        self.predictor = PredictorClient(
            settings.predictor_url, self.spec.name, settings.predictor_timeout_s
        )

    async def served(self) -> ServedModel:
        """The version the predictor serves now, loaded here too if it is new."""
        meta = await self.predictor.get(f"/v2/models/{self.spec.name}")
        version = str(meta["versions"][0])
        if not self.slot.ready or self.slot.current.version != version:
            await self.slot.load(version)
        return self.slot.current

    # KServe's hooks

    def preprocess(self, payload: Any, v2: bool) -> tuple[Inputs, dict[str, Any], bool]:
        """The rows to explain (validated like the transformer's; raw columns by feature
        for a typed spec, encoded once the version is known), the options, and whether
        the request is a batch."""
        if v2:
            x: Inputs
            if self.typed:
                tensors = tensors_from_json(payload, nulls=True)
                x = feature_columns(tensors, self.spec.feature_names, MAX_INSTANCES)
            else:
                x = features_matrix(
                    tensors_from_json(payload), self.spec.feature_names, MAX_INSTANCES
                )
                self.validator.check_values(x.astype(np.float64), batch=len(x) > 1)
            options = payload.get("parameters") or {}
            if not isinstance(options, dict):
                raise BadRequestError("'parameters' must be an object")
            return x, options, row_count(x) > 1
        if not isinstance(payload, dict) or ("features" in payload) == ("instances" in payload):
            raise BadRequestError(
                'send {"features": {...}} or {"instances": [{...}]}, optionally with '
                '"method": "shap"|"anchors", "top_k", "permutations", "chart", "threshold"'
            )
        batch = "instances" in payload
        records = payload["instances"] if batch else [payload["features"]]
        if not isinstance(records, list):
            raise BadRequestError("'instances' must be a list of records")
        if self.typed:
            return self.typed_validator.records(records, batch), payload, batch
        return self.validator.records(records, batch), payload, batch

    async def explain(
        self, inputs: Inputs, options: dict[str, Any]
    ) -> tuple[ServedModel, list[dict[str, Any]]]:
        """One explanation per row, by the version the predictor serves now."""
        method = options.get("method", "shap")
        top_k = _bounded_int(options, "top_k", self.settings.top_k, 1, len(self.names))
        permutations = _bounded_int(
            options, "permutations", self.settings.shap_permutations, 2, MAX_PERMUTATIONS
        )
        chart = options.get("chart", True)
        if method not in ("shap", "anchors") or not isinstance(chart, bool):
            raise BadRequestError("'method' must be 'shap' or 'anchors'; 'chart' a boolean")
        threshold = _bounded_float(
            options, "threshold", anchors.DEFAULT_THRESHOLD, anchors.MIN_THRESHOLD, 1.0
        )
        if method == "anchors" and not self.spec.is_classification:
            raise BadRequestError(
                f"method 'anchors' explains a classifier's label; '{self.spec.name}' is a "
                "regression project, use method 'shap'"
            )
        if method == "anchors" and self.typed:
            raise BadRequestError(
                f"method 'anchors' explains all-float projects; '{self.spec.name}' has typed "
                "features, use method 'shap'"
            )
        if method == "anchors" and not anchors.available():
            raise MethodUnavailableError(anchors.INSTALL_HINT)
        served = await self.served()
        x, shown = self._model_rows(served, inputs)
        if method == "anchors":
            results = [
                await asyncio.to_thread(anchors.anchors, served, row, threshold) for row in x
            ]
        else:
            results = [
                await asyncio.to_thread(
                    self._shap, served, row, top_k, permutations, chart, shown[i]
                )
                for i, row in enumerate(x)
            ]
        return served, results

    def _model_rows(
        self, served: ServedModel, inputs: Inputs
    ) -> tuple[np.ndarray, list[list[Any]]]:
        """The model's input rows, and per row the values each answer shows: the raw ones
        the client sent (then any derived ones, as computed)."""
        if not isinstance(inputs, dict):
            return inputs, [[float(v) for v in row] for row in inputs]
        assert served.encoding is not None  # a typed spec's version carries its encoding
        try:
            x = served.encoding.encode(inputs, np.float32)
        except EncodingError as exc:
            raise encoding_problems(exc) from None
        raw = [inputs[name].tolist() for name in self.spec.feature_names]
        width = len(raw)
        shown = [
            [column[i] for column in raw] + [float(v) for v in x[i, width:]] for i in range(len(x))
        ]
        return x, shown

    def postprocess(
        self,
        served: ServedModel,
        results: list[dict[str, Any]],
        request_id: str,
        elapsed_ms: float,
        batch: bool,
    ) -> dict[str, Any]:
        for result in results:
            result.update(
                model_version=served.label, request_id=request_id, processing_time_ms=elapsed_ms
            )
        if batch:
            return {"explanations": results, "model_version": served.label}
        return results[0]

    # REST routes: read the request, run the hooks, write the answer

    def _check_model(self, request: Request) -> None:
        name = request.params.get("model")
        if name != self.spec.name:
            raise NotFoundError(f"unknown model '{name}'; this endpoint serves '{self.spec.name}'")

    async def _serve(self, request: Request, v2: bool) -> Response:
        self._check_model(request)
        x, options, batch = self.preprocess(request.json(), v2)
        started = time.perf_counter()
        served, results = await self.explain(x, options)
        request_id = request.headers.get("x-request-id") or new_request_id()
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        self.metrics.total.observe(elapsed / 1000)
        answer = self.postprocess(served, results, request_id, elapsed, batch)
        headers = [
            (b"x-model-version", served.version.encode()),
            (b"x-request-id", encode_header(request_id)),
        ]
        return json_response(answer, headers=headers)

    async def explain_v1(self, request: Request) -> Response:
        return await self._serve(request, v2=False)

    async def explain_v2(self, request: Request) -> Response:
        return await self._serve(request, v2=True)

    def _shap(
        self,
        served: ServedModel,
        row: np.ndarray,
        top_k: int,
        permutations: int,
        chart: bool,
        shown: list[Any],
    ) -> dict[str, Any]:
        if served.background is None:
            raise MethodUnavailableError(
                f"version {served.version} has no explainer background logged; re-register it"
            )
        background = served.background[: self.settings.shap_background_rows]
        result = shapley(served.model.score, row, background, permutations)
        names = self.names
        order = np.argsort(-np.abs(result.phi), kind="stable")[:top_k]
        top = [
            {"feature": names[j], "value": shown[j], "attribution": float(result.phi[j])}
            for j in order
        ]
        body: dict[str, Any] = {
            "method": METHOD,
            "output": "probability" if self.spec.is_classification else "prediction",
            "base_value": result.base_value,
            "prediction": result.prediction,
            "attributions": dict(zip(names, result.phi.tolist(), strict=True)),
            "top_features": top,
            "local_accuracy_error": result.local_accuracy_error,
            "background_rows": len(background),
            "permutations": permutations,
        }
        if chart:
            from serving.attribution_chart import attribution_png

            body["chart_png_base64"] = attribution_png(
                top,
                result.base_value,
                result.prediction,
                f"{served.label}: top {len(top)} features",
            )
        return body

    async def live(self, request: Request) -> Response:
        return json_response({"live": True})

    async def ready(self, request: Request) -> Response:
        served = await self.served()
        return json_response({"ready": True, "version": served.version})

    async def metrics_endpoint(self, request: Request) -> Response:
        body, content_type = self.metrics.render()
        return Response(body, 200, content_type)


def _bounded_int(options: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = options.get(key, default)
    if type(value) is not int or not low <= value <= high:
        raise BadRequestError(f"'{key}' must be an integer in [{low}, {high}]")
    return value


def _bounded_float(
    options: dict[str, Any], key: str, default: float, low: float, high: float
) -> float:
    value = options.get(key, default)
    if type(value) not in (int, float) or not low <= value <= high:
        raise BadRequestError(f"'{key}' must be a number in [{low}, {high}]")
    return float(value)


def explainer_app(settings: ServingSettings, project: str | None = None) -> App:
    e = Explainer(settings, project)
    app = App(settings.max_body_bytes)
    app.route("POST", "/v1/models/{model}:explain", e.explain_v1)
    app.route("POST", "/v2/models/{model}/explain", e.explain_v2)
    app.route("GET", "/v2/health/live", e.live)
    app.route("GET", "/v2/health/ready", e.ready)
    app.route("GET", "/metrics", e.metrics_endpoint)

    async def warm() -> None:
        import serving.attribution_chart  # noqa: F401  matplotlib's import would otherwise land on a request

    app.on_startup.append(warm)
    app.on_shutdown.append(e.predictor.close)
    return app
