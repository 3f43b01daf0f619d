"""The v2 gRPC message classes (`inference.GRPCInferenceService`), shared by server and client.

They come from the protobuf module kserve ships, loaded from its file rather than
imported as `kserve.protocol...`: importing kserve costs a second at start-up, and
kserve cannot share a process with tritonclient's gRPC module. Only the gRPC users
(the predictor's server, the transformer's `grpc-v2` client) import this module, so a
transformer on v2 REST never loads grpc.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import grpc

SERVICE = "inference.GRPCInferenceService"
# Where a tensor's values sit in `InferTensorContents`, when not in the raw contents.
CONTENTS_FIELD = {
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
}

# A typed serving error's HTTP status <-> the gRPC status it travels as. The client
# maps back with the inverse, so a refusal keeps its status across the hop.
STATUS_CODE = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.FAILED_PRECONDITION,
    503: grpc.StatusCode.UNAVAILABLE,
}
HTTP_STATUS = {code: status for status, code in STATUS_CODE.items()}


def load_pb2() -> ModuleType:
    name = "castml_grpc_predict_v2_pb2"
    if name in sys.modules:
        return sys.modules[name]
    found = importlib.util.find_spec("kserve")
    if found is None or not found.submodule_search_locations:
        raise RuntimeError("the v2 gRPC protocol needs the kserve package installed")
    path = (
        Path(next(iter(found.submodule_search_locations))) / "protocol/grpc/grpc_predict_v2_pb2.py"
    )
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
