"""The split of a retrain on logged traffic keeps the spec's rows where a base run puts them.

Otherwise the champion, trained on the base split, would be scored on rows it was trained
on, and the gate would compare a fair candidate with an inflated champion.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from castml.data.diecast import generate
from castml.data.provenance import TAG_PREFIX, write_with_lineage
from castml.recent_window import RECENT_COLUMN
from castml.spec import ProjectSpec, load_spec
from castml.workflow import split_step


def _split(tmp: Path, frame: pd.DataFrame, lineage: dict[str, str]) -> list[pd.DataFrame]:
    data = tmp / "dataset"  # no suffix, like a KFP artifact
    write_with_lineage(frame, data, lineage)
    paths = [tmp / "train", tmp / "validation", tmp / "test"]
    split_step("diecast", data, *paths)
    return [pd.read_parquet(p) for p in paths]


def test_spec_rows_split_as_in_a_base_run_and_logged_rows_split_alike(tmp_path: Path) -> None:
    spec = load_spec("diecast")
    base = generate(2000, 11)[[*spec.feature_names, spec.target]]
    logged = generate(600, 12)[[*spec.feature_names, spec.target]]
    base_fit, base_val, base_test = _split(tmp_path / "base", base, {})
    combined = pd.concat([base, logged], ignore_index=True)
    lineage = {f"{TAG_PREFIX}spec_rows": str(len(base))}
    fit, val, test = _split(tmp_path / "combined", combined, lineage)

    def rows(frame: pd.DataFrame) -> set[tuple[float, ...]]:
        data = frame.drop(columns=[RECENT_COLUMN], errors="ignore")
        return set(map(tuple, data.to_numpy().tolist()))

    base_rows, logged_rows = rows(base), rows(logged)
    # The test part marks its logged rows: the evaluation gates on them alone too.
    assert rows(test[test[RECENT_COLUMN]]) == rows(test) & logged_rows
    assert RECENT_COLUMN not in fit and RECENT_COLUMN not in base_test
    assert rows(test) & base_rows == rows(base_test)
    assert rows(val) & base_rows == rows(base_val)
    assert rows(fit) & base_rows == rows(base_fit)
    in_test = len(rows(test) & logged_rows) / len(logged_rows)
    assert abs(in_test - spec.split.test) < 0.02
    assert len(fit) + len(val) + len(test) == len(combined)


def test_without_lineage_the_whole_frame_is_split_once(tmp_path: Path) -> None:
    spec = load_spec("diecast")
    frame = generate(1000, 13)[[*spec.feature_names, spec.target]]
    fit, val, test = _split(tmp_path, frame, {})
    assert len(test) == round(len(frame) * spec.split.test)
    assert len(fit) + len(val) + len(test) == len(frame)


# --- split kinds -------------------------------------------------------------------------------

# sha256 of each part's row indices (fit, validation, test), computed with the split code as it
# was before split kinds existed (stratified for classification, random for regression), on
# each bundled project's validated source. The bundled projects must split exactly as before.
BEFORE_SPLIT_KINDS = {
    "diecast": ("0cf89fcd17c188dc", "30e381ed66f48ea3", "e3b552eaf50fe22b"),
    "breast_cancer": ("a516c0e76a3f3ca9", "2cce4c54598090fb", "cbaaabe84e5496a6"),
    "diabetes": ("b5bbca96ff82df85", "44ec64b285106eab", "dbd6426987f035ba"),
}


def _index_hash(part: pd.DataFrame) -> str:
    import hashlib

    return hashlib.sha256(",".join(map(str, part.index)).encode()).hexdigest()[:16]


@pytest.mark.parametrize("project", sorted(BEFORE_SPLIT_KINDS))
def test_bundled_projects_split_exactly_as_before(project: str) -> None:
    from castml.data.loaders import load_dataset
    from castml.data.validation import validated
    from castml.workflow import _split as split

    spec = load_spec(project)
    parts = split(validated(load_dataset(spec), spec), spec)
    assert tuple(_index_hash(p) for p in parts) == BEFORE_SPLIT_KINDS[project]


def _timed_spec(tmp: Path, **changes: object) -> ProjectSpec:
    raw = yaml.safe_load(Path("castml/projects/diabetes.yaml").read_text())
    raw.update({"time_column": "at", **changes})
    path = tmp / f"timed{len(list(tmp.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path)


def test_a_time_column_makes_the_split_train_on_the_past(tmp_path: Path) -> None:
    from castml.workflow import _split as split

    spec = _timed_spec(tmp_path)
    assert spec.split_kind == "time"
    rng = np.random.default_rng(1)
    stamps = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.permutation(1000), unit="h")
    frame = pd.DataFrame({"at": stamps, "progression": rng.normal(size=1000)})
    fit, val, test = split(frame, spec)
    assert (len(fit), len(val), len(test)) == (600, 200, 200)  # as a random split rounds
    assert fit["at"].max() < val["at"].min() and val["at"].max() < test["at"].min()
    assert fit["at"].is_monotonic_increasing and test["at"].is_monotonic_increasing
    random = _timed_spec(tmp_path, split={"kind": "random", "seed": 5})
    shuffled = split(frame, random)
    assert shuffled[0]["at"].max() > shuffled[2]["at"].min()


def test_a_time_split_orders_numbers_and_text_stamps_too(tmp_path: Path) -> None:
    from castml.workflow import _split as split

    spec = _timed_spec(tmp_path)
    numbers = pd.DataFrame({"at": [5, 1, 4, 2, 3, 9, 8, 7, 6, 10], "progression": range(10)})
    assert split(numbers, spec)[2]["at"].tolist() == [9, 10]
    text = numbers.assign(at=[f"2024-01-{d:02d}" for d in numbers["at"]])
    assert split(text, spec)[2]["at"].tolist() == ["2024-01-09", "2024-01-10"]


def test_a_sequence_split_keeps_each_rows_history_across_the_parts(tmp_path: Path) -> None:
    """Windows are built over the whole set before the time split: the first test rows of a
    stream see the rows before them, which the training part holds, as a served window
    does; the lags still copy only earlier rows."""
    from castml.data.sequence_windows import lag_extras, lag_name, windowed_frame
    from tests.support.lstm_seq_store import ctr_frame

    spec = load_spec("ctr")
    frame = ctr_frame(3000)
    data = tmp_path / "dataset"
    write_with_lineage(frame, data, {})
    paths = [tmp_path / "train", tmp_path / "validation", tmp_path / "test"]
    split_step("ctr", data, *paths)
    fit, _, test = (pd.read_parquet(p) for p in paths)

    _, present, _ = lag_extras(spec, 1)
    assert test[present].min() == 1.0  # no test row starts its stream anew at the cut
    alone = windowed_frame(test.drop(columns=[c for c in test if "__lag" in c]), spec)
    assert alone[present].min() == 0.0  # which windowing the test part alone would do
    # Each test row's window is the one the whole, time-ordered set gives it.
    whole = frame.join(windowed_frame(frame, spec).drop(columns=frame.columns, errors="ignore"))
    keys = [spec.time_column or "", "item_id", "position"]
    label = lag_name(spec.target, 1)
    expected = whole.sort_values(keys).tail(len(test))
    got = test.sort_values(keys)
    assert np.array_equal(got[label].to_numpy(), expected[label].to_numpy(), equal_nan=True)
    assert len(fit) + len(test) < len(frame)
