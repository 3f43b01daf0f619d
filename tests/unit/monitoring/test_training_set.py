"""The retrain's training-set builder over Parquet the collector itself wrote.

Events go through the collector's own code path in process (`logged_traffic`), so
the files have exactly the layout and schema the builder reads in production;
labels arrive on the feedback path.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from castml.data.diecast import generate
from castml.data.loaders import load_dataset
from castml.data.provenance import TAG_PREFIX, data_tags, read_lineage
from castml.spec import ProjectSpec, load_spec
from monitoring.policy import RetrainPolicy, RetrainRequest
from monitoring.training_set import (
    LoggedTrainingData,
    build_training_set,
    describe,
    read_logged_rows,
)
from monitoring.window import Window
from tests.support.logged_traffic import Traffic

SPEC = load_spec("diecast")
FEATURES = SPEC.feature_names


def _spec(min_logged_rows: int) -> ProjectSpec:
    retrain = SPEC.retrain.model_copy(update={"min_logged_rows": min_logged_rows})
    return SPEC.model_copy(update={"retrain": retrain})


def _shots(n: int, seed: int, scenario: str = "sensor_degradation") -> pd.DataFrame:
    return generate(n, seed, scenario, severity=2.0)


@pytest.fixture
def logged(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """40 labelled one-shot requests (v1 and v2), 10 unlabelled, and one of each bad kind."""
    traffic = Traffic()
    shots = _shots(50, seed=5)
    x = shots[FEATURES].to_numpy()
    for i in range(50):
        label = float(shots["defect"].iloc[i]) if i < 40 else None
        traffic.add(f"ok-{i}", x[i], label, version="1" if i % 2 else "2")
    traffic.add("batch", x[:3], 1.0)  # one label for three shots
    hot = x[0].copy()
    hot[FEATURES.index("Process_Temperature")] = 9999.0  # outside the physical bounds
    traffic.add("hot", hot, 0.0)
    huge = x[1].copy()
    huge[FEATURES.index("Process_Pressure")] = 1e39  # inf once logged as float32
    traffic.add("huge", huge, 1.0)
    traffic.add("half", x[2], 0.5)  # not a 0/1 label
    return traffic.log(tmp_path), shots.iloc[:40].reset_index(drop=True)


def test_labels_are_joined_and_every_dropped_row_is_counted(
    logged: tuple[Path, pd.DataFrame],
) -> None:
    logs_root, labelled = logged
    window = Window.ending(timedelta(days=1))
    rows = read_logged_rows(SPEC, logs_root, window)
    assert rows.read == 50 + 3 + 3  # one-shot requests, the batch, three bad ones
    assert rows.dropped == {
        "unlabelled": 10,
        "batch_request": 3,
        "out_of_bounds": 1,
        "non_finite": 1,
        "invalid_label": 1,
    }
    assert len(rows.frame) == 40 and list(rows.frame.columns) == [*FEATURES, "defect"]
    today = f"date={window.end.date().isoformat()}"
    assert rows.partitions == {f"diecast/1/{today}": 20, f"diecast/2/{today}": 20}
    # Every kept row is one of the labelled shots, with its own label (float32 readings).
    got = rows.frame.sort_values(FEATURES[0]).reset_index(drop=True)
    want = labelled.sort_values(FEATURES[0]).reset_index(drop=True)
    np.testing.assert_allclose(got[FEATURES], want[FEATURES], rtol=1e-6)
    assert got["defect"].tolist() == want["defect"].tolist()


def test_enough_rows_make_one_file_of_source_plus_logged_rows_with_its_lineage(
    logged: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    logs_root, _ = logged
    spec = _spec(min_logged_rows=40)
    out = tmp_path / "sets" / "training.parquet"
    built = build_training_set(spec, logs_root, out)
    assert built.path == out and built.source == "logged_traffic+spec" and not built.why
    assert (built.logged_rows, built.spec_rows) == (40, spec.source.rows)

    frame = load_dataset(spec, out)  # what the pipeline's validate step reads
    base = load_dataset(spec)
    assert len(frame) == len(base) + 40
    pd.testing.assert_frame_equal(frame.iloc[: len(base)], base, check_dtype=False)

    lineage = read_lineage(out)
    assert lineage == built.lineage()
    assert lineage[f"{TAG_PREFIX}logged_rows"] == "40"
    assert "diecast/1/date=" in lineage[f"{TAG_PREFIX}partitions"]
    assert "unlabelled=10" in lineage[f"{TAG_PREFIX}dropped"]
    line = describe({**built.evidence(), "uri": "runs:/abc/t.parquet"})
    assert line.startswith(f"training data: spec source {spec.source.rows} rows + 40 labelled")
    assert "logs/diecast/1/date=" in line and "unlabelled 10" in line and "runs:/abc" in line
    tags = data_tags(spec, "runs:/abc/training-data/training.parquet", out)
    assert tags[f"{TAG_PREFIX}source"] == "logged_traffic+spec"
    assert tags[f"{TAG_PREFIX}uri"] == "runs:/abc/training-data/training.parquet"


def test_too_few_rows_fall_back_to_the_source_and_say_why(
    logged: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    logs_root, _ = logged
    out = tmp_path / "training.parquet"
    built = build_training_set(_spec(min_logged_rows=41), logs_root, out)
    assert built.path is None and built.source == "spec" and not out.exists()
    assert built.logged_rows == 40 and "min_logged_rows=41" in built.why
    assert built.evidence()["dropped"]["unlabelled"] == 10
    assert describe(built.evidence()).startswith("training data: the spec's source alone (40 ")


def test_no_logs_at_all_fall_back(tmp_path: Path) -> None:
    built = build_training_set(SPEC, tmp_path / "logs", tmp_path / "training.parquet")
    assert built.path is None and built.logged_rows == 0 and built.read == 0
    assert built.partitions == {} and "0 usable labelled rows" in built.why


class RecordingLauncher:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def launch(
        self, project: str, reason: str, evidence_uri: str | None, data_path: str = ""
    ) -> str:
        self.calls.append((project, reason, data_path))
        return f"run-{len(self.calls)}"


def test_the_policy_records_the_fallback_in_the_decision(tmp_path: Path) -> None:
    launcher = RecordingLauncher()
    # No MLflow is needed: with no logged rows nothing is stored.
    data = LoggedTrainingData(tmp_path / "logs", "http://127.0.0.1:9")
    policy = RetrainPolicy(load_spec, launcher, tmp_path / "retrain", training_data=data)
    decision = policy.decide(RetrainRequest("diecast", "drift", evidence={"rows": 900}))
    assert decision.outcome == "started" and launcher.calls == [("diecast", "drift", "")]
    evidence: dict[str, Any] = policy.history("diecast")[-1]["evidence"]
    assert evidence["rows"] == 900
    assert evidence["training_data"]["source"] == "spec"
    assert "min_logged_rows" in evidence["training_data"]["why"]
    policy.finished("diecast", "run-1", "succeeded")
    manual = policy.decide(RetrainRequest("diecast", "manual"))
    assert manual.evidence["training_data"] == {
        "source": "spec",
        "why": "a manual retrain trains on the spec's source",
    }
