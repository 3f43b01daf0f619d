"""Evaluate the four retrievers side by side, and train the rescorer on labelled queries.

`train_rescorer` fits the logistic rescorer on the hybrid candidates of the given queries;
`compare_retrievers` reports every mode on the same queries. For an honest number on the set
the rescorer is trained on, `cross_validated_rescoring` trains on k-1 folds and scores the
held-out fold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from castml.knowledge.eval_queries import EvalQuery
from castml.knowledge.feature_terms import KnowledgeTerms, load_knowledge_terms
from castml.knowledge.index_store import KnowledgeIndex
from castml.knowledge.language import resolve_language
from castml.knowledge.passages import Chunk
from castml.knowledge.query_enrichment import enrich_query
from castml.knowledge.rescoring import LinearRescorer, fit_rescorer
from castml.knowledge.retrieval import MODES, HybridRetriever, Mode
from castml.knowledge.retrieval_metrics import RANK_DEPTH, evaluate
from castml.spec import ProjectSpec


class QueryRunner:
    """Runs an evaluation query the way the server would: language, enrichment, search."""

    def __init__(
        self,
        retriever: HybridRetriever,
        spec: ProjectSpec | None = None,
        terms: KnowledgeTerms | None = None,
    ) -> None:
        self.retriever = retriever
        self.spec = spec
        self.terms = terms or load_knowledge_terms()

    def prepared(self, query: EvalQuery) -> tuple[str, str, frozenset[str]]:
        language = resolve_language(query.query, query.language).language
        if self.spec is None:
            return query.query, language, frozenset(self.terms.defects_in(query.query))
        enriched = enrich_query(query.query, query.context, self.spec, self.terms, language)
        return enriched.text, language, enriched.defects

    def ranked(self, query: EvalQuery, mode: Mode) -> list[Chunk]:
        text, language, defects = self.prepared(query)
        hits = self.retriever.search(
            text, mode=mode, k=RANK_DEPTH, defects=defects, language=language
        )
        return [h.chunk for h in hits]


def compare_retrievers(
    runner: QueryRunner, queries: Sequence[EvalQuery], modes: Sequence[Mode] = MODES
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for mode in modes:

        def search(query: EvalQuery, mode: Mode = mode) -> list[Chunk]:
            return runner.ranked(query, mode)

        out[mode] = evaluate(search, queries)
    return out


def rescorer_training_data(
    runner: QueryRunner, queries: Sequence[EvalQuery]
) -> tuple[np.ndarray, np.ndarray]:
    rows, labels = [], []
    for query in queries:
        text, language, defects = runner.prepared(query)
        order, _, features, _ = runner.retriever.candidates(
            text, "hybrid", defects=defects, language=language
        )
        for pos, i in enumerate(order.tolist()):
            rows.append(features[pos])
            labels.append(1 if runner.retriever.index.chunks[i].ids() & query.relevant else 0)
    return np.array(rows), np.array(labels)


def train_rescorer(runner: QueryRunner, queries: Sequence[EvalQuery]) -> LinearRescorer:
    features, labels = rescorer_training_data(runner, queries)
    return fit_rescorer(features, labels, {"queries": len(queries)})


def cross_validated_rescoring(
    runner: QueryRunner, queries: Sequence[EvalQuery], folds: int = 5, seed: int = 0
) -> dict[str, float]:
    """hybrid_rescored metrics where each query is scored by a rescorer not trained on it."""
    order = np.random.default_rng(seed).permutation(len(queries))
    held_out_metrics: list[dict[str, float]] = []
    original = runner.retriever.rescorer
    try:
        for fold in range(folds):
            test = [queries[i] for i in order[fold::folds]]
            train = [queries[i] for i in order if i not in set(order[fold::folds].tolist())]
            trained = train_rescorer(runner, train)
            runner.retriever.rescorer = replace(
                original, weights=trained.weights, bias=trained.bias
            )
            metrics = evaluate(lambda q: runner.ranked(q, "hybrid_rescored"), test)
            held_out_metrics.append({**metrics, "weight": metrics["queries"]})
    finally:
        runner.retriever.rescorer = original
    total = sum(m["weight"] for m in held_out_metrics)
    keys = [k for k in held_out_metrics[0] if k not in {"weight", "queries"}]
    out = {k: sum(m[k] * m["weight"] for m in held_out_metrics) / total for k in keys}
    out["queries"] = float(total)
    return out


def top_relevances(runner: QueryRunner, queries: Sequence[EvalQuery]) -> list[tuple[bool, float]]:
    """(query is answerable, relevance of its best hit) for every query, as the server ranks."""
    out = []
    for query in queries:
        text, language, defects = runner.prepared(query)
        hits = runner.retriever.search(text, k=1, defects=defects, language=language)
        out.append((query.answerable, hits[0].relevance if hits else 0.0))
    return out


def no_answer_report(pairs: Sequence[tuple[bool, float]], threshold: float) -> dict[str, float]:
    """Share of answerable queries answered and of unanswerable ones refused at `threshold`."""
    answerable = [r for ok, r in pairs if ok]
    unanswerable = [r for ok, r in pairs if not ok]
    return {
        "threshold": threshold,
        "answered_when_answerable": float(np.mean([r >= threshold for r in answerable]))
        if answerable
        else float("nan"),
        "refused_when_unanswerable": float(np.mean([r < threshold for r in unanswerable]))
        if unanswerable
        else float("nan"),
    }


def calibrate_threshold(pairs: Sequence[tuple[bool, float]]) -> float:
    """The relevance threshold with the best balanced accuracy of answering vs refusing."""
    if not any(ok for ok, _ in pairs) or all(ok for ok, _ in pairs):
        raise ValueError("calibrating the threshold needs answerable and unanswerable queries")
    candidates = sorted({round(r, 3) for _, r in pairs} | {0.5})

    def balanced(threshold: float) -> float:
        report = no_answer_report(pairs, threshold)
        return report["answered_when_answerable"] + report["refused_when_unanswerable"]

    # Among equally good thresholds prefer the lowest: a refusal costs the user more.
    return max(candidates, key=lambda t: (balanced(t), -t))


def attach_rescorer(index: KnowledgeIndex, rescorer: LinearRescorer) -> None:
    """Store the trained rescorer in the index; `save_index` writes it as rescorer.json."""
    index.extras["rescorer"] = rescorer.to_json()
