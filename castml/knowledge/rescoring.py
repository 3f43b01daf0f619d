"""Second-stage rescoring of the fused top candidates.

No cross-encoder ships offline, so the rescorer is a small logistic model over features the
first stage already has: BM25 (relative to the query's best), the e5 cosine (absolute and
relative), both ranks, the share of query terms the chunk contains, and whether the chunk's
metadata matches the defects and the language of the query. Its output is a probability of
relevance, which is also what the answer cites and what the no-answer threshold reads.
Default weights are hand-set; `train_rescorer` fits them on labelled queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

FEATURES = (
    "bm25_rel",  # BM25 / the query's best BM25
    "cos",  # e5 cosine, absolute (e5 cosines sit in 0.7-0.9: centred below)
    "cos_rel",  # cosine - the best candidate's cosine
    "rrf_bm25",  # 60 / (60 + BM25 rank), 0 when BM25 did not rank it
    "rrf_dense",  # 60 / (60 + dense rank)
    "coverage",  # share of the query's distinct terms found in the chunk
    "defect_match",  # 1 the chunk's defects meet the query's, -1 they miss, 0 no defect named
    "same_language",  # 1 when the chunk is in the query's language
)
COS_CENTRE = 0.8


@dataclass
class LinearRescorer:
    weights: dict[str, float]
    bias: float
    threshold: float = 0.5  # below: "no good answer" (calibration: see default_rescorer)
    trained_on: dict[str, Any] = field(default_factory=dict)

    def score(self, features: np.ndarray) -> np.ndarray:
        w = np.array([self.weights.get(name, 0.0) for name in FEATURES], dtype=np.float64)
        z = features @ w + self.bias
        return np.asarray(1.0 / (1.0 + np.exp(-z)))

    def to_json(self) -> dict[str, Any]:
        return {
            "features": list(FEATURES),
            "weights": self.weights,
            "bias": self.bias,
            "threshold": self.threshold,
            "trained_on": self.trained_on,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LinearRescorer:
        return cls(
            weights={k: float(v) for k, v in raw["weights"].items()},
            bias=float(raw["bias"]),
            threshold=float(raw.get("threshold", 0.5)),
            trained_on=dict(raw.get("trained_on", {})),
        )


def default_rescorer() -> LinearRescorer:
    """Hand-set weights, the default because they rank better than the fitted ones.

    On the corpus's 200 answerable labelled queries (2026-12-02): nDCG@10 0.702 against 0.665
    for plain RRF and 0.619 for the best single retriever; a logistic scorer fitted on the
    labels scored 0.671 under 5-fold cross-validation (pointwise loss, 200 queries). The
    threshold 0.5 answered 199/200 answerable queries and refused 8/8 unanswerable ones
    (in-sample: it was read off that set, and 8 negatives are few).
    """
    return LinearRescorer(
        weights={
            "bm25_rel": 1.5,
            "cos": 25.0,
            "cos_rel": 8.0,
            "rrf_bm25": 1.0,
            "rrf_dense": 1.0,
            "coverage": 2.0,
            "defect_match": 2.0,
            "same_language": 0.3,
        },
        bias=-5.0,
    )


def fit_rescorer(features: np.ndarray, labels: np.ndarray, info: dict[str, Any]) -> LinearRescorer:
    """Logistic regression on (candidate features, is relevant); class-balanced."""
    from sklearn.linear_model import LogisticRegression

    if labels.min() == labels.max():
        raise ValueError("training the rescorer needs relevant and irrelevant candidates")
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000)
    model.fit(features, labels)
    weights = {name: float(w) for name, w in zip(FEATURES, model.coef_[0], strict=True)}
    return LinearRescorer(
        weights=weights,
        bias=float(model.intercept_[0]),
        threshold=0.5,
        trained_on={**info, "candidates": int(labels.size), "positives": int(labels.sum())},
    )
