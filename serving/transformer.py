"""The transformer: the public endpoint. Named JSON in, validated, v2 tensors to the predictor.

Its work is KServe's hooks: `preprocess` (validate the body into an `[N, F]` matrix),
`predict` (the predictor's infer, over v2 REST or gRPC: `--predictor_protocol`, see
`serving.predictor_client`; the answer is the same either way), `postprocess` (the
public answer, `castml.protocol.transformer_answer`). The REST routes only read the
request and write the answer.

Confidence bands. With threshold t and probability p, the margin is how far p lies
from t towards the end of its side, in [0, 1]:
    margin = (p - t) / (1 - t)   when p >= t   (the defect side)
    margin = (t - p) / t         when p <  t   (the ok side)
`high` when margin >= CASTML_CONFIDENCE_HIGH (0.5), `medium` when margin >=
CASTML_CONFIDENCE_MEDIUM (0.2), otherwise `low`. A probability at the threshold is as
uncertain as the model gets; one at 0 or 1 is as sure. The threshold comes with every
infer reply (`parameters.threshold`), so no metadata call is needed when versions change.

Typed specs (categoricals, ints, datetimes, imputed missing values): records are checked
field by field (`serving.validation.TypedValidator`) and forwarded as raw columns, one v2
tensor per feature (BYTES for text); the predictor encodes them with the served version's
vocabularies. A project that is not bundled gets its spec from its registered version.
`latent_features` is empty for a family without a latent output.

Payload logging is the predictor's alone, in both modes: the transformer forwards the
request id the client sent (x-request-id, or v2's `id`), or the one it made and answers
with, and the predictor logs the request under it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from castml.protocol.transformer_answer import (
    CONFIDENCE_BANDS,
    batch_answer,
    instance_answers,
)
from castml.protocol.v2_tensors import (
    feature_columns,
    features_matrix,
    output_json,
    tensors_from_json,
)
from castml.web.asgi import App, Request, Response, encode_header, json_response, new_request_id
from serving.errors import BadRequestError, NotFoundError
from serving.metrics import ServerMetrics
from serving.predictor_client import predictor_client
from serving.predictor_reply import InferReply
from serving.settings import ServingSettings
from serving.validation import FeatureValidator, TypedValidator, is_typed
from serving.version_store import startup_spec

# What preprocess hands on: the all-float `[N, F]` matrix, or raw typed columns by feature.
Inputs = np.ndarray | dict[str, np.ndarray]


def row_count(x: Inputs) -> int:
    return len(x) if isinstance(x, np.ndarray) else len(next(iter(x.values())))


def confidence(probability: np.ndarray, threshold: float, high: float, medium: float) -> list[str]:
    p = probability.astype(np.float64)
    margin = np.where(
        p >= threshold,
        (p - threshold) / max(1 - threshold, 1e-12),
        (threshold - p) / max(threshold, 1e-12),
    )
    level = (margin >= medium).astype(np.int8) + (margin >= high)  # 0 low, 1 medium, 2 high
    return np.asarray(CONFIDENCE_BANDS)[level].tolist()  # type: ignore[no-any-return]


@dataclass
class Call:
    """One request's state, carried from `preprocess` to `postprocess`."""

    request_id: str
    started: float
    v2: bool  # a plain v2 request, answered in v2
    batch: bool = False  # v1 `instances`: answered as a batch


