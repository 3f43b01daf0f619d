"""What the transformer and the explainer get from a predictor, whatever the protocol.

The one module both clients (`serving.predictor_client` for v2 REST, `serving.grpc_client`
for v2 gRPC) import, so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

PROTOCOLS = ("v2", "grpc-v2")
# A v2 server that sends no `threshold` parameter (not castml's): the usual decision point.
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class InferReply:
    """A predictor's infer answer, decoded."""

    model_version: str
    # In the predictor's order, each with the dtype of its v2 datatype (float32 for FP32),
    # so REST and gRPC give bit-identical arrays.
    outputs: dict[str, np.ndarray]
    # The version's decision threshold: both castml adapters send it with every reply.
    threshold: float = DEFAULT_THRESHOLD


def threshold_of(raw: Any) -> float:
    """A `threshold` parameter as sent (a number over REST, a string over gRPC)."""
    if raw is None or isinstance(raw, bool):
        return DEFAULT_THRESHOLD
    try:
        return float(raw)
    except (TypeError, ValueError):
        return DEFAULT_THRESHOLD


class PredictorCalls(Protocol):
    """What the transformer needs from the predictor, whatever the protocol."""

    async def infer(
        self, x: np.ndarray | Mapping[str, np.ndarray], request_id: str, version: str | None = None
    ) -> InferReply:
        """`x`: the `[N, F]` float matrix, or a typed spec's raw columns by feature."""
        ...

    async def ready(self) -> bool: ...

    async def metadata(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...
