"""The predictor's one core (KServe's DataPlane): what infer, metadata, readiness and load
mean, whatever the protocol.

The adapters only translate: `serving.predictor` (v2 REST) and `serving.grpc_server`
(v2 gRPC) decode a request into (model, version, `[N, F]` matrix, wanted outputs, id),
call `PredictorCore.infer`, and encode the `Inference` it returns. So both protocols
share the served-version check, the micro-batcher, the stage metrics, the `threshold`
parameter and the payload log. Both run on one event loop (gRPC is a `grpc.aio` server).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

import castml
from castml.protocol.v2_tensors import Tensor, features_matrix
from castml.spec import ProjectSpec
from castml.web.asgi import new_request_id
from serving.errors import BadRequestError, NotFoundError
from serving.metrics import ServerMetrics
from serving.model_slot import MicroBatcher, ModelSlot
from serving.version_store import ServedModel

if TYPE_CHECKING:
    from serving.payload_log import PayloadLog
    from serving.worker_pin import SharedPin

SERVER_NAME = "castml-predictor"
MATRIX_INPUT = "features"
EXTENSIONS = ("model_repository", "binary_tensor_data")


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


@dataclass(frozen=True)
class Inference:
    """One answered infer: what both adapters encode."""

    served: ServedModel
    x: np.ndarray
    outputs: dict[str, np.ndarray]  # every output of the model
    wanted: list[str]  # the ones the client asked for, in its order
    request_id: str
    started: float  # perf_counter() when the request's decoding began

    @property
    def threshold(self) -> float:
        """The served version's decision threshold: the `threshold` response parameter, so a
        client (the transformer) needs no metadata call per version."""
        return float(self.served.model.manifest.threshold)


class PredictorCore:
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

    def check_model(self, name: str | None) -> None:
        if name != self.spec.name:
            raise NotFoundError(f"unknown model '{name}'; this server serves '{self.spec.name}'")

    def served(self, name: str | None, version: str | None = None) -> ServedModel:
        """The served version, if it is the one the request names (version: any when unset)."""
        self.check_model(name)
        served = self.slot.current  # NotReadyError (503) until the first load
        if version and version != served.version:
            raise NotFoundError(
                f"model '{name}' version {version} is not loaded; "
                f"version {served.version} is served"
            )
        return served

    @property
    def ready(self) -> bool:
        return self.slot.ready

    def matrix(self, tensors: list[Tensor]) -> np.ndarray:
        if not tensors:
            raise BadRequestError("the request has no inputs")
        return features_matrix(tensors, self.feature_names, self.max_rows)

    def wanted(self, names: Sequence[str]) -> list[str]:
        """The outputs asked for (all when none are named); an unknown one is the caller's."""
        if not names:
            return self.outputs
        unknown = [n for n in names if n not in self.outputs]
        if unknown:
            raise BadRequestError(
                f"unknown output(s) {', '.join(unknown)}; this model has {', '.join(self.outputs)}"
            )
        return list(names)

    async def infer(
        self,
        served: ServedModel,
        x: np.ndarray,
        wanted: list[str],
        request_id: str | None,
        started: float,
    ) -> Inference:
        """Predict `x` with `served`; the decode stage ends here, the predict stage is timed."""
        decoded = time.perf_counter()
        self.metrics.decode.observe(decoded - started)
        if self.batcher is not None:
            out = await self.batcher.submit(served, x)  # observes the predict stage
        else:
            out = served.model.predict(x)
            self.metrics.predict.observe(time.perf_counter() - decoded)
        return Inference(served, x, out, wanted, request_id or new_request_id(), started)

    def answered(
        self,
        inference: Inference,
        encoding: float,
        raw_request: bytes | None,
        response_body: bytes | None,
    ) -> None:
        """After encoding: the payload log (if on), then the encode and total stages.

        `raw_request` / `response_body`: the JSON as received and answered, when there is
        one (REST without binary tensors); otherwise the log encodes them from the arrays.
        """
        if self.payload_log is not None:
            served = inference.served
            self.payload_log.record(
                inference.request_id,
                raw_request,
                inference.x,
                served.project,
                served.version,
                inference.outputs,
                inference.wanted,
                response_body,
            )
        done = time.perf_counter()
        self.metrics.encode.observe(done - encoding)
        self.metrics.total.observe(done - inference.started)
        self.metrics.rows_child.inc(len(inference.x))

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": castml.__version__, "extensions": list(EXTENSIONS)}

    def model_metadata(self, served: ServedModel) -> dict[str, Any]:
        return model_metadata(self.spec, served)

    async def load(self, name: str | None, ref: str | None) -> dict[str, Any]:
        """The repository extension's load: switch to `ref` (the default when None)."""
        self.check_model(name)
        result = await self.slot.load(ref or self.default_ref)
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
        return answer
