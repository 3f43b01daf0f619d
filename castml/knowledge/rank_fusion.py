"""Reciprocal rank fusion (Cormack et al. 2009): score = sum over lists of 1 / (k + rank)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RRF_K = 60


def top_k(scores: np.ndarray, k: int, floor: float = -np.inf) -> np.ndarray:
    """Indices of the k best scores above `floor`, best first (argpartition: O(n))."""
    valid = np.flatnonzero(scores > floor)
    if valid.size == 0:
        return valid
    if valid.size > k:
        part = np.argpartition(-scores[valid], k - 1)[:k]
        valid = valid[part]
    return valid[np.argsort(-scores[valid], kind="stable")]


def reciprocal_rank_fusion(
    rankings: Sequence[np.ndarray], k: int = RRF_K
) -> list[tuple[int, float]]:
    """(index, fused score) best first; ties keep the order of first appearance."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, idx in enumerate(ranking.tolist()):
            fused[idx] = fused.get(idx, 0.0) + 1.0 / (k + rank + 1)
    return sorted(fused.items(), key=lambda item: -item[1])
