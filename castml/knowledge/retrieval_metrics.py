"""Retrieval quality on labelled queries: recall@5, recall@20, nDCG@10 (binary gains) and MRR,
for each retriever mode side by side, plus the per-query latency.

A retrieved chunk counts as relevant when its chunk, passage or document id is one the query
names; each named id is credited once, so two chunks of one relevant passage do not double.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from castml.knowledge.eval_queries import EvalQuery
from castml.knowledge.passages import Chunk

RANK_DEPTH = 20


def _credits(ranked: Sequence[Chunk], relevant: frozenset[str]) -> list[int]:
    """New relevant ids each ranked chunk covers (0 or 1: an id is credited once)."""
    covered: set[str] = set()
    out = []
    for chunk in ranked:
        new = (chunk.ids() & relevant) - covered
        covered |= new
        out.append(1 if new else 0)
    return out


def query_metrics(ranked: Sequence[Chunk], relevant: frozenset[str]) -> dict[str, float]:
    credits = _credits(ranked, relevant)
    total = len(relevant)

    def recall(k: int) -> float:
        return sum(credits[:k]) / total

    dcg = sum(c / math.log2(i + 2) for i, c in enumerate(credits[:10]))
    ideal = sum(1 / math.log2(i + 2) for i in range(min(total, 10)))
    first = next((i for i, c in enumerate(credits) if c), None)
    return {
        "recall@5": recall(5),
        "recall@20": recall(20),
        "ndcg@10": dcg / ideal if ideal else 0.0,
        "mrr": 1.0 / (first + 1) if first is not None else 0.0,
    }


def evaluate(
    search: Callable[[EvalQuery], Sequence[Chunk]], queries: Iterable[EvalQuery]
) -> dict[str, float]:
    """Mean metrics and latency percentiles (ms) of one search function over the queries."""
    rows, latencies = [], []
    for query in queries:
        if not query.answerable:
            continue  # scored by the no-answer check, not by ranking metrics
        started = time.perf_counter()
        ranked = search(query)
        latencies.append((time.perf_counter() - started) * 1000)
        rows.append(query_metrics(list(ranked)[:RANK_DEPTH], query.relevant))
    if not rows:
        raise ValueError("no evaluation queries")
    out = {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}
    out["p50_ms"] = float(np.percentile(latencies, 50))
    out["p99_ms"] = float(np.percentile(latencies, 99))
    out["queries"] = float(len(rows))
    return out
