from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

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
    assert "unknown columns: operator (neither a feature nor the target" in message
    assert "list them under ignore: in the spec to drop them" in message


def test_wrong_dtype_nan_inf_and_out_of_bounds_each_named(shots: pd.DataFrame) -> None:
    broken = shots.copy()
    broken["Process_CycleTime"] = broken["Process_CycleTime"].astype(object)
    broken.loc[2, "Process_CycleTime"] = "fast"
    broken.loc[3, "Sensor_Vibration"] = np.nan
    broken.loc[4, "Sensor_MeltLevel"] = np.inf
    broken.loc[5, "Process_Temperature"] = 2000.0
    broken.loc[6, "Process_VacuumLevel"] = -1.0
    message = _problems(broken)
    assert (
        "Process_CycleTime: 1 value(s) that are not a valid float (column type object),"
        " e.g. 'fast'" in message
    )
    assert "Sensor_Vibration: 1 NaN value(s), missing values the spec refuses" in message
    assert "Sensor_MeltLevel: 1 value(s) that are not a valid float (column type float64)" in (
        message
    )
    assert "Process_Temperature: 1 value(s) outside the physical bounds [550.0, 800.0]" in message
    assert "Process_VacuumLevel: 1 value(s) outside the physical bounds" in message
    assert "with 5 problem(s)" in message


def test_a_bool_column_is_not_a_float_feature(shots: pd.DataFrame) -> None:
    message = _problems(shots.assign(Process_CycleTime=shots["Process_CycleTime"] > 60))
    assert "Process_CycleTime: 800 value(s) that are not a valid float (column type bool)" in (
        message
    )


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


# --- typed features: every problem named at once --------------------------------------------

ADULT = Path("castml/projects/drafts/adult.yaml")


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return load_dataset(load_spec(ADULT))


def _broken_adult_spec(tmp_path: Path) -> Path:
    """The Adult spec with a feature the data lacks, a stale ignore and a refused missing."""
    raw = yaml.safe_load(ADULT.read_text())
    raw["ignore"] = ["fnlwgt", "education_num", "row_id"]
    for feature in raw["features"]:
        if feature["name"] == "occupation":
            feature.pop("missing")
        if feature["name"] == "education":
            feature["categories"] = ["Bachelors", "HS-grad"]
    raw["features"].append({"name": "zip_code", "dtype": "categorical"})
    path = tmp_path / "adult_broken.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_every_typed_problem_is_named_at_once(tmp_path: Path, adult: pd.DataFrame) -> None:
    spec = load_spec(_broken_adult_spec(tmp_path))
    broken = adult.copy()
    broken["age"] = broken["age"].astype(object)
    broken.loc[0, "age"] = "forty"
    broken.loc[1, "age"] = 38.5
    broken.loc[2, "income"] = ">50K."
    broken["hired"] = "2020-01-01"
    broken = broken.assign(extra=1)
    problems = find_problems(broken, spec)
    text = "\n".join(problems)
    assert "missing columns: zip_code" in text
    assert "ignored columns not in the data: row_id" in text
    assert "unknown columns: hired, extra" in text
    assert "age: 2 value(s) that are not a valid int (column type object), e.g. 'forty', 38.5" in (
        text
    )
    assert "occupation: 1843 missing value(s), missing values the spec refuses" in text
    assert "education: 16705 row(s) with unknown categories '10th', '11th'" in text
    assert "(add them to categories:, or set unknown: other)" in text
    assert "income: 1 target value(s) other than the target_labels ['<=50K', '>50K']: '>50K.'" in (
        text
    )
    assert len(problems) == 7


def test_data_validate_reports_each_problem_on_its_own_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    spec = _broken_adult_spec(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "castml.cli.main", "data", "validate", "--project", str(spec)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 4, result.stderr
    assert errors[0] == "error: missing columns: zip_code"
    assert any(e.startswith("error: occupation: 1843 missing value(s)") for e in errors)
    assert "4 problem(s) in the data of adult" in result.stderr


def test_datetime_bool_categorical_and_time_column_rules() -> None:
    from castml.spec import ProjectSpec

    spec = ProjectSpec.model_validate(
        {
            "name": "typed",
            "task": "regression",
            "target": "y",
            "target_transform": "log1p",
            "time_column": "t",
            "source": {"kind": "csv", "path": "x.csv"},
            "features": [
                {"name": "d", "dtype": "datetime"},
                {"name": "b", "dtype": "bool"},
                {"name": "c", "dtype": "categorical", "categories": ["a"], "unknown": "other"},
            ],
            "model": {"params": {"gbm": {}}},
            "validation": {"min_rows": 1},
        }
    )
    good = pd.DataFrame(
        {
            "d": ["2024-01-01T10:00", "2024-01-02"],
            "b": ["true", "false"],
            "c": ["a", "new"],  # unknown: other takes it
            "t": ["2024-03-01", "2024-03-02"],
            "y": [0.0, 3.0],
        }
    )
    clean = validated(good, spec)
    assert list(clean.columns) == ["d", "b", "c", "t", "y"]
    assert clean["d"].dtype == "datetime64[ns]" and clean["t"].dtype == "datetime64[ns]"
    assert clean["b"].tolist() == [1.0, 0.0] and clean["c"].tolist() == ["a", "new"]
    bad = good.assign(d=["2024-01-01", "soon"], b=["yes", "perhaps"], t=[None, "x"], y=[-1, 2])
    problems = find_problems(bad, spec)
    assert problems == [
        "d: 1 value(s) that are not a valid datetime (column type object), e.g. 'soon'",
        "b: 1 value(s) that are not a valid bool (column type object), e.g. 'perhaps'",
        "t: 2 time value(s) that are missing or not a datetime, e.g. 'x'",
        "y: 1 value(s) <= -1, where log1p is undefined",
    ]