class Transformer:
    def __init__(self, settings: ServingSettings, project: str | None = None) -> None:
        self.settings = settings
        from serving.server import version_source  # asked only for an unbundled project

        self.spec = startup_spec(
            project or settings.project,
            settings.model_version,
            lambda name: version_source(settings, name),
        )
        self.typed = is_typed(self.spec)
        self.validator = FeatureValidator(self.spec, settings.max_batch_rows)
        self.typed_validator = TypedValidator(self.spec, settings.max_batch_rows)
        self.client = predictor_client(
            settings.predictor_protocol,
            settings.predictor_url,
            self.spec.name,
            settings.predictor_timeout_s,
        )
        self.metrics = ServerMetrics("transformer")
        names = self.spec.class_names or ("negative", "positive")
        self.class_names = np.asarray(names, dtype=object)

    # KServe's hooks

    def preprocess(self, payload: Any, call: Call) -> Inputs:
        """The body, every field validated (400 naming each problem), as `[N, F]` float32
        (raw columns by feature for a typed spec)."""
        if call.v2 and self.typed:
            tensors = tensors_from_json(payload, nulls=True)
            if payload.get("id"):
                call.request_id = str(payload["id"])
            # Per value, the predictor's encoder checks them (types, vocabularies, missing).
            return feature_columns(tensors, self.spec.feature_names, self.settings.max_batch_rows)
        if call.v2:
            x = features_matrix(
                tensors_from_json(payload), self.spec.feature_names, self.settings.max_batch_rows
            )
            self.validator.check_values(x.astype(np.float64), batch=len(x) > 1)
            if payload.get("id"):
                call.request_id = str(payload["id"])
            return x
        if not isinstance(payload, dict) or ("features" in payload) == ("instances" in payload):
            raise BadRequestError(
                'send {"features": {<name>: <value>, ...}} or {"instances": [{...}, ...]}'
            )
        call.batch = "instances" in payload
        records = payload["instances"] if call.batch else [payload["features"]]
        if not isinstance(records, list):
            raise BadRequestError("'instances' must be a list of records")
        if self.typed:
            return self.typed_validator.records(records, call.batch)
        return self.validator.records(records, call.batch)

    async def predict(self, x: Inputs, call: Call, version: str | None) -> InferReply:
        """The predictor's answer; it logs the request under `call.request_id`."""
        return await self.client.infer(x, call.request_id, version)

    def postprocess(self, reply: InferReply, call: Call) -> dict[str, Any]:
        """The public answer (`TransformerAnswer`), or a v2 answer with `class` and `confidence`."""
        out = reply.outputs
        if call.v2:
            return self._v2_answer(reply, call)
        latent = (
            out["latent"].astype(np.float64).round(6).tolist()
            if "latent" in out
            else [[] for _ in range(len(next(iter(out.values()))))]  # the family has none
        )
        version = f"{self.spec.name}/{reply.model_version}"
        elapsed = round((time.perf_counter() - call.started) * 1000, 3)
        if self.spec.is_classification:
            probability = out["probability"].astype(np.float64)
            objects = instance_answers(
                version,
                call.request_id,
                elapsed,
                latent,
                classes=self.class_names[out["label"].astype(np.int64)].tolist(),
                probabilities=probability.round(6).tolist(),
                bands=self._bands(probability, reply.threshold),
            )
        else:
            values = out["prediction"].astype(np.float64).tolist()
            objects = instance_answers(version, call.request_id, elapsed, latent, values=values)
        return batch_answer(objects) if call.batch else objects[0]

    def _v2_answer(self, reply: InferReply, call: Call) -> dict[str, Any]:
        out = reply.outputs
        outputs = [output_json(name, values) for name, values in out.items()]
        if self.spec.is_classification:
            n = len(out["label"])
            classes = self.class_names[out["label"].astype(np.int64)].tolist()
            bands = self._bands(out["probability"], reply.threshold)
            outputs.append({"name": "class", "datatype": "BYTES", "shape": [n], "data": classes})
            outputs.append({"name": "confidence", "datatype": "BYTES", "shape": [n], "data": bands})
        return {
            "model_name": self.spec.name,
            "model_version": reply.model_version,
            "id": call.request_id,
            "outputs": outputs,
        }

    def _bands(self, probability: np.ndarray, threshold: float) -> list[str]:
        return confidence(
            probability, threshold, self.settings.confidence_high, self.settings.confidence_medium
        )

    # REST routes: read the request, run the hooks, write the answer

    def _check_model(self, request: Request) -> None:
        name = request.params.get("model")
        if name != self.spec.name:
            raise NotFoundError(f"unknown model '{name}'; this endpoint serves '{self.spec.name}'")

    async def _serve(self, request: Request, v2: bool) -> Response:
        started = time.perf_counter()
        self._check_model(request)
        call = Call(request.headers.get("x-request-id") or new_request_id(), started, v2)
        x = self.preprocess(request.json(), call)
        self.metrics.decode.observe(time.perf_counter() - started)
        reply = await self.predict(x, call, request.params.get("version"))
        answer = self.postprocess(reply, call)
        response = json_response(
            answer,
            headers=[
                (b"x-model-version", reply.model_version.encode()),
                (b"x-request-id", encode_header(call.request_id)),
            ],
        )
        self.metrics.total.observe(time.perf_counter() - started)
        self.metrics.rows_child.inc(row_count(x))
        return response

    async def predict_v1(self, request: Request) -> Response:
        return await self._serve(request, v2=False)

    async def infer_v2(self, request: Request) -> Response:
        """Plain v2 with named inputs: validated like the JSON records, answered in v2."""
        return await self._serve(request, v2=True)

    async def live(self, request: Request) -> Response:
        return json_response({"live": True})

    async def ready(self, request: Request) -> Response:
        return json_response({"ready": await self.client.ready()})

    async def metadata(self, request: Request) -> Response:
        self._check_model(request)
        return json_response(await self.client.metadata())

    async def close(self) -> None:
        await self.client.close()

    async def metrics_endpoint(self, request: Request) -> Response:
        body, content_type = self.metrics.render()
        return Response(body, 200, content_type)


def transformer_app(settings: ServingSettings, project: str | None = None) -> App:
    t = Transformer(settings, project)
    app = App(settings.max_body_bytes)
    app.route("POST", "/v1/models/{model}:predict", t.predict_v1)
    app.route("POST", "/v2/models/{model}/infer", t.infer_v2)
    app.route("POST", "/v2/models/{model}/versions/{version}/infer", t.infer_v2)
    app.route("GET", "/v2/models/{model}", t.metadata)
    app.route("GET", "/v2/health/live", t.live)
    app.route("GET", "/v2/health/ready", t.ready)
    app.route("GET", "/metrics", t.metrics_endpoint)
    app.on_shutdown.append(t.close)
    return app
