"""The forecast parts of a spec: bikeshare as declared, what a forecast spec refuses, and
the data file's recorded SHA-256."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from castml.data.loaders import load_dataset
from castml.errors import SpecError
from castml.models.forecast_family import plan_of
from castml.spec import PROJECTS_DIR, Task, load_spec


def bikeshare_raw() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load((PROJECTS_DIR / "bikeshare.yaml").read_text())
    return raw


def load_changed(tmp_path: Path, change: Any) -> Any:
    raw = copy.deepcopy(bikeshare_raw())
    change(raw)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path)


def test_bikeshare_is_a_forecast_spec_with_the_history_its_lags_need() -> None:
    spec = load_spec("bikeshare")
    assert spec.task is Task.FORECAST and spec.forecast is not None
    assert spec.forecast.horizons == [1, 24] and spec.time_column == "ts"
    assert spec.target_transform == "none" and spec.source.sha256 is not None
    plan = plan_of(spec)
    assert plan.history_rows == 168  # lag 168 at 1 h, and the week's rolling mean
    assert plan.exogenous == ("tmin", "tmax", "pn")
    yesterday = [f for f in plan.lags if f.source != "count"]
    assert {(f.lag, f.anchor) for f in yesterday} == {(24, "origin")}  # no peeking
    assert plan.columns[:5] == ["horizon", "hour", "day_of_week", "month", "holiday"]


def test_a_changed_data_file_is_refused_naming_both_digests(tmp_path: Path) -> None:
    spec = load_spec("bikeshare")
    wrong = "0" * 64
    changed = spec.model_copy(update={"source": spec.source.model_copy(update={"sha256": wrong})})
    with pytest.raises(SpecError, match=f"SHA-256 is {spec.source.sha256}.*says {wrong}"):
        load_dataset(changed)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("forecast"), "task forecast needs forecast:"),
        (lambda r: r["forecast"].update(horizons=[24, 1]), "distinct steps >= 1, ascending"),
        (
            lambda r: r["derived"].append({"name": "x", "kind": "lag", "source": "count"}),
            r"kind lag needs lag \(missing: lag\)",
        ),
        (
            lambda r: r["derived"].append(
                {"name": "x", "kind": "lag", "source": "count", "lag": 3, "window": 2}
            ),
            "takes no window",
        ),
        (
            lambda r: r["derived"].append({"name": "x", "kind": "rolling_mean", "source": "count"}),
            "kind rolling_mean needs window",
        ),
        (
            lambda r: r["derived"].append({"name": "x", "kind": "lag", "source": "date", "lag": 3}),
            "source 'date' must be the target or a numeric feature",
        ),
        (
            lambda r: r["derived"].append({"name": "x", "source": "count", "part": "hour"}),
            "calendar parts are of the time_column 'ts'",
        ),
        (lambda r: r["model"].update(family="gbm"), "needs model.family forecast"),
        (lambda r: r["split"].update(kind="random"), "needs the time split"),
        (
            lambda r: r["forecast"].update(series_column="tmin"),
            "series_column 'tmin' must be a categorical feature",
        ),
        (
            lambda r: r["forecast"].update(relative_to="count_lag1"),
            "relative_to 'count_lag1' must be a lag or rolling_mean of the target known",
        ),
    ],
)
def test_a_forecast_spec_names_what_is_wrong(tmp_path: Path, change: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load_changed(tmp_path, change)


def test_lags_belong_to_forecast_specs_only(tmp_path: Path) -> None:
    raw = yaml.safe_load((PROJECTS_DIR / "diabetes.yaml").read_text())
    raw["derived"] = [{"name": "lagged", "kind": "lag", "source": "progression", "lag": 1}]
    path = tmp_path / "diabetes.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match="apply to task forecast only"):
        load_spec(path)
