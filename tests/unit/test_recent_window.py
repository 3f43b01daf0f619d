"""The recent-window gate (issue 14 §4): a retrain on logged traffic is also held to the
spec's no-regression tolerances on the holdout's logged rows alone."""

from __future__ import annotations

import numpy as np

from castml.models.holdout_metrics import GateVerdict
from castml.recent_window import RecentWindow, judgeable, recent_gate
from castml.spec import load_spec

SPEC = load_spec("diecast")  # max_regression: roc_auc 0.02, f1 0.05; floors on roc_auc, f1


def test_a_candidate_worse_on_the_recent_rows_fails_though_the_whole_holdout_passed() -> None:
    whole = GateVerdict(True, ["roc_auc=0.9000 vs champion 0.9090"])
    recent = RecentWindow(48, {"roc_auc": 0.80, "f1": 0.60}, {"roc_auc": 0.86, "f1": 0.61})
    gate = recent_gate(whole, SPEC, recent)
    assert not gate.passed
    assert "recent window (48 logged rows): roc_auc=0.8000 regresses 0.0600" in gate.tag
    assert gate.reasons[0] == whole.reasons[0]  # the whole holdout's verdict stays


def test_within_tolerance_passes_and_the_floors_are_the_whole_holdouts() -> None:
    # roc_auc 0.70 is under diecast's floor, but floors are judged on the whole holdout only.
    recent = RecentWindow(48, {"roc_auc": 0.70, "f1": 0.30}, {"roc_auc": 0.71, "f1": 0.32})
    gate = recent_gate(GateVerdict(True), SPEC, recent)
    assert gate.passed and "recent window (48 logged rows): roc_auc=0.7000 vs champion" in gate.tag


def test_too_few_or_one_class_recent_rows_are_reported_not_gated() -> None:
    assert "fewer than 30" in judgeable(SPEC, np.ones(12))
    assert "one class" in judgeable(SPEC, np.zeros(40))
    assert judgeable(SPEC, np.r_[np.zeros(35), np.ones(5)]) == ""
    noted = RecentWindow(12, {"roc_auc": 0.1}, {"roc_auc": 0.9}, note="12 recent rows")
    assert recent_gate(GateVerdict(True), SPEC, noted).passed
    assert recent_gate(GateVerdict(True), SPEC, None).passed
