"""The forecast's one feature function: train/serve parity bit for bit, the history window's
checks, and agreement with mlforecast's own lag and rolling-mean features."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from castml.data.lag_features import (
    HistoryGapError,
    HistoryInvalidError,
    HistoryTooShortError,
    LagFeature,
    LagPlan,
    history_window,
    series_design,
)
from castml.errors import CastmlError
from castml.models.forecast_family import frame_design, plan_of
from castml.runtime.forecast_model import ForecastModel
from castml.spec import load_spec
from tests.support.forecast_training import bikeshare_rows, train_small

COLUMNS = ("ts", "count", "tmin", "tmax", "pn")


@pytest.fixture(scope="module")
def slice_2012() -> pd.DataFrame:
    return bikeshare_rows("2012-03-01", "2012-05-01")


@pytest.fixture(scope="module")
def model(slice_2012: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> ForecastModel:
    model_dir, _ = train_small(slice_2012, tmp_path_factory.mktemp("forecast"))
    return ForecastModel.load(model_dir)


def history(frame: pd.DataFrame, origin: int, rows: int) -> dict[str, np.ndarray]:
    """The `rows` rows of `frame` ending at row `origin`, as the forecast job passes them."""
    part = frame.iloc[max(0, origin - rows + 1) : origin + 1]
    return {c: part[c].to_numpy() for c in COLUMNS}


def test_training_rows_and_serving_rows_are_the_same_bits(
    slice_2012: pd.DataFrame, model: ForecastModel
) -> None:
    spec = load_spec("bikeshare")
    design = frame_design(spec, slice_2012, model.plan)
    first = model.history_rows - 1
    per_h = {h: design.x[design.horizon == h] for h in model.horizons}
    checked = 0
    # Every 5th origin with a 24 h target, from a window longer than needed (the job's).
    for origin in range(first, len(slice_2012) - 24, 5):
        served = model.features(history(slice_2012, origin, model.history_rows + 37))
        trained = np.stack([per_h[h][origin - first] for h in model.horizons])
        assert served.dtype == trained.dtype == np.float64
        assert served.tobytes() == trained.tobytes(), f"origin {origin} differs"
        checked += 1
    assert checked > 200
    # The rows are real features, not all-NaN or constant: lag 24 is the count a day back.
    origin = first + 100
    row = model.features(history(slice_2012, origin, model.history_rows))[0]
    lag24 = model.features.index("count_lag24")
    assert row[lag24] == slice_2012["count"].iloc[origin + 1 - 24]


def test_weather_is_yesterdays_and_the_24h_model_goes_without_lag1(
    slice_2012: pd.DataFrame, model: ForecastModel
) -> None:
    origin = 400  # some hour of some day
    rows = model.features(history(slice_2012, origin, model.history_rows))
    names = list(model.features)
    day = slice_2012["ts"].iloc[origin].normalize()
    yesterday = slice_2012[slice_2012["ts"].dt.normalize() == day - pd.Timedelta(days=1)]
    assert rows[0, names.index("tmax_yesterday")] == yesterday["tmax"].iloc[0]
    today = slice_2012[slice_2012["ts"].dt.normalize() == day]
    assert rows[0, names.index("tmax_yesterday")] != today["tmax"].iloc[0] or (
        yesterday["tmax"].iloc[0] == today["tmax"].iloc[0]
    )
    assert not np.isnan(rows[0, names.index("count_lag1")])  # 1 h: known
    assert np.isnan(rows[1, names.index("count_lag1")])  # 24 h: after the origin
    assert rows[1, names.index("count_lag24")] == slice_2012["count"].iloc[origin]


def test_a_short_history_is_refused_naming_needed_and_given_rows(
    slice_2012: pd.DataFrame, model: ForecastModel
) -> None:
    with pytest.raises(HistoryTooShortError) as caught:
        model.forecast(history(slice_2012, 500, 100))
    assert caught.value.needed == 168 and caught.value.given == 100
    assert "needs the 168 rows" in str(caught.value) and "given 100" in str(caught.value)
    assert isinstance(caught.value, CastmlError) and caught.value.status_code == 422


def test_a_gap_in_the_window_is_refused_naming_it(
    slice_2012: pd.DataFrame, model: ForecastModel
) -> None:
    window = history(slice_2012, 600, 200)
    hole = np.r_[0:120, 130:200]  # 10 hours missing, 70 hours before the origin
    gapped = {c: v[hole] for c, v in window.items()}
    with pytest.raises(HistoryGapError) as caught:
        model.forecast(gapped)
    missing_from = pd.Timestamp(window["ts"][120]).isoformat()
    assert caught.value.missing == 10 and caught.value.start == missing_from
    assert "gap of 10 missing row(s)" in str(caught.value)


def test_a_tolerated_gap_gives_missing_features_not_made_up_ones(
    slice_2012: pd.DataFrame, model: ForecastModel
) -> None:
    plan = dataclasses.replace(model.plan, max_gap=3)
    window = history(slice_2012, 600, 168)
    keep = np.r_[0:144, 146:168]  # rows 23 and 22 hours before the origin are missing
    grid, _ = history_window({c: v[keep] for c, v in window.items()}, plan)
    assert np.isnan(grid["count"][144:146]).all()
    assert not np.isnan(np.delete(grid["count"], [144, 145])).any()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h: {k: v for k, v in h.items() if k != "tmin"}, r"lacks column\(s\): tmin"),
        (lambda h: {**h, "ts": h["ts"][::-1]}, "times must increase"),
        (lambda h: {**h, "count": h["count"][:-1]}, "differ in length"),
        (lambda h: {**h, "ts": h["ts"].astype(str)}, "must be datetime64"),
    ],
)
def test_a_history_that_is_not_a_series_is_refused(
    slice_2012: pd.DataFrame, model: ForecastModel, change: object, message: str
) -> None:
    with pytest.raises(HistoryInvalidError, match=message):
        model.forecast(change(history(slice_2012, 500, 200)))  # type: ignore[operator]


def test_lags_and_rolling_means_agree_with_mlforecast(slice_2012: pd.DataFrame) -> None:
    """mlforecast (the anchor library) computes the same lags and rolling means at 1 h."""
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean

    spec = load_spec("bikeshare")
    plan = plan_of(spec)
    plan = LagPlan(
        plan.time_column,
        plan.target,
        (),
        plan.step_seconds,
        (1,),
        (),
        (
            LagFeature("lag1", "count", "lag", 1, 1, "target"),
            LagFeature("lag24", "count", "lag", 24, 1, "target"),
            LagFeature("lag168", "count", "lag", 168, 1, "target"),
            LagFeature("mean24", "count", "rolling_mean", 0, 24, "origin"),
            LagFeature("mean168", "count", "rolling_mean", 0, 168, "origin"),
        ),
    )
    ours = frame_design(spec, slice_2012, plan)
    frame = pd.DataFrame({"unique_id": "dc", "ds": slice_2012["ts"], "y": slice_2012["count"]})
    theirs = MLForecast(
        models=[],
        freq="h",
        lags=[1, 24, 168],
        lag_transforms={1: [RollingMean(window_size=24), RollingMean(window_size=168)]},
    ).preprocess(frame, dropna=True)
    # Rows are keyed by the time being forecast: ours by target time, theirs by ds.
    ours_at = pd.Series(np.arange(len(ours.y)), index=ours.target_seconds.astype("datetime64[s]"))
    rows = ours_at.reindex(theirs["ds"].to_numpy().astype("datetime64[s]")).dropna().astype(int)
    assert len(rows) > 1000
    matched = theirs.set_index("ds").loc[rows.index.astype("datetime64[ns]")]
    x = ours.x[rows.to_numpy()]
    for index, column in enumerate(
        [
            "lag1",
            "lag24",
            "lag168",
            "rolling_mean_lag1_window_size24",
            "rolling_mean_lag1_window_size168",
        ],
        start=1,
    ):
        np.testing.assert_allclose(x[:, index], matched[column].to_numpy(), rtol=1e-12)


def test_the_plan_travels_as_json(model: ForecastModel, tmp_path: Path) -> None:
    again = LagPlan.from_json(model.plan.to_json())
    assert again == model.plan and again.history_rows == 168
    assert again.columns == list(model.features)


@pytest.mark.parametrize("max_gap", [0, 4, 5])
def test_training_drops_exactly_the_origins_serving_refuses_for_a_gap(max_gap: int) -> None:
    plan = LagPlan(
        "ts",
        "y",
        (),
        3600,
        (1,),
        (),
        (
            LagFeature("lag1", "y", "lag", 1, 1, "target"),
            LagFeature("lag24", "y", "lag", 24, 1, "target"),
        ),
        max_gap=max_gap,
    )
    hours = np.delete(np.arange(200), np.arange(100, 105))  # 5 missing hours
    times = (1_500_000_000 // 3600 + hours) * 3600
    values = {"y": hours.astype(np.float64)}
    _, y, at = series_design(times, values, plan)
    trained = set((at[~np.isnan(y)] - 3600).tolist())  # origins with a training row
    served = set()
    for end in range(len(times) - 1):  # origins with a row and a target after them
        window = {"ts": times[: end + 1].astype("datetime64[s]"), "y": values["y"][: end + 1]}
        try:
            history_window(window, plan)
        except HistoryGapError:
            continue
        except HistoryTooShortError:
            continue
        if times[end] + 3600 in set(times.tolist()):
            served.add(int(times[end]))
    assert trained == served
    assert (len(trained) < 200 - 24 - 5 - 1) == (max_gap < 5)
