"""No skill is said, not hidden: the AUC's bootstrap CI, and a gate that refuses on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from castml.data.loaders import load_dataset
from castml.data.validation import validated
from castml.evaluation import evaluate, no_skill_gate
from castml.models.holdout_metrics import GateVerdict
from castml.skill_interval import auc_interval
from castml.spec import PROJECTS_DIR, load_spec
from castml.workflow import _split

OBD_SPEC = PROJECTS_DIR / "drafts" / "open_bandit_all.yaml"
# Small enough for CI; LightGBM and logistic regression do not depend on it.
SMALL = {"lstm_seq": {"epochs": 1, "lstm_hidden": 8, "mlp_hidden": [16]}}


def test_interval_matches_sklearn_and_covers_chance_for_noise() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.uniform(size=5000) < 0.02
    noise = auc_interval(y, rng.normal(size=5000))
    assert noise.no_skill and noise.low < 0.5 < noise.high
    signal = rng.normal(size=5000) + 1.0 * y
    rounded = np.round(signal, 1)  # ties count one half, as sklearn counts them
    skilled = auc_interval(y, rounded)
    assert skilled.auc == pytest.approx(roc_auc_score(y, rounded), abs=1e-12)
    assert not skilled.no_skill and skilled.low > 0.5


def test_gate_names_the_interval_when_it_refuses() -> None:
    spec = load_spec("ctr")
    chance = {"roc_auc": 0.52, "roc_auc_ci_low": 0.47, "roc_auc_ci_high": 0.57}
    refused = no_skill_gate(GateVerdict(True), spec, chance, positives=200)
    assert not refused.passed
    assert "no skill" in refused.tag and "[0.470, 0.570] includes 0.5" in refused.tag
    skilled = {"roc_auc": 0.88, "roc_auc_ci_low": 0.82, "roc_auc_ci_high": 0.95}
    assert no_skill_gate(GateVerdict(True), spec, skilled, positives=200).passed
    # 6 clicks (one Open Bandit file's holdout) gave exactly this CI: too few to judge.
    assert spec.gates.min_positives == 30
    few = no_skill_gate(GateVerdict(True), spec, skilled, positives=6)
    assert not few.passed and "6 positives in the holdout" in few.tag


@pytest.mark.slow  # 60,000 real rows through training and evaluation: about a minute
def test_open_bandit_lstm_has_no_skill_and_the_gate_refuses(tmp_path: Path) -> None:
    from castml.data.open_bandit import ALL_SAMPLES, write_upload
    from castml.models.families import train_families

    # All six shipped samples (60,000 impressions, 0.4 % clicks): the CSV a user uploads.
    # One sample alone leaves about 6 clicks in the holdout, too few to judge anything.
    csv = write_upload(tmp_path / "obd.csv", ALL_SAMPLES)
    spec = load_spec(OBD_SPEC)
    frame = validated(load_dataset(spec, csv), spec)
    train, validation, test = _split(frame, spec)
    params = spec.model.resolved(None, SMALL)
    train_families(spec, train, validation, tmp_path / "model", tmp_path / "baseline", params)
    result = evaluate(spec, tmp_path / "model", tmp_path / "baseline", test, None, plots=False)
    low, high = result.candidate["roc_auc_ci_low"], result.candidate["roc_auc_ci_high"]
    assert low < 0.5 < high
    assert not result.gate.passed and "no skill" in result.gate.tag
    assert set(result.baselines) == {"logistic_regression"}
    for metrics in (result.baseline, result.baselines["logistic_regression"]):
        assert metrics["roc_auc_ci_low"] < 0.5 < metrics["roc_auc_ci_high"]
