"""The gRPC floor: a bare `grpc.aio` server answering ModelInfer with fixed bytes.

No protobuf parsing, no model, no core: what grpcio itself costs per unary call on
this machine, so `make bench` can say how much of the gRPC/REST gap is the transport.
Run as `python -m bench._grpc_floor PORT`.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc

from serving.v2_proto import SERVICE, load_pb2


def fixed_reply() -> bytes:
    pb2 = load_pb2()
    reply = pb2.ModelInferResponse(model_name="diecast", model_version="1", id="bench")
    reply.outputs.add(name="probability", datatype="FP32", shape=[1])
    reply.raw_output_contents.append(b"\x00\x00\x00\x3f")  # 0.5 as little-endian FP32
    return bytes(reply.SerializeToString())


async def serve(port: int) -> None:
    body = fixed_reply()

    async def infer(request: bytes, context: Any) -> bytes:
        return body

    handler = grpc.unary_unary_rpc_method_handler(
        infer, request_deserializer=None, response_serializer=None
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"ModelInfer": handler}),)
    )
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"error: cannot bind 127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    import uvloop

    uvloop.install()
    asyncio.run(serve(int(sys.argv[1])))
