"""The transformer: the public endpoint. Named JSON in, validated, v2 tensors to the predictor.

Confidence bands. With threshold t and probability p, the margin is how far p lies
from t towards the end of its side, in [0, 1]:
    margin = (p - t) / (1 - t)   when p >= t   (the defect side)
    margin = (t - p) / t         when p <  t   (the ok side)
`high` when margin >= CASTML_CONFIDENCE_HIGH (0.5), `medium` when margin >=
CASTML_CONFIDENCE_MEDIUM (0.2), otherwise `low`. A probability at the threshold is as
uncertain as the model gets; one at 0 or 1 is as sure.

The predictor is called over v2 REST or v2 gRPC (`--predictor_protocol`, see
`serving.predictor_client`); the answer is the same either way. With
`CASTML_LOGGER_URL` set, each successful request and its answer are posted to the
collector as the KServe logger's CloudEvents (component `transformer`), under the
request id the client gets back, which is also the id the predictor logs under.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from castml.protocol.v2_tensors import features_matrix, output_json, tensors_from_json
from castml.spec import load_spec
from castml.web.asgi import App, Request, Response, json_response, new_request_id
from serving.errors import BadRequestError, NotFoundError
from serving.metrics import ServerMetrics
from serving.predictor_client import InferReply, predictor_client
from serving.settings import ServingSettings
from serving.validation import FeatureValidator

if TYPE_CHECKING:
    from serving.payload_log import PayloadLog

BANDS = ("low", "medium", "high")


def confidence(probability: np.ndarray, threshold: float, high: float, medium: float) -> list[str]:
    p = probability.astype(np.float64)
    margin = np.where(
        p >= threshold,
        (p - threshold) / max(1 - threshold, 1e-12),
        (threshold - p) / max(threshold, 1e-12),
    )
    level = (margin >= medium).astype(np.int8) + (margin >= high)  # 0 low, 1 medium, 2 high
    return [BANDS[i] for i in level.tolist()]


class Transformer:
    def __init__(self, settings: ServingSettings, project: str | None = None) -> None:
        self.settings = settings
        self.spec = load_spec(project or settings.project)
        self.validator = FeatureValidator(self.spec, settings.max_batch_rows)
        self.client = predictor_client(
            settings.predictor_protocol,
            settings.predictor_url,
            self.spec.name,
            settings.predictor_timeout_s,
        )
        self.metrics = ServerMetrics("transformer")
        self.payload_log: PayloadLog | None = None
        if settings.logger_url:
            from serving.payload_log import payload_log  # httpx only when logging is on

            self.payload_log = payload_log(
                settings, self.spec.name, (), self.metrics, component="transformer"
            )

    def _check_model(self, request: Request) -> None:
        name = request.params.get("model")
        if name != self.spec.name:
            raise NotFoundError(f"unknown model '{name}'; this endpoint serves '{self.spec.name}'")

    async def predict_v1(self, request: Request) -> Response:
        started = time.perf_counter()
        self._check_model(request)
        payload = request.json()
        request_id = request.headers.get("x-request-id") or new_request_id()
        if not isinstance(payload, dict) or ("features" in payload) == ("instances" in payload):
            raise BadRequestError(
                'send {"features": {<name>: <value>, ...}} or {"instances": [{...}, ...]}'
            )
        batch = "instances" in payload
        records = payload["instances"] if batch else [payload["features"]]
        if not isinstance(records, list):
            raise BadRequestError("'instances' must be a list of records")
        x = self.validator.records(records, batch)
        self.metrics.decode.observe(time.perf_counter() - started)
        reply = await self.client.infer(x, request_id)
        objects = await self._objects(reply, request_id, started)
        self.metrics.total.observe(time.perf_counter() - started)
        self.metrics.rows_child.inc(len(x))
        headers = [
            (b"x-model-version", reply.model_version.encode()),
            (b"x-request-id", request_id.encode()),
        ]
        if not batch:
            response = json_response(objects[0], headers=headers)
        else:
            response = json_response(
                {
                    "predictions": objects,
                    "model_version": objects[0]["model_version"],
                    "request_id": request_id,
                    "processing_time_ms": objects[0]["processing_time_ms"],
                },
                headers=headers,
            )
        if self.payload_log is not None:
            self.payload_log.emit(request_id, request.body, response.body)
        return response

    async def _threshold(self, reply: InferReply) -> float:
        if reply.threshold is not None:  # gRPC replies carry it
            return reply.threshold
        return await self.client.model_threshold(reply.model_version)

    async def _objects(
        self, reply: InferReply, request_id: str, started: float
    ) -> list[dict[str, Any]]:
        out = reply.outputs
        version = f"{self.spec.name}/{reply.model_version}"
        latent = out["latent"].astype(np.float64).round(6).tolist()
        elapsed = round((time.perf_counter() - started) * 1000, 3)
        common = {"model_version": version, "request_id": request_id, "processing_time_ms": elapsed}
        if not self.spec.is_classification:
            values = out["prediction"].astype(np.float64).tolist()
            return [
                {"prediction": {"value": v}, "latent_features": lat, **common}
                for v, lat in zip(values, latent, strict=True)
            ]
        threshold = await self._threshold(reply)
        names = self.spec.class_names or ("negative", "positive")
        probability = out["probability"].astype(np.float64)
        bands = confidence(
            probability, threshold, self.settings.confidence_high, self.settings.confidence_medium
        )
        return [
            {
                "prediction": {
                    "class": names[int(label)],
                    "probability": round(p, 6),
                    "confidence": band,
                },
                "latent_features": lat,
                **common,
            }
            for p, label, band, lat in zip(
                probability.tolist(), out["label"].tolist(), bands, latent, strict=True
            )
        ]

    async def infer_v2(self, request: Request) -> Response:
        """Plain v2 with named inputs: validated like the JSON records, answered in v2."""
        started = time.perf_counter()
        self._check_model(request)
        payload = request.json()
        x = features_matrix(
            tensors_from_json(payload), self.spec.feature_names, self.settings.max_batch_rows
        )
        self.validator.check_values(x.astype(np.float64), batch=len(x) > 1)
        request_id = str(
            payload.get("id") or request.headers.get("x-request-id") or new_request_id()
        )
        reply = await self.client.infer(x, request_id, request.params.get("version"))
        out = reply.outputs
        outputs = [output_json(name, values) for name, values in out.items()]
        if self.spec.is_classification:
            threshold = await self._threshold(reply)
            names = self.spec.class_names or ("negative", "positive")
            bands = confidence(
                out["probability"],
                threshold,
                self.settings.confidence_high,
                self.settings.confidence_medium,
            )
            n = len(bands)
            outputs.append(
                {
                    "name": "class",
                    "datatype": "BYTES",
                    "shape": [n],
                    "data": [names[int(v)] for v in out["label"].tolist()],
                }
            )
            outputs.append({"name": "confidence", "datatype": "BYTES", "shape": [n], "data": bands})
        response = json_response(
            {
                "model_name": self.spec.name,
                "model_version": reply.model_version,
                "id": request_id,
                "outputs": outputs,
            },
            headers=[(b"x-model-version", reply.model_version.encode())],
        )
        if self.payload_log is not None:
            self.payload_log.emit(request_id, request.body, response.body)
        self.metrics.total.observe(time.perf_counter() - started)
        return response

    async def live(self, request: Request) -> Response:
        return json_response({"live": True})

    async def ready(self, request: Request) -> Response:
        return json_response({"ready": await self.client.ready()})

    async def metadata(self, request: Request) -> Response:
        self._check_model(request)
        return json_response(await self.client.metadata())

    async def close(self) -> None:
        await self.client.close()
        if self.payload_log is not None:
            # What the collector has not taken within the grace period counts as unsent.
            await asyncio.to_thread(self.payload_log.close, 3.0)

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
