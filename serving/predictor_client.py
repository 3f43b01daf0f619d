"""The transformer's (and explainer's) calls to the predictor, over v2 REST or v2 gRPC.

`--predictor_protocol` (KServe's flag) picks the client: `v2` is REST over kept-alive
connections (`LeanHttpClient`), `grpc-v2` is `serving.grpc_client` (grpc is imported
only then). Both answer the same `InferReply` (`serving.predictor_reply`, threshold
included: the predictor sends it with every reply) and raise the same typed errors, so the
transformer's answer, and the status of every failure, do not depend on the protocol:
a refusal by the predictor keeps its 4xx status, a predictor that is down, times out
or is not ready yet is a 503 (retry), and any other predictor failure a 502.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from castml.protocol.v2_tensors import NUMERIC, column_tensors
from serving.errors import PredictorRefusedError, PredictorUnavailableError, UpstreamError
from serving.http_client import LeanHttpClient, UpstreamUnavailableError
from serving.predictor_reply import PROTOCOLS, InferReply, PredictorCalls, threshold_of


class PredictorClient:
    """v2 REST calls to the predictor over kept-alive connections (`LeanHttpClient`)."""

    def __init__(self, base_url: str, project: str, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.project = project
        self.client = LeanHttpClient(self.base_url, timeout_s)

    async def get(self, path: str) -> dict[str, Any]:
        return await self._call("GET", path, None)

    async def infer(
        self, x: np.ndarray | Mapping[str, np.ndarray], request_id: str, version: str | None = None
    ) -> InferReply:
        """`x`: the `[N, F]` float matrix, or a typed spec's raw columns by feature (sent as
        one tensor per feature, BYTES for text)."""
        path = f"/v2/models/{self.project}" + (f"/versions/{version}" if version else "") + "/infer"
        if isinstance(x, np.ndarray):
            matrix = {"name": "features", "datatype": "FP32", "shape": list(x.shape)}
            inputs = [{**matrix, "data": x.reshape(-1)}]
        else:
            inputs = column_tensors(x)
        body = orjson.dumps(
            # id: the predictor logs under it, the id the client sees
            {"id": request_id, "inputs": inputs},
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
        payload = await self._call("POST", path, body)
        outputs = {
            o["name"]: np.asarray(o["data"], dtype=NUMERIC.get(o["datatype"])).reshape(o["shape"])
            for o in payload.get("outputs", [])
        }
        parameters = payload.get("parameters")
        threshold = threshold_of(
            parameters.get("threshold") if isinstance(parameters, dict) else None
        )
        return InferReply(str(payload.get("model_version", "")), outputs, threshold)

    async def _call(self, method: str, path: str, body: bytes | None) -> dict[str, Any]:
        try:
            response = await self.client.request(method, path, body, "application/json")
        except UpstreamUnavailableError as exc:
            raise PredictorUnavailableError(
                f"the predictor at {self.base_url} is unreachable: {exc}"
            ) from exc
        try:
            payload: dict[str, Any] = orjson.loads(response.body) if response.body else {}
        except orjson.JSONDecodeError:
            payload = {"error": response.body[:200].decode("utf-8", "replace")}
        if response.status == 503:
            raise PredictorUnavailableError(
                f"the predictor at {self.base_url} is not available: {payload.get('error', '')}"
            )
        if response.status >= 500:
            raise UpstreamError(
                f"the predictor failed ({response.status}): {payload.get('error', '')}"
            )
        if response.status >= 400:
            raise PredictorRefusedError(
                response.status, payload.get("error", f"the predictor answered {response.status}")
            )
        return payload

    async def ready(self) -> bool:
        return bool((await self.get("/v2/health/ready")).get("ready"))

    async def metadata(self) -> dict[str, Any]:
        return await self.get(f"/v2/models/{self.project}")

    async def close(self) -> None:
        await self.client.close()


def predictor_client(
    protocol: str, predictor_url: str, project: str, timeout_s: float
) -> PredictorCalls:
    """The client for `protocol`; `predictor_url` is the REST base URL or the gRPC host:port."""
    if protocol == "v2":
        return PredictorClient(predictor_url, project, timeout_s)
    if protocol == "grpc-v2":
        from serving.grpc_client import GrpcPredictorClient  # grpc only when chosen

        return GrpcPredictorClient(predictor_url, project, timeout_s)
    raise ValueError(f"predictor protocol '{protocol}' is not one of {', '.join(PROTOCOLS)}")
