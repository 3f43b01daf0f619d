"""Rolling-origin backtests: metrics on a series where every number is known in advance,
the batched backtest against the serving API origin by origin, and the gate against a
champion on the same windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from castml.evaluation import evaluate
from castml.forecast_backtest import (
    NAIVE24,
    SEASONAL,
    Series,
    metrics,
    run_backtest,
    series_of,
    smape,
)
from castml.models.forecast_family import train
from castml.runtime.forecast_model import ForecastModel
from castml.spec import load_spec
from castml.workflow import _time_split
from tests.support.forecast_training import SMALL, bikeshare_rows, train_small

HOUR = 3600


def linear_series(hours: int) -> Series:
    """y = t (one more each hour): every naive forecast's error is its look-back, exactly."""
    t = np.arange(hours, dtype=np.float64)
    return Series("line", 1_600_000_000 // HOUR * HOUR + np.arange(hours) * HOUR, {"y": t})


def test_naive_forecasts_on_a_known_series_score_exactly() -> None:
    result = run_backtest(
        [linear_series(24 * 7 * 5)],
        {},
        (1, 24, 30),
        target="y",
        season=168,
        step_seconds=HOUR,
        windows=3,
    )
    seasonal, naive = metrics(result, SEASONAL), metrics(result, NAIVE24)
    for h in (1, 24):
        assert seasonal[f"rmse_h{h}"] == 168 and seasonal[f"mae_h{h}"] == 168
        assert naive[f"rmse_h{h}"] == 24
        assert seasonal[f"skill_seasonal_h{h}"] == 0
        assert seasonal[f"skill_naive24_h{h}"] == 1 - 168 / 24
        assert naive[f"skill_seasonal_h{h}"] == 1 - 24 / 168
    # 30 h ahead: the newest whole day known at the origin is two days back.
    assert naive["rmse_h30"] == 48
    # Origins: the first has a season of history (168 rows, itself included), the last a
    # target 30 h on.
    assert result.rows == 24 * 7 * 5 - 167 - 30
    assert {seasonal[f"rmse_h1_w{w}"] for w in (1, 2, 3)} == {168.0}
    counts = np.bincount(result.window[1])
    assert counts.sum() == result.rows and counts.max() - counts.min() <= 1


def test_smape_is_symmetric_percent_and_zero_where_both_are_zero() -> None:
    actual = np.array([0.0, 100.0, 100.0])
    forecast = np.array([0.0, 50.0, 150.0])
    expected = 100 * np.mean([0, 2 * 50 / 150, 2 * 50 / 250])
    assert smape(actual, forecast) == pytest.approx(expected)
    assert smape(forecast[1:], actual[1:]) == smape(actual[1:], forecast[1:])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    return train_small(bikeshare_rows("2012-06-01", "2012-08-01"), tmp_path_factory.mktemp("bt"))


def test_the_batched_backtest_forecasts_what_the_runtime_forecasts_origin_by_origin(
    trained: tuple[Path, pd.DataFrame],
) -> None:
    model_dir, test = trained
    model = ForecastModel.load(model_dir)
    spec = load_spec("bikeshare")
    result = run_backtest(
        series_of(spec, test),
        {"candidate": model},
        (1, 24),
        target="count",
        season=168,
        step_seconds=HOUR,
        stride=24,
    )
    origins = 167 + 24 * np.arange(result.rows)  # rows of `test` that were origins
    histories = [
        {c: test[c].to_numpy()[o - 167 : o + 1] for c in ("ts", "count", "tmin", "tmax", "pn")}
        for o in origins
    ]
    one_by_one = np.stack([model.forecast(h) for h in histories])
    np.testing.assert_array_equal(result.forecasts["candidate"][1], one_by_one[:, 0])
    np.testing.assert_array_equal(result.forecasts["candidate"][24], one_by_one[:, 1])
    np.testing.assert_array_equal(model.forecast_many(histories), one_by_one)
    actual = test["count"].to_numpy()
    np.testing.assert_array_equal(result.actual[24], actual[origins + 24])
    np.testing.assert_array_equal(result.forecasts[SEASONAL][24], actual[origins + 24 - 168])
    assert metrics(result, "candidate")["rmse_h1"] == pytest.approx(
        np.sqrt(np.mean((one_by_one[:, 0] - actual[origins + 1]) ** 2))
    )


def test_a_worse_candidate_fails_the_gate_against_the_champion_on_the_same_windows(
    trained: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    champion_dir, test = trained
    spec = load_spec("bikeshare")
    frame = bikeshare_rows("2012-06-01", "2012-08-01")
    fit, validation, _ = _time_split(frame, spec)
    crippled = {"forecast": {**SMALL["forecast"], "n_estimators": 1, "learners": ["lightgbm"]}}
    train(
        spec, fit, validation, tmp_path / "m", tmp_path / "b", spec.model.resolved(None, crippled)
    )
    result = evaluate(spec, tmp_path / "m", tmp_path / "b", test, (4, champion_dir), plots=False)
    assert result.champion_version == 4 and result.champion is not None
    assert not result.gate.passed
    regressed = [r for r in result.gate.reasons if "regresses" in r]
    assert any(r.startswith("rmse_h1=") for r in regressed), result.gate.reasons
    # ...and on the most recent backtest window alone, which the gate checks again.
    assert any(r.startswith("most recent window: rmse_h1_w4=") for r in regressed)
    assert result.champion["rmse_h1"] < result.candidate["rmse_h1"]
    assert result.baselines[NAIVE24]["skill_naive24_h1"] == 0
    # Scored on the same rows: the references are the same for both.
    alone = evaluate(spec, tmp_path / "m", tmp_path / "b", test, None, plots=False)
    assert alone.baseline == result.baseline and alone.test_rows == result.test_rows


def test_a_candidate_as_good_as_the_champion_regresses_on_no_window(
    trained: tuple[Path, pd.DataFrame],
) -> None:
    model_dir, test = trained
    spec = load_spec("bikeshare")
    result = evaluate(spec, model_dir, model_dir, test, (1, model_dir), plots=False)
    assert result.candidate == result.champion
    # (This small model may miss a skill floor; the champion comparisons all hold.)
    compared = [r for r in result.gate.reasons if "champion" in r]
    assert len(compared) == 4 and not [r for r in compared if "regresses" in r]
    assert "most recent window: rmse_h24_w4=" in result.gate.tag
