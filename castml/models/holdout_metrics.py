"""Holdout metrics, decision-threshold tuning, and the evaluation gate."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn import metrics as skm

from castml.spec import Gates

CLASSIFICATION_METRICS = ("f1", "roc_auc", "accuracy", "precision", "recall")
REGRESSION_METRICS = ("rmse", "mae", "r2")


def tune_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """The threshold that maximises F1 on validation (vectorised over all cut points)."""
    order = np.argsort(-score, kind="stable")
    s, t = score[order], y[order].astype(np.float64)
    true_pos = np.cumsum(t)
    predicted_pos = np.arange(1, len(t) + 1)
    f1 = 2 * true_pos / (predicted_pos + t.sum())
    # only cut where the score changes, so ties fall on one side
    distinct = np.r_[s[1:] != s[:-1], True]
    best = int(np.argmax(np.where(distinct, f1, -1.0)))
    return float(s[best])


def classification_metrics(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    label = (score >= threshold).astype(int)
    return {
        "f1": float(skm.f1_score(y, label, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(y, score)) if len(np.unique(y)) == 2 else float("nan"),
        "accuracy": float(skm.accuracy_score(y, label)),
        "precision": float(skm.precision_score(y, label, zero_division=0)),
        "recall": float(skm.recall_score(y, label, zero_division=0)),
    }


def regression_metrics(y: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y, prediction))),
        "mae": float(skm.mean_absolute_error(y, prediction)),
        "r2": float(skm.r2_score(y, prediction)),
    }


@dataclass
class GateVerdict:
    passed: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def tag(self) -> str:
        """The `castml.gate` tag value: verdict, then the reasons."""
        return ("passed" if self.passed else "failed") + (
            "" if not self.reasons else ": " + "; ".join(self.reasons)
        )


def apply_gates(
    candidate: dict[str, float], champion: dict[str, float] | None, gates: Gates
) -> GateVerdict:
    """Absolute floors, then no regression beyond tolerance against @champion."""
    reasons: list[str] = []
    failed = False
    lower_better = set(gates.lower_is_better)
    for metric, floor in gates.floors.items():
        value = candidate.get(metric, float("nan"))
        ok = value <= floor if metric in lower_better else value >= floor
        if not ok:
            failed = True
            bound = "ceiling" if metric in lower_better else "floor"
            reasons.append(f"{metric}={value:.4f} misses the {bound} {floor}")
    if champion is not None:
        for metric, tolerance in gates.max_regression.items():
            value, best = candidate.get(metric, float("nan")), champion.get(metric, float("nan"))
            loss = (value - best) if metric in lower_better else (best - value)
            if not loss <= tolerance:
                failed = True
                reasons.append(
                    f"{metric}={value:.4f} regresses {loss:.4f} from champion {best:.4f}"
                    f" (max {tolerance})"
                )
            else:
                reasons.append(f"{metric}={value:.4f} vs champion {best:.4f}")
    elif not failed:
        reasons.append("no champion yet; floors met")
    return GateVerdict(passed=not failed, reasons=reasons)
