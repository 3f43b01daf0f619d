"""The predictor's one core (KServe's DataPlane): what infer, metadata, readiness and load
mean, whatever the protocol.

The adapters only translate: `serving.predictor` (v2 REST) and `serving.grpc_server`
(v2 gRPC) decode a request into (model, version, `[N, F]` matrix, wanted outputs, id),
call `PredictorCore.infer`, and encode the `Inference` it returns. The matrix comes from
`PredictorCore.matrix`: the `[N, F]` FP32 hot path for an all-float version, or, for a
typed one (categoricals as BYTES), the served version's own encoder over per-feature
columns (numpy vocabulary look-ups, no pandas). So both protocols
share the served-version check, the micro-batcher, the stage metrics, the `threshold`
parameter and the payload log. Both run on one event loop (gRPC is a `grpc.aio` server).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

import castml
from castml.data.tabular_encoding import EncodingError
from castml.protocol.v2_tensors import Tensor, column_tensors, feature_columns, features_matrix
from castml.spec import Feature, ProjectSpec
from castml.web.asgi import new_request_id
from castml.web.errors import FieldProblem, InvalidFieldsError
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
    """Every output a version of `spec` may have (the payload log's superset)."""
    return (
        ["probability", "label", "latent"] if spec.is_classification else ["prediction", "latent"]
    )


# A raw feature's v2 datatype in a typed request.
TYPED_DATATYPES = {
    "float": "FP64",
    "int": "INT64",
    "bool": "BOOL",
    "categorical": "BYTES",
    "datetime": "BYTES",
}


def _typed_input(feature: Feature) -> dict[str, Any]:
    return {"name": feature.name, "datatype": TYPED_DATATYPES[feature.dtype], "shape": [-1]}


def model_metadata(served: ServedModel) -> dict[str, Any]:
    """Inputs and outputs as the served version really takes and returns them."""
    spec = served.spec
    n, latent = len(spec.features), served.model.manifest.latent_dim
    outputs = {
        "probability": ("FP32", [-1]),
        "label": ("INT64", [-1]),
        "prediction": ("FP32", [-1]),
        "latent": ("FP32", [-1, latent]),
    }
    if served.typed:
        inputs = [_typed_input(f) for f in spec.features]
        layouts = (
            "one [-1] tensor per feature named as in feature_names, with the datatype of "
            "inputs (BYTES: JSON strings, null for a missing value)"
        )
    else:
        inputs = [{"name": MATRIX_INPUT, "datatype": "FP32", "shape": [-1, n]}]
        layouts = (
            f"one FP32 [-1, {n}] tensor (any name) in feature_names order, "
            "or one FP32 [-1] tensor per feature named as in feature_names"
        )
    return {
        "name": served.project,
        "versions": [served.version],
        "platform": f"castml_{served.model.manifest.family}",
        "inputs": inputs,
        "outputs": [
            {"name": name, "datatype": outputs[name][0], "shape": outputs[name][1]}
            for name in served.outputs
        ],
        "parameters": {
            "feature_names": spec.feature_names,
            "layouts": layouts,
            "threshold": served.model.manifest.threshold,
        },
    }


def encoding_problems(exc: EncodingError) -> InvalidFieldsError:
    """The encoder's refusal as the one 400 body, each problem under its feature."""
    return InvalidFieldsError([FieldProblem(p.feature, p.message, None) for p in exc.problems])


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
        self.outputs = output_names(self.spec)  # a superset; a version answers its own
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

    def matrix(self, served: ServedModel, tensors: list[Tensor]) -> np.ndarray:
        """The model's `[N, F]` float32 input for `served`, from either request layout."""
        if not tensors:
            raise BadRequestError("the request has no inputs")
        if not served.typed:  # the all-float hot path (`make bench`): nothing added here
            return features_matrix(tensors, served.feature_names, self.max_rows)
        return self.encoded(served, feature_columns(tensors, served.feature_names, self.max_rows))

    def encoded(self, served: ServedModel, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """A typed version's `[N, F]` float32 input: its own encoder over raw columns."""
        try:
            return served.encoding.encode(columns, np.float32)  # type: ignore[union-attr]
        except EncodingError as exc:
            raise encoding_problems(exc) from None

    def logged_request(self, served: ServedModel, tensors: list[Tensor]) -> bytes | None:
        """The request body the payload log needs when there is no JSON body to log (binary
        tensors, gRPC) and the version is typed: the raw values as per-feature tensors, not
        the encoded matrix, whose codes the collector could not read back as features.
        None: log from the model's input (all-float versions), or no payload log."""
        if self.payload_log is None or not served.typed:
            return None
        columns = feature_columns(tensors, served.feature_names, self.max_rows)
        return orjson.dumps({"inputs": column_tensors(columns)})

    def wanted(self, served: ServedModel, names: Sequence[str]) -> list[str]:
        """The outputs asked for (all when none are named); an unknown one is the caller's."""
        known = served.outputs
        if not names:
            return list(known)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise BadRequestError(
                f"unknown output(s) {', '.join(unknown)}; this model has {', '.join(known)}"
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
        return model_metadata(served)

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
