"""The predictor: v2 REST (+ repository load extension) over one pinned model version.

Routes follow the Open Inference Protocol; every response that touches the model
names the version it used (`model_version` and the `x-model-version` header).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

import castml
from castml.protocol.v2_tensors import (
    BINARY_HEADER,
    features_matrix,
    output_json,
    requested_outputs,
    tensors_from_json,
)
from castml.spec import ProjectSpec
from castml.web.asgi import App, Request, Response, json_response, new_request_id
from serving.errors import BadRequestError, NotFoundError
from serving.metrics import ServerMetrics
from serving.model_slot import MicroBatcher, ModelSlot
from serving.version_store import ServedModel

if TYPE_CHECKING:
    from serving.payload_log import PayloadLog
    from serving.worker_pin import SharedPin

SERVER_NAME = "castml-predictor"
VERSION_HEADER = b"x-model-version"
MATRIX_INPUT = "features"


def output_names(spec: ProjectSpec) -> list[str]:
    return (
        ["probability", "label", "latent"] if spec.is_classification else ["prediction", "latent"]
    )


def model_metadata(spec: ProjectSpec, served: ServedModel) -> dict[str, Any]:
    """Inputs and outputs as the model really takes and returns them."""
    n, latent = len(spec.features), served.model.manifest.latent_dim
    outputs = {
        "probability": ("FP32", [-1]),
        "label": ("INT64", [-1]),
        "prediction": ("FP32", [-1]),
        "latent": ("FP32", [-1, latent]),
    }
    return {
        "name": spec.name,
        "versions": [served.version],
        "platform": "castml_ae_gbm",
        "inputs": [{"name": MATRIX_INPUT, "datatype": "FP32", "shape": [-1, n]}],
        "outputs": [
            {"name": name, "datatype": outputs[name][0], "shape": outputs[name][1]}
            for name in output_names(spec)
        ],
        "parameters": {
            "feature_names": spec.feature_names,
            "layouts": (
                f"one FP32 [-1, {n}] tensor (any name) in feature_names order, "
                "or one FP32 [-1] tensor per feature named as in feature_names"
            ),
            "threshold": served.model.manifest.threshold,
        },
    }


class Predictor:
    def __init__(self, slot: ModelSlot, default_ref: str, max_rows: int, microbatch: bool) -> None:
        self.slot = slot
        self.spec = slot.spec
        self.default_ref = default_ref
        self.max_rows = max_rows
        self.metrics = slot.metrics or ServerMetrics("predictor")
        self.batcher = MicroBatcher(self.metrics, max_rows) if microbatch else None
        self.outputs = output_names(self.spec)
        self.feature_names = self.spec.feature_names  # a property that builds a list
        self.payload_log: PayloadLog | None = None  # set when CASTML_LOGGER_URL is
        self.pin: SharedPin | None = None  # set in a worker of `--workers > 1`
        self.rollout_timeout_s = 60.0  # how long a load call waits for the other workers

    def _served(self, request: Request) -> ServedModel:
        name = request.params.get("model")
        if name != self.spec.name:
            raise NotFoundError(f"unknown model '{name}'; this server serves '{self.spec.name}'")
        served = self.slot.current
        version = request.params.get("version")
        if version is not None and version != served.version:
            raise NotFoundError(
                f"model '{name}' version {version} is not loaded; "
                f"version {served.version} is served"
            )
        return served

    async def infer(self, request: Request) -> Response:
        started = time.perf_counter()
        served = self._served(request)
        body = request.body
        binary: memoryview | None = None
        json_length = request.headers.get(BINARY_HEADER)
        if json_length is not None:
            if not json_length.isdigit() or int(json_length) > len(body):
                raise BadRequestError(f"header {BINARY_HEADER} does not fit the body")
            binary = memoryview(body)[int(json_length) :]
            request.body = body[: int(json_length)]
        payload = request.json()
        x = features_matrix(tensors_from_json(payload, binary), self.feature_names, self.max_rows)
        wanted = requested_outputs(payload, self.outputs)
        request_id = payload.get("id") or request.headers.get("x-request-id") or new_request_id()
        decoded = time.perf_counter()
        self.metrics.decode.observe(decoded - started)
        if self.batcher is not None:
            out = await self.batcher.submit(served, x)
        else:
            out = served.model.predict(x)
            self.metrics.predict.observe(time.perf_counter() - decoded)
        encoding = time.perf_counter()
        response = json_response(
            {
                "model_name": served.project,
                "model_version": served.version,
                "id": str(request_id),
                "outputs": [output_json(name, out[name]) for name in wanted],
            },
            headers=[(VERSION_HEADER, served.version.encode())],
        )
        if self.payload_log is not None:
            self.payload_log.record(
                str(request_id),
                request.body if binary is None else None,
                x,
                served.project,
                served.version,
                out,
                wanted,
                response.body,
            )
        done = time.perf_counter()
        self.metrics.encode.observe(done - encoding)
        self.metrics.total.observe(done - started)
        self.metrics.rows_child.inc(len(x))
        return response

    def predict_arrays(self, served: ServedModel, x: np.ndarray) -> dict[str, np.ndarray]:
        """The gRPC path (worker threads): a direct model call."""
        started = time.perf_counter()
        out = served.model.predict(x)
        self.metrics.predict.observe(time.perf_counter() - started)
        self.metrics.rows_child.inc(len(x))
        return out

    async def live(self, request: Request) -> Response:
        return json_response({"live": True})

    async def ready(self, request: Request) -> Response:
        served = self.slot.current  # NotReadyError -> 503 until the first load
        return json_response({"ready": True}, headers=[(VERSION_HEADER, served.version.encode())])

    async def server_metadata(self, request: Request) -> Response:
        return json_response(
            {
                "name": SERVER_NAME,
                "version": castml.__version__,
                "extensions": ["model_repository", "binary_tensor_data"],
            }
        )

    async def metadata(self, request: Request) -> Response:
        served = self._served(request)
        return json_response(
            model_metadata(self.spec, served), headers=[(VERSION_HEADER, served.version.encode())]
        )

    async def model_ready(self, request: Request) -> Response:
        served = self._served(request)
        return json_response(
            {"name": served.project, "ready": True, "version": served.version},
            headers=[(VERSION_HEADER, served.version.encode())],
        )

    async def repository_index(self, request: Request) -> Response:
        rows = []
        if self.slot.ready:
            served = self.slot.current
            rows.append({"name": served.project, "version": served.version, "state": "READY"})
        return json_response(rows)

    async def load(self, request: Request) -> Response:
        name = request.params.get("model")
        if name != self.spec.name:
            raise NotFoundError(f"unknown model '{name}'; this server serves '{self.spec.name}'")
        ref = self.default_ref
        if request.body.strip():
            payload = request.json()
            if not isinstance(payload, dict):
                raise BadRequestError(
                    'a load request is a JSON object, e.g. {"parameters": {"version": "3"}}'
                )
            params = payload.get("parameters") or {}
            raw = (params.get("version") if isinstance(params, dict) else None) or payload.get(
                "version"
            )
            if raw is not None:
                if not isinstance(raw, str | int) or isinstance(raw, bool) or not str(raw).strip():
                    raise BadRequestError("'version' must be a version number or an alias name")
                ref = str(raw)
        result = await self.slot.load(ref)
        answer: dict[str, Any] = {
            "name": name,
            "version": result.version,
            "previous_version": result.previous,
            "switched": result.switched,
            "load_ms": result.load_ms,
        }
        if self.pin is not None:
            # This worker has loaded and smoke-tested the version; now the others follow.
            self.pin.pin(result.version)
            self.pin.report(result.version)
            rollout = await self.pin.wait(result.version, self.rollout_timeout_s)
            answer["workers"] = {"serving": rollout.serving, "of": rollout.workers}
        return json_response(answer, headers=[(VERSION_HEADER, result.version.encode())])

    async def metrics_endpoint(self, request: Request) -> Response:
        body, content_type = self.metrics.render()
        return Response(body, 200, content_type)


def build_app(predictor: Predictor, max_body_bytes: int) -> App:
    app = App(max_body_bytes)
    p = predictor
    app.route("GET", "/v2/health/live", p.live)
    app.route("GET", "/v2/health/ready", p.ready)
    app.route("GET", "/v2", p.server_metadata)
    app.route("GET", "/metrics", p.metrics_endpoint)
    for prefix in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
        app.route("GET", prefix, p.metadata)
        app.route("GET", f"{prefix}/ready", p.model_ready)
        app.route("POST", f"{prefix}/infer", p.infer)
    app.route("POST", "/v2/repository/index", p.repository_index)
    app.route("POST", "/v2/repository/models/{model}/load", p.load)
    return app
