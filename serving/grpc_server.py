"""The predictor's v2 gRPC adapter (`inference.GRPCInferenceService`) over `PredictorCore`.

A `grpc.aio` server on the predictor's own event loop, beside the REST app, so a gRPC
infer goes through the same core as a REST one: the same micro-batcher (REST and gRPC
requests of one loop turn share a model call), stage metrics and payload log. It only
decodes tensors and encodes the answer. The message classes come from `serving.v2_proto`
(kserve's protobuf module, loaded from its file). Each infer response carries the served
version's decision `threshold` as a response parameter, as the REST reply does: v2 gRPC
model metadata has no parameters. A typed version takes BYTES tensors per feature
(`bytes_contents`, or raw 4-byte-length-prefixed strings; an empty string is missing) and
BOOL, as REST does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import numpy as np

from castml.protocol.v2_tensors import BOOL, BYTES, NUMERIC, V2_DATATYPE, Tensor
from serving.errors import BadRequestError, ServingError
from serving.predictor_core import PredictorCore
from serving.v2_proto import CONTENTS_FIELD, SERVICE, STATUS_CODE, load_pb2

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
Method = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


def _length_prefixed(name: str, raw: bytes) -> list[bytes]:
    """v2's raw BYTES layout: each element is a 4-byte little-endian length, then its bytes."""
    out, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise BadRequestError(f"input '{name}': raw BYTES content is cut short")
        size = int.from_bytes(raw[offset : offset + 4], "little")
        offset += 4
        if offset + size > len(raw):
            raise BadRequestError(f"input '{name}': raw BYTES content is cut short")
        out.append(raw[offset : offset + size])
        offset += size
    return out


def _typed_values(raw_input: Any, raw: bytes | None) -> np.ndarray:
    """BYTES as text (UTF-8) or BOOL, flat."""
    name, datatype = raw_input.name, raw_input.datatype
    if datatype == BOOL:
        if raw is not None:
            return np.frombuffer(raw, dtype=np.uint8).astype(bool)
        return np.asarray(raw_input.contents.bool_contents, dtype=bool)
    items = _length_prefixed(name, raw) if raw is not None else raw_input.contents.bytes_contents
    try:
        return np.asarray([item.decode() for item in items], dtype=str)
    except UnicodeDecodeError:
        raise BadRequestError(f"input '{name}': BYTES values must be UTF-8 text") from None


def _tensor(raw_input: Any, raw: bytes | None) -> Tensor:
    datatype = raw_input.datatype
    if datatype in (BYTES, BOOL):
        values = _typed_values(raw_input, raw)
        shape = tuple(int(d) for d in raw_input.shape)
        if values.size != math.prod(shape):
            raise BadRequestError(
                f"input '{raw_input.name}': shape {list(shape)} does not match its data"
            )
        return Tensor(raw_input.name, datatype, shape, values)
    if not isinstance(datatype, str) or datatype not in NUMERIC:
        raise BadRequestError(
            f"input '{raw_input.name}': datatype {datatype!r} is not supported; "
            "send FP32, BYTES or BOOL"
        )
    dtype = NUMERIC[datatype]
    if raw is not None:
        if len(raw) % dtype.itemsize:
            raise BadRequestError(
                f"input '{raw_input.name}': raw content is not a whole number of {datatype}"
            )
        values = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
    else:
        values = np.asarray(getattr(raw_input.contents, CONTENTS_FIELD[datatype]), dtype=dtype)
    shape = tuple(int(d) for d in raw_input.shape)
    if values.size != math.prod(shape):  # math.prod(()) is 1: a scalar
        raise BadRequestError(
            f"input '{raw_input.name}': shape {list(shape)} does not match its data"
        )
    return Tensor(raw_input.name, datatype, shape, values)


class GrpcPredictor:
    """Servicer methods; each takes (request, context) and returns the response message."""

    def __init__(self, core: PredictorCore) -> None:
        self.core = core
        self.pb2 = load_pb2()

    async def ServerLive(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self.pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self.pb2.ServerReadyResponse(ready=self.core.ready)

    async def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        try:
            self.core.served(request.name, request.version)
        except ServingError:
            return self.pb2.ModelReadyResponse(ready=False)
        return self.pb2.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        meta = self.core.server_metadata()
        return self.pb2.ServerMetadataResponse(
            name=meta["name"], version=meta["version"], extensions=["model_repository"]
        )

    async def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        meta = self.core.model_metadata(self.core.served(request.name, request.version))
        tensor = self.pb2.ModelMetadataResponse.TensorMetadata
        return self.pb2.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[tensor(**t) for t in meta["inputs"]],
            outputs=[tensor(**t) for t in meta["outputs"]],
        )

    async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        started = time.perf_counter()
        core = self.core
        served = core.served(request.model_name, request.model_version)
        raws = request.raw_input_contents
        if raws and len(raws) != len(request.inputs):
            raise BadRequestError("raw_input_contents must have one entry per input")
        tensors = [_tensor(inp, raws[i] if raws else None) for i, inp in enumerate(request.inputs)]
        x = core.matrix(served, tensors)
        wanted = core.wanted(served, [o.name for o in request.outputs])
        inference = await core.infer(served, x, wanted, request.id or None, started)
        encoding = time.perf_counter()
        response = self.pb2.ModelInferResponse(
            model_name=served.project, model_version=served.version, id=inference.request_id
        )
        # kserve's proto has no double parameter; repr() round-trips a float exactly.
        response.parameters["threshold"].string_param = repr(inference.threshold)
        for name in wanted:
            array = np.ascontiguousarray(inference.outputs[name])
            response.outputs.add(
                name=name, datatype=V2_DATATYPE[array.dtype], shape=list(array.shape)
            )
            response.raw_output_contents.append(
                array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            )
        context.set_trailing_metadata((("x-model-version", served.version),))
        core.answered(inference, encoding, core.logged_request(served, tensors), None)
        return response


def _guarded(method: Method) -> Method:
    """The gRPC counterpart of the REST error contract: a typed error becomes a status code."""

    async def call(request: Any, context: Any) -> Any:
        try:
            return await method(request, context)
        except ServingError as exc:
            code = STATUS_CODE.get(exc.status_code, grpc.StatusCode.INVALID_ARGUMENT)
            await context.abort(code, str(exc))

    return call


async def start_grpc(core: PredictorCore, host: str, port: int) -> grpc.aio.Server:
    """Serve gRPC on the running event loop (call it from the app's startup)."""
    servicer = GrpcPredictor(core)
    pb2 = servicer.pb2
    pairs: dict[str, tuple[Any, Method]] = {
        "ServerLive": (pb2.ServerLiveRequest, servicer.ServerLive),
        "ServerReady": (pb2.ServerReadyRequest, servicer.ServerReady),
        "ModelReady": (pb2.ModelReadyRequest, servicer.ModelReady),
        "ServerMetadata": (pb2.ServerMetadataRequest, servicer.ServerMetadata),
        "ModelMetadata": (pb2.ModelMetadataRequest, servicer.ModelMetadata),
        "ModelInfer": (pb2.ModelInferRequest, servicer.ModelInfer),
    }
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            _guarded(method),
            request_deserializer=message.FromString,
            response_serializer=lambda m: m.SerializeToString(),
        )
        for name, (message, method) in pairs.items()
    }
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise RuntimeError(f"cannot bind gRPC to {host}:{port}")
    await server.start()
    return server
