"""The recent window: a retrain's holdout rows that came from the logged traffic.

A drift or performance retrain trains on the spec's source plus the labelled rows the
collector logged (monitoring.training_set). Its holdout mixes both, and on a holdout made
mostly of pre-drift rows a challenger that is worse on today's traffic can still pass (in
the diecast demo its AUC was 0.009 below the champion's, within tolerance). So the split
marks the holdout rows that came from the log (`RECENT_COLUMN`, set by
`castml.workflow.split_step`), the evaluation scores candidate and champion on them alone,
and the gate applies the spec's no-regression tolerances to that slice too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from castml.models.holdout_metrics import GateVerdict, apply_gates
from castml.spec import ProjectSpec

# A column of the split's test file only: True on the rows that came from the logged traffic.
RECENT_COLUMN = "_castml_recent"
# Fewer labelled recent rows than this say too little to gate on (they are still reported).
MIN_RECENT_ROWS = 30


@dataclass(frozen=True)
class RecentWindow:
    """Candidate and champion on the recent rows alone."""

    rows: int
    candidate: dict[str, float]
    champion: dict[str, float]
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "candidate": self.candidate,
            "champion": self.champion,
            "note": self.note,
        }


def judgeable(spec: ProjectSpec, y: np.ndarray) -> str:
    """Why the recent rows cannot be gated on ("" when they can)."""
    if len(y) < MIN_RECENT_ROWS:
        return f"{len(y)} recent rows, fewer than {MIN_RECENT_ROWS}: reported, not gated on"
    if spec.is_classification and len(np.unique(y)) < 2:
        return "the recent rows hold one class only: reported, not gated on"
    return ""


def recent_gate(gate: GateVerdict, spec: ProjectSpec, recent: RecentWindow | None) -> GateVerdict:
    """`gate`, plus the spec's no-regression tolerances against @champion on the recent rows
    (floors stay the whole holdout's: a short window is too noisy for absolute bars)."""
    if recent is None or recent.note:
        return gate
    tolerances = spec.gates.model_copy(update={"floors": {}})
    verdict = apply_gates(recent.candidate, recent.champion, tolerances)
    prefix = f"recent window ({recent.rows} logged rows): "
    return GateVerdict(
        gate.passed and verdict.passed, [*gate.reasons, *(prefix + r for r in verdict.reasons)]
    )
