from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from castml.data.diecast import generate
from castml.data.loaders import data_hash, load_dataset, read_table
from castml.data.validation import find_problems, validated
from castml.errors import DataValidationError, SpecError
from castml.spec import load_spec

SPEC = load_spec("diecast")


@pytest.fixture
def shots() -> pd.DataFrame:
    return generate(800, seed=4)


def test_clean_data_passes_in_spec_order(shots: pd.DataFrame) -> None:
    reordered = shots[list(reversed(shots.columns))]
    out = validated(reordered, SPEC)
    assert list(out.columns) == [*SPEC.feature_names, "defect"]
    assert out["defect"].dtype == np.int64


def _problems(frame: pd.DataFrame) -> str:
    with pytest.raises(DataValidationError) as caught:
        validated(frame, SPEC)
    return str(caught.value)


def test_missing_and_extra_columns_are_named(shots: pd.DataFrame) -> None:
    broken = shots.drop(columns=["Sensor_Vibration", "Process_Pressure"]).assign(operator="bob")
    message = _problems(broken)
    assert "missing columns: Process_Pressure, Sensor_Vibration" in message
    assert "unknown columns: operator" in message


def test_wrong_dtype_nan_inf_and_out_of_bounds_each_named(shots: pd.DataFrame) -> None:
    broken = shots.copy()
    broken["Process_CycleTime"] = broken["Process_CycleTime"].astype(str)
    broken.loc[3, "Sensor_Vibration"] = np.nan
    broken.loc[4, "Sensor_MeltLevel"] = np.inf
    broken.loc[5, "Process_Temperature"] = 2000.0
    broken.loc[6, "Process_VacuumLevel"] = -1.0
    message = _problems(broken)
    assert "Process_CycleTime: wrong dtype object" in message
    assert "Sensor_Vibration: 1 NaN value(s)" in message
    assert "Sensor_MeltLevel: 1 infinite value(s)" in message
    assert "Process_Temperature: 1 value(s) outside the physical bounds [550.0, 800.0]" in message
    assert "Process_VacuumLevel: 1 value(s) outside the physical bounds" in message
    assert "with 5 problem(s)" in message


def test_too_few_rows_single_class_and_bad_labels(shots: pd.DataFrame) -> None:
    assert "too few rows: 100 < 500" in _problems(shots.head(100))
    assert "a single class (0)" in _problems(shots.assign(defect=0))
    assert "binary target must be 0/1" in _problems(shots.assign(defect=shots["defect"] * 2))
    assert "missing or infinite target" in _problems(
        shots.assign(defect=np.where(shots.index == 0, np.nan, 1.0))
    )
    assert "minority class has 3 rows" in _problems(
        shots.assign(defect=(shots.index < 3).astype(int))
    )


def test_every_problem_is_reported_at_once(shots: pd.DataFrame) -> None:
    broken = shots.head(50).drop(columns=["Sensor_Vibration"]).assign(defect=1)
    problems = find_problems(broken, SPEC)
    assert len(problems) == 3


def test_files_round_trip_and_corrupt_files_fail_clearly(
    tmp_path: Path, shots: pd.DataFrame
) -> None:
    csv, parquet = tmp_path / "s.csv", tmp_path / "s.parquet"
    shots.to_csv(csv, index=False)
    shots.to_parquet(parquet, index=False)
    from_csv = validated(load_dataset(SPEC, csv), SPEC)
    from_parquet = validated(load_dataset(SPEC, parquet), SPEC)
    pd.testing.assert_frame_equal(
        from_csv, from_parquet, rtol=1e-12
    )  # CSV text may round the last bit
    corrupt = tmp_path / "bad.parquet"
    corrupt.write_bytes(b"PAR1 definitely not parquet")
    with pytest.raises(DataValidationError, match="cannot be read"):
        read_table(corrupt)
    with pytest.raises(SpecError, match="does not exist"):
        read_table(tmp_path / "missing.csv")
    with pytest.raises(SpecError, match="unsupported file type"):
        (tmp_path / "x.json").write_text("{}")
        read_table(tmp_path / "x.json")


def test_data_hash_changes_with_content(shots: pd.DataFrame) -> None:
    clean = validated(shots, SPEC)
    changed = clean.copy()
    changed.loc[0, "Process_Pressure"] += 1
    assert data_hash(clean) == data_hash(clean.copy())
    assert data_hash(clean) != data_hash(changed)


def test_sklearn_sources_load_with_renamed_columns() -> None:
    spec = load_spec("breast_cancer")
    frame = validated(load_dataset(spec), spec)
    assert len(frame) == 569 and "mean_radius" in frame.columns
    diabetes = load_spec("diabetes")
    assert validated(load_dataset(diabetes), diabetes)["progression"].dtype == np.float64
