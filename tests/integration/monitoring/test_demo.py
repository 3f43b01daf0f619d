"""The monitoring half of `castml demo`, end to end except the training run itself.

Real collector process; real predictor and transformer processes (as the CLI starts
them) that the traffic goes through, the predictor logging to the collector; real drift
job on MLflow, which files the retrain request itself; the launcher records what the
policy asked for (the kfp.local run it would start is covered by the pipeline's own tests).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from castml.cli.demo_cmd import logged_serving
from castml.cli.monitoring_demo import DRIFTED_ROWS, NORMAL_ROWS, run_monitoring_demo
from tests.support.collector_process import read_logs

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class RecordingLauncher:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None, str]] = []

    def launch(
        self, project: str, reason: str, evidence_uri: str | None, data_path: str = ""
    ) -> str:
        self.calls.append((project, reason, evidence_uri, data_path))
        return "recorded-run-1"


def test_drifted_traffic_is_detected_and_asks_for_a_drift_retrain(
    tmp_path: Path, registered_diecast: Any
) -> None:
    launcher = RecordingLauncher()
    console = Console(record=True, width=200)
    serve = logged_serving(registered_diecast.uri, "diecast", tmp_path)
    run_monitoring_demo(registered_diecast.uri, "diecast", tmp_path, serve, launcher, console)

    text = console.export_text()
    assert "DRIFT" in text and "policy: started (drift)" in text
    shots = NORMAL_ROWS + DRIFTED_ROWS
    # The predictor logs (as in the chart); the transformer logs nothing.
    assert f"predictor payload events: sent {2 * shots}, refused 0, rejected 0" in text
    assert "transformer payload events" not in text
    # One row per shot, and the labels joined the predictor's rows.
    [served] = [d.name for d in (tmp_path / "logs" / "diecast").iterdir() if d.name.isdigit()]
    frame = read_logs(tmp_path, served)
    assert frame.groupby("component").size().to_dict() == {"predictor": shots}
    assert f"over {shots} rows" in text and " labeled)" in text and "(0 labeled)" not in text
    [(project, reason, evidence, data_path)] = launcher.calls
    assert (project, reason) == ("diecast", "drift") and evidence and evidence.endswith(".html")
    # The retrain is asked to learn from the labelled traffic just logged.
    assert data_path.startswith("runs:/") and "labelled logged rows" in text
    decisions = [json.loads(line) for line in (tmp_path / "retrain" / "decisions.jsonl").open()]
    assert decisions[-1]["outcome"] == "started" and decisions[-1]["evidence"]["drift_share"] >= 0.2
    assert list((tmp_path / "logs" / "diecast").glob("*/date=*/*.parquet"))
