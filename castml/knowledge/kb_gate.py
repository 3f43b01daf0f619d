"""Score a knowledge index on the labelled queries and gate it, like any project's model.

The four retrievers are evaluated side by side; their metrics are flattened to MLflow names
(`hybrid_rescored.ndcg_at_10`). The gate is the training pipeline's rule (castml.models.
holdout_metrics.apply_gates) over the spec's `knowledge:` floors and tolerances: absolute
floors, then no regression against the @champion index scored on the same queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from castml.knowledge.eval_queries import EvalQuery
from castml.knowledge.index_store import load_index
from castml.knowledge.retrieval import MODES, HybridRetriever
from castml.knowledge.retriever_evaluation import QueryRunner, compare_retrievers
from castml.knowledge.tokenizing import KnowledgeTokenizer
from castml.models.holdout_metrics import GateVerdict, apply_gates
from castml.spec import Gates, KnowledgeSpec, ProjectSpec

# retrieval_metrics' keys -> MLflow metric names ("@" is not allowed in them).
METRIC_NAMES = {
    "recall@5": "recall_at_5",
    "recall@20": "recall_at_20",
    "ndcg@10": "ndcg_at_10",
    "mrr": "mrr",
}
SideBySide = dict[str, dict[str, float]]  # mode -> metric -> value


def knowledge_settings(spec: ProjectSpec) -> KnowledgeSpec:
    """The spec's `knowledge:` block, or the defaults (no floors) when it has none."""
    return spec.knowledge or KnowledgeSpec()


def score_index(
    index_dir: Path,
    queries: Sequence[EvalQuery],
    spec: ProjectSpec,
    tokenizer: KnowledgeTokenizer | None = None,
) -> SideBySide:
    """recall@5, recall@20, nDCG@10, MRR (and latency) for each retriever, on one index."""
    tokenizer = tokenizer or KnowledgeTokenizer()
    runner = QueryRunner(HybridRetriever(load_index(index_dir), tokenizer), spec)
    return compare_retrievers(runner, queries, MODES)


def flat_metrics(side_by_side: SideBySide) -> dict[str, float]:
    """`<mode>.<metric>` for the four ranking metrics of every mode (latency left out:
    it measures the machine, not the index, and must not gate)."""
    return {
        f"{mode}.{name}": float(values[key])
        for mode, values in side_by_side.items()
        for key, name in METRIC_NAMES.items()
        if key in values
    }


def gate(
    candidate: dict[str, float], champion: dict[str, float] | None, settings: KnowledgeSpec
) -> GateVerdict:
    rules = Gates(floors=settings.floors, max_regression=settings.max_regression)
    return apply_gates(candidate, champion, rules)


@dataclass
class KbEvaluation:
    """What the evaluate step hands to the register step (KB_EVALUATION_ARTIFACT)."""

    retrievers: SideBySide
    metrics: dict[str, float]
    champion_version: int | None
    champion_metrics: dict[str, float] | None
    passed: bool
    reasons: list[str]
    queries: int

    @property
    def verdict(self) -> GateVerdict:
        return GateVerdict(self.passed, list(self.reasons))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> KbEvaluation:
        return cls(**raw)
