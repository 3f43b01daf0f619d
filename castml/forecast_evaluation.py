"""Evaluate a forecast candidate (task forecast): rolling-origin backtests over the test period.

The candidate, the reigning @champion (when it can forecast the spec's horizons) and the
two naive references forecast from the very same origins of the time-ordered test period
(`castml.forecast_backtest`); the first `history_rows` rows of the period serve as history
only. The gate is the spec's `gates`: skill floors (e.g. `skill_seasonal_h1`) and no
regression against the champion on these same windows (e.g. `rmse_h24`). The seasonal-naive
forecast is the `baseline` of the report and of the `baseline_*` metrics; naive-24h is
among `baselines`. Plots: predicted against actual and residuals at the first horizon, and
a SHAP summary of the candidate's design rows there.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from castml import evaluation_plots
from castml.evaluation import Evaluation
from castml.evaluation_plots import Scored
from castml.forecast_backtest import NAIVE24, SEASONAL, Backtest, metrics, run_backtest, series_of
from castml.models.holdout_metrics import GateVerdict, apply_gates
from castml.runtime.forecast_model import ForecastModel
from castml.runtime.loaded_model import load_model
from castml.spec import ProjectSpec

CANDIDATE, CHAMPION = "candidate", "champion"


def _forecaster(directory: Path) -> ForecastModel:
    model = load_model(directory)
    if not isinstance(model, ForecastModel):
        raise ValueError(f"it is a {model.manifest.family} model, not a forecast")
    return model


def backtest_models(
    spec: ProjectSpec, models: dict[str, ForecastModel], test: pd.DataFrame
) -> Backtest:
    assert spec.forecast is not None
    forecast = spec.forecast
    return run_backtest(
        series_of(spec, test),
        models,
        forecast.horizons,
        target=spec.target,
        season=forecast.season,
        step_seconds=forecast.step_seconds,
        windows=forecast.backtest.windows,
        stride=forecast.backtest.stride,
    )


def evaluate_forecast(
    spec: ProjectSpec,
    model_dir: Path,
    test: pd.DataFrame,
    champion: tuple[int, Path] | None,
    *,
    plots: bool = True,
) -> Evaluation:
    """Backtest the candidate (and the champion) over `test`; apply the spec's gates."""
    models = {CANDIDATE: _forecaster(model_dir)}
    champion_version, note = None, "no champion yet"
    if champion is not None:
        champion_version, champion_dir = champion
        try:
            reigning = _forecaster(champion_dir)
            missing = sorted(set(spec.forecast.horizons) - set(reigning.horizons))  # type: ignore[union-attr]
            if missing:
                raise ValueError(f"it has no model for horizon(s) {missing}")
            models[CHAMPION] = reigning
        except (OSError, KeyError, ValueError) as exc:
            note = f"champion version {champion_version} cannot be backtested here: {exc}"
    result = backtest_models(spec, models, test)
    candidate = metrics(result, CANDIDATE)
    champion_metrics = metrics(result, CHAMPION) if CHAMPION in models else None
    if champion_metrics is not None:
        note = f"champion is version {champion_version}, backtested on the same origins"
    drawn, seconds = _plots(spec, models, result) if plots else ({}, {})
    return Evaluation(
        task=str(spec.task),
        test_rows=result.rows,
        candidate=candidate,
        baseline=metrics(result, SEASONAL),
        champion=champion_metrics,
        champion_version=champion_version,
        champion_note=f"{note}; {result.rows} forecast origins in {result.windows} windows",
        gate=recent_window_gate(
            apply_gates(candidate, champion_metrics, spec.gates), candidate, champion_metrics, spec
        ),
        threshold=0.0,
        confusion_matrix=None,
        roc=None,
        plots=drawn,
        plot_seconds=seconds,
        baselines={NAIVE24: metrics(result, NAIVE24)},
    )


def recent_window_gate(
    gate: GateVerdict,
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    spec: ProjectSpec,
) -> GateVerdict:
    """The champion comparison again on the most recent backtest window alone: a candidate
    must not regress there beyond the same tolerance (`gates.max_regression`), so a model
    that is better on average but worse on the latest data (after a drift) is refused."""
    assert spec.forecast is not None
    last = spec.forecast.backtest.windows
    if champion is None or last < 2:
        return gate
    # The same rule as the whole backtest's (`apply_gates`), on the last window's metrics.
    windowed = {
        f"{metric}_w{last}": tolerance
        for metric, tolerance in spec.gates.max_regression.items()
        if f"{metric}_w{last}" in candidate and f"{metric}_w{last}" in champion
    }
    lower = [f"{metric}_w{last}" for metric in spec.gates.lower_is_better]
    rule = spec.gates.model_copy(
        update={"floors": {}, "max_regression": windowed, "lower_is_better": lower}
    )
    verdict = apply_gates(candidate, champion, rule)
    reasons = [f"most recent window: {reason}" for reason in verdict.reasons]
    return GateVerdict(gate.passed and verdict.passed, [*gate.reasons, *reasons])


def _plots(
    spec: ProjectSpec, models: dict[str, ForecastModel], result: Backtest
) -> tuple[dict[str, bytes], dict[str, float]]:
    started = time.perf_counter()
    first = result.horizons[0]
    y = result.actual[first]
    scored = [
        Scored(
            CANDIDATE, f"candidate ({first} step ahead)", result.forecasts[CANDIDATE][first], 0.0
        )
    ]
    if CHAMPION in models:
        scored.append(Scored(CHAMPION, "@champion", result.forecasts[CHAMPION][first], 0.0))
    scored.append(Scored("baseline", "seasonal naive", result.forecasts[SEASONAL][first], 0.0))
    drawn = evaluation_plots.regression_plots(y, scored)
    curves_done = time.perf_counter()
    design = result.design[CANDIDATE]
    model = models[CANDIDATE]
    values, rows = evaluation_plots.shap_values(model.score, design, spec.split.seed)
    drawn[evaluation_plots.SHAP_PLOT] = evaluation_plots.shap_summary_plot(
        values, rows, list(model.features)
    )
    seconds = {
        "curves": curves_done - started,
        "shap_summary": time.perf_counter() - curves_done,
    }
    return drawn, seconds
