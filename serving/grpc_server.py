"""v2 gRPC (`inference.GRPCInferenceService`) on its own port, beside the REST app.

The message classes come from `serving.v2_proto` (kserve's protobuf module, loaded from
its file). Each infer response carries the served version's decision `threshold` as a
response parameter: v2 gRPC model metadata has no parameters, and the transformer needs
the threshold for its confidence bands.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import numpy as np

import castml
from castml.protocol.v2_tensors import NUMERIC, V2_DATATYPE, Tensor, features_matrix
from castml.web.asgi import new_request_id
from serving.errors import BadRequestError, NotFoundError, ServingError
from serving.predictor import Predictor, model_metadata
from serving.v2_proto import CONTENTS_FIELD, SERVICE, STATUS_CODE, load_pb2
from serving.version_store import ServedModel


def _tensor(raw_input: Any, raw: bytes | None) -> Tensor:
    datatype = raw_input.datatype
    if not isinstance(datatype, str) or datatype not in NUMERIC:
        raise BadRequestError(
            f"input '{raw_input.name}': datatype {datatype!r} is not supported; send FP32"
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
    if values.size != (int(np.prod(shape)) if shape else 1):
        raise BadRequestError(
            f"input '{raw_input.name}': shape {list(shape)} does not match its data"
        )
    return Tensor(raw_input.name, datatype, shape, values)


class GrpcPredictor:
    """Servicer methods; each takes (request, context) and returns the response message."""

    def __init__(self, predictor: Predictor) -> None:
        self.p = predictor
        self.pb2 = load_pb2()

    def _served(self, name: str, version: str) -> ServedModel:
        if name != self.p.spec.name:
            raise NotFoundError(f"unknown model '{name}'; this server serves '{self.p.spec.name}'")
        served = self.p.slot.current
        if version and version != served.version:
            raise NotFoundError(
                f"model '{name}' version {version} is not loaded; "
                f"version {served.version} is served"
            )
        return served

    def ServerLive(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self.pb2.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self.pb2.ServerReadyResponse(ready=self.p.slot.ready)

    def ModelReady(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        try:
            self._served(request.name, request.version)
        except ServingError:
            return self.pb2.ModelReadyResponse(ready=False)
        return self.pb2.ModelReadyResponse(ready=True)

    def ServerMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self.pb2.ServerMetadataResponse(
            name="castml-predictor",
            version=castml.__version__,
            extensions=["model_repository"],
        )

    def ModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        served = self._served(request.name, request.version)
        meta = model_metadata(self.p.spec, served)
        tensor = self.pb2.ModelMetadataResponse.TensorMetadata
        return self.pb2.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[tensor(**t) for t in meta["inputs"]],
            outputs=[tensor(**t) for t in meta["outputs"]],
        )

    def ModelInfer(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        served = self._served(request.model_name, request.model_version)
        raws = list(request.raw_input_contents)
        if raws and len(raws) != len(request.inputs):
            raise BadRequestError("raw_input_contents must have one entry per input")
        tensors = [_tensor(inp, raws[i] if raws else None) for i, inp in enumerate(request.inputs)]
        if not tensors:
            raise BadRequestError("the request has no inputs")
        x = features_matrix(tensors, self.p.spec.feature_names, self.p.max_rows)
        out = self.p.predict_arrays(served, x)
        wanted = [o.name for o in request.outputs] or self.p.outputs
        unknown = [n for n in wanted if n not in out]
        if unknown:
            raise BadRequestError(f"unknown output(s) {', '.join(unknown)}")
        request_id = request.id
        if self.p.payload_log is not None:
            request_id = request_id or new_request_id()  # the log's ce-id: the response's id
            self.p.payload_log.record(
                request_id, None, x, served.project, served.version, out, wanted, None
            )
        response = self.pb2.ModelInferResponse(
            model_name=served.project, model_version=served.version, id=request_id
        )
        # kserve's proto has no double parameter; repr() round-trips a float exactly.
        response.parameters["threshold"].string_param = repr(float(served.model.manifest.threshold))
        for name in wanted:
            array = np.ascontiguousarray(out[name])
            response.outputs.add(
                name=name, datatype=V2_DATATYPE[array.dtype], shape=list(array.shape)
            )
            response.raw_output_contents.append(
                array.astype(array.dtype.newbyteorder("<")).tobytes()
            )
        context.set_trailing_metadata((("x-model-version", served.version),))
        return response


def _guarded(
    method: Callable[[Any, grpc.ServicerContext], Any],
) -> Callable[[Any, grpc.ServicerContext], Any]:
    """The gRPC counterpart of the REST error handler: a typed error becomes a status code."""

    def call(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(request, context)
        except ServingError as exc:
            context.abort(
                STATUS_CODE.get(exc.status_code, grpc.StatusCode.INVALID_ARGUMENT), str(exc)
            )

    return call


def start_grpc(predictor: Predictor, host: str, port: int, workers: int = 4) -> grpc.Server:
    servicer = GrpcPredictor(predictor)
    pb2 = servicer.pb2
    pairs = {
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
    server = grpc.server(
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
        options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise RuntimeError(f"cannot bind gRPC to {host}:{port}")
    server.start()
    return server
