"""The transformer's v2 gRPC client for the predictor (`--predictor_protocol grpc-v2`).

One `grpc.aio` channel, opened on first use inside the server's event loop (an aio
channel belongs to the loop it was made in). Rows travel as raw little-endian FP32
(`raw_input_contents`), outputs come back raw too, so nothing is converted per value.
Errors map back to the HTTP statuses the REST client gives (`serving.predictor_client`);
the reply is the shared `serving.predictor_reply.InferReply`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import grpc
import numpy as np

from castml.protocol.v2_tensors import NUMERIC
from serving.errors import PredictorRefusedError, PredictorUnavailableError, UpstreamError
from serving.predictor_reply import InferReply, threshold_of
from serving.v2_proto import CONTENTS_FIELD, HTTP_STATUS, SERVICE, load_pb2

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # the predictor's own receive limit
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # gRPC's default reconnect backoff grows to 2 minutes; calls made during a backoff
    # fail at once, so a restarted predictor would look down long after it is back.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
# A predictor that is down, slow or not ready: the caller may retry (503).
UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def _target(predictor_url: str) -> str:
    """host:port from `--predictor_host` (which the CLI may have given an http:// prefix)."""
    return predictor_url.split("://", 1)[-1].rstrip("/")


def _add_column(request: Any, name: str, values: np.ndarray) -> None:
    """One raw typed column as a per-feature tensor: BYTES (an empty string is missing),
    BOOL, INT64, or FP64 (NaN is missing)."""
    kind = values.dtype.kind
    datatype = {"b": "BOOL", "i": "INT64", "u": "INT64", "f": "FP64"}.get(kind, "BYTES")
    tensor = request.inputs.add(name=name, datatype=datatype, shape=[len(values)])
    if datatype == "BYTES":
        tensor.contents.bytes_contents.extend(
            b"" if v is None else str(v).encode() for v in values.tolist()
        )
    else:
        field = getattr(tensor.contents, CONTENTS_FIELD.get(datatype, "bool_contents"))
        field.extend(values.tolist())


class GrpcPredictorClient:
    def __init__(self, predictor_url: str, project: str, timeout_s: float) -> None:
        self.target = _target(predictor_url)
        self.project = project
        self.timeout_s = timeout_s
        self.pb2 = load_pb2()
        self._channel: grpc.aio.Channel | None = None
        self._methods: dict[str, Callable[..., Any]] = {}

    def _method(self, name: str, response: Any) -> Callable[..., Any]:
        method = self._methods.get(name)
        if method is None:
            if self._channel is None:
                self._channel = grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
            method = self._channel.unary_unary(
                f"/{SERVICE}/{name}",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response.FromString,
            )
            self._methods[name] = method
        return method

    async def _call(self, name: str, request: Any, response: Any) -> Any:
        try:
            return await self._method(name, response)(request, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None

    def _error(self, exc: grpc.aio.AioRpcError) -> Exception:
        code, details = exc.code(), exc.details() or ""
        if code in UNAVAILABLE:
            return PredictorUnavailableError(
                f"the predictor at {self.target} (gRPC) is unavailable: {code.name}: {details}"
            )
        status = HTTP_STATUS.get(code)
        if status is not None and status < 500:
            return PredictorRefusedError(status, details or f"the predictor answered {code.name}")
        return UpstreamError(f"the predictor failed (gRPC {code.name}): {details}")

    async def infer(
        self, x: np.ndarray | Mapping[str, np.ndarray], request_id: str, version: str | None = None
    ) -> InferReply:
        pb2 = self.pb2
        # `id`: the predictor logs under it, so the log has the id the client sees.
        request = pb2.ModelInferRequest(
            model_name=self.project, model_version=version or "", id=request_id
        )
        if isinstance(x, np.ndarray):
            request.inputs.add(name="features", datatype="FP32", shape=list(x.shape))
            request.raw_input_contents.append(np.ascontiguousarray(x, dtype="<f4").tobytes())
        else:
            for name, values in x.items():
                _add_column(request, name, values)
        reply = await self._call("ModelInfer", request, pb2.ModelInferResponse)
        raws = reply.raw_output_contents
        outputs: dict[str, np.ndarray] = {}
        for i, tensor in enumerate(reply.outputs):
            dtype = NUMERIC.get(tensor.datatype)
            if dtype is None:
                raise UpstreamError(
                    f"the predictor answered output '{tensor.name}' as {tensor.datatype}"
                )
            if raws:
                values = np.frombuffer(raws[i], dtype=dtype.newbyteorder("<"))
            else:
                values = np.asarray(
                    getattr(tensor.contents, CONTENTS_FIELD[tensor.datatype]), dtype=dtype
                )
            outputs[tensor.name] = values.reshape(tuple(tensor.shape))
        parameters = reply.parameters
        threshold = threshold_of(
            parameters["threshold"].string_param if "threshold" in parameters else None
        )
        return InferReply(reply.model_version, outputs, threshold)

    async def ready(self) -> bool:
        reply = await self._call(
            "ServerReady", self.pb2.ServerReadyRequest(), self.pb2.ServerReadyResponse
        )
        return bool(reply.ready)

    async def metadata(self) -> dict[str, Any]:
        """The model metadata gRPC has: no `parameters` (v2 gRPC metadata carries none)."""
        meta = await self._call(
            "ModelMetadata",
            self.pb2.ModelMetadataRequest(name=self.project),
            self.pb2.ModelMetadataResponse,
        )

        def tensors(items: Any) -> list[dict[str, Any]]:
            return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in items]

        return {
            "name": meta.name,
            "versions": list(meta.versions),
            "platform": meta.platform,
            "inputs": tensors(meta.inputs),
            "outputs": tensors(meta.outputs),
        }

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._methods = {}
