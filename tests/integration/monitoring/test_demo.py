"""The monitoring half of `castml demo`, end to end except the training run itself.

Real collector process, real CloudEvents through castml.events, real drift job on
MLflow; the launcher records what the policy asked for (the kfp.local run it would
start is covered by the pipeline's own tests).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from monitoring.demo import run_monitoring_demo

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class RecordingLauncher:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None]] = []

    def launch(self, project: str, reason: str, evidence_uri: str | None) -> str:
        self.calls.append((project, reason, evidence_uri))
        return "recorded-run-1"


def test_drifted_traffic_is_detected_and_asks_for_a_drift_retrain(
    tmp_path: Path, registered_diecast: Any
) -> None:
    launcher = RecordingLauncher()
    console = Console(record=True, width=200)
    run_monitoring_demo(registered_diecast.uri, "diecast", tmp_path, None, launcher, console)

    text = console.export_text()
    assert "DRIFT" in text and "policy: started (drift)" in text
    assert "refused 0, rejected 0" in text
    [(project, reason, evidence)] = launcher.calls
    assert (project, reason) == ("diecast", "drift") and evidence and evidence.endswith(".html")
    decisions = [json.loads(line) for line in (tmp_path / "retrain" / "decisions.jsonl").open()]
    assert decisions[-1]["outcome"] == "started" and decisions[-1]["evidence"]["drift_share"] >= 0.2
    assert list((tmp_path / "logs" / "diecast").glob("*/date=*/*.parquet"))
