"""The served forecast model as every caller sees it: the forecast job's history API, the
`LoadedModel` interface the generic predictor and the pyfunc use, and a target learned
relative to a level feature."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from castml.runtime.forecast_model import (
    ForecastModel,
    HistoryGapError,
    HistoryInvalidError,
    HistoryTooShortError,
    from_learned,
)
from castml.runtime.loaded_model import load_model
from castml.runtime.model_bundle import read_encoding
from castml.spec import load_spec
from tests.support.forecast_training import bikeshare_rows, train_small

COLUMNS = ("ts", "count", "tmin", "tmax", "pn")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return bikeshare_rows("2012-09-01", "2012-10-15")


@pytest.fixture(scope="module")
def model_dir(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_small(frame, tmp_path_factory.mktemp("runtime"))[0]


def window(frame: pd.DataFrame, end: int, rows: int = 168) -> dict[str, np.ndarray]:
    part = frame.iloc[end - rows + 1 : end + 1]
    return {c: part[c].to_numpy() for c in COLUMNS}


def test_the_history_api_the_forecast_job_uses(frame: pd.DataFrame, model_dir: Path) -> None:
    model = ForecastModel.load(model_dir)
    assert model.horizons == (1, 24) and model.history_rows == 168
    assert (model.time_column, model.target, model.exogenous) == (
        "ts",
        "count",
        ("tmin", "tmax", "pn"),
    )
    history = window(frame, 500)
    design = model.features(history)
    assert design.shape == (2, len(model.features)) and list(design[:, 0]) == [1.0, 24.0]
    forecast = model.forecast(history)
    assert forecast.shape == (2,) and (forecast > 0).all()
    np.testing.assert_array_equal(forecast, model.score(design))
    many = model.forecast_many([history, window(frame, 600), history])
    assert many.shape == (3, 2)
    np.testing.assert_array_equal(many[0], forecast)
    np.testing.assert_array_equal(many[2], forecast)
    np.testing.assert_array_equal(many[1], model.forecast(window(frame, 600)))
    assert model.forecast_many([]).shape == (0, 2)


def test_it_is_a_loaded_model_scoring_design_rows_by_their_horizon(
    frame: pd.DataFrame, model_dir: Path
) -> None:
    model = load_model(model_dir)
    assert isinstance(model, ForecastModel) and model.manifest.family == "forecast"
    assert model.features == ["horizon", *model.features[1:]] and len(model.features) == 15
    rows = np.vstack([model.features(window(frame, end)) for end in (300, 400, 500)])
    mixed = rows[[5, 0, 3, 2, 1, 4]]  # horizons interleaved
    np.testing.assert_array_equal(
        model.predict(mixed)["prediction"], model.score(mixed).astype(np.float32)
    )
    np.testing.assert_array_equal(model.score(mixed), model.score(rows)[[5, 0, 3, 2, 1, 4]])
    unknown = rows[:1].copy()
    unknown[0, 0] = 6
    with pytest.raises(ValueError, match=r"no model for horizon\(s\) \[6.0\]"):
        model.score(unknown)
    # The pyfunc's encoding passes design rows through, NaN (unknown lag) included.
    encoding = read_encoding(model_dir)
    assert encoding.names == list(model.features)
    columns = {name: rows[:, i] for i, name in enumerate(encoding.names)}
    np.testing.assert_array_equal(encoding.encode(columns), rows)


def test_a_log_target_learned_relative_to_the_weekly_mean_is_added_back(
    frame: pd.DataFrame, tmp_path: Path
) -> None:
    base = load_spec("bikeshare")
    assert base.forecast is not None
    forecast = base.forecast.model_copy(update={"relative_to": "count_mean168"})
    spec = base.model_copy(update={"forecast": forecast, "target_transform": "log1p"})
    directory, _ = train_small(frame, tmp_path, spec)
    model = ForecastModel.load(directory)
    assert model.plan.relative_to == "count_mean168"
    history = window(frame, 700)
    design = model.features(history)
    raw = np.array(
        [
            model.predictors[h](design[i : i + 1].astype(np.float32))[0]
            for i, h in enumerate(model.horizons)
        ]
    )
    level = np.log1p(
        design[:, model.features.index("count_mean168")].astype(np.float32).astype(np.float64)
    )
    np.testing.assert_allclose(model.forecast(history), np.expm1(raw + level), rtol=1e-12)


def test_a_forecast_below_the_floor_is_raised_to_it(model_dir: Path) -> None:
    model = ForecastModel.load(model_dir)
    assert model.plan.floor == 0  # bikeshare counts
    design = np.zeros((3, len(model.features)))
    raw = np.array([-5.0, 0.0, 3.5])
    np.testing.assert_array_equal(from_learned("none", raw, design, model.plan), [0, 0, 3.5])
    unbounded = dataclasses.replace(model.plan, floor=None)
    np.testing.assert_array_equal(from_learned("none", raw, design, unbounded), raw)


def test_windows_on_their_grids_forecast_the_same_bits_as_one_history_each(
    frame: pd.DataFrame, model_dir: Path
) -> None:
    """The job's path (`forecast_grid`, windows laid on grids by numpy) against the
    per-history path (`forecast_many`): the same forecasts, bit for bit, and the same
    refusals."""
    model = ForecastModel.load(model_dir)
    ends = [300, 450, 600, 777]
    histories = [window(frame, end) for end in ends]
    width = model.history_rows
    grid = {c: np.stack([h[c] for h in histories]).astype(np.float64) for c in COLUMNS[1:]}
    filled = np.ones((len(ends), width), dtype=bool)
    origins = np.asarray([h["ts"][-1] for h in histories], dtype="datetime64[s]")
    seconds = origins.astype(np.int64)
    expected = model.forecast_many(histories)
    np.testing.assert_array_equal(model.forecast_grid(grid, filled, seconds), expected)
    assert model.forecast_grid(grid, filled[:0], seconds[:0]).shape == (0, 2)

    holed = filled.copy()
    holed[1, 100] = False  # one missing hour: the model tolerates none
    with pytest.raises(HistoryGapError):
        model.forecast_grid(grid, holed, seconds)
    late = filled.copy()
    late[2, 0] = False  # nothing at the window's first hour: too short, as one history
    with pytest.raises(HistoryTooShortError):
        model.forecast_grid(grid, late, seconds)
    with pytest.raises(HistoryInvalidError, match="lacks"):
        model.forecast_grid({"count": grid["count"]}, filled, seconds)
    with pytest.raises(HistoryInvalidError, match=r"\[series, 168\]"):
        model.forecast_grid({c: v[:, 1:] for c, v in grid.items()}, filled[:, 1:], seconds)
