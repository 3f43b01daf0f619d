"""Rolling-origin backtests of forecast models over a time-ordered period.

Every model is frozen (trained before the period) and forecasts from every origin in the
period, `stride` rows apart, each from the history before it: what the forecast job would
have served, hour after hour. The design rows come from the one feature function
(`castml.data.lag_features.design_rows`) with each model's own plan, so a champion with
other lags is scored on the same origins as the candidate.

Two reference forecasts need no training:
- seasonal naive: the value one season back from the target (the same hour a week
  before, for hourly data with season 168), `skill_seasonal = 1 - RMSE / RMSE(seasonal)`;
- naive-24h: the value one day back from the target, the newest whole day known at the
  origin for horizons up to a day (`skill_naive24`).

Metrics per horizon h (`<metric>_h<h>`): rmse, mae, smape (percent, 0..200; 0 where the
forecast and the actual are both 0), skill_seasonal, skill_naive24; and the RMSE in each of
`windows` consecutive windows of origins (`rmse_h<h>_w<i>`), which shows whether a model
degrades over the period. Rows are kept only where every model and both references have a
value, so all are scored on exactly the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from castml.data.lag_features import LagPlan, design_rows, on_grid
from castml.runtime.forecast_model import ForecastModel
from castml.spec import ProjectSpec

SEASONAL, NAIVE24 = "seasonal_naive", "naive24"
DAY_SECONDS = 86_400


@dataclass(frozen=True)
class Series:
    """One series, time-ordered: seconds since the epoch, and its value columns."""

    name: str
    times: np.ndarray  # int64
    values: dict[str, np.ndarray]  # float64


def series_of(spec: ProjectSpec, frame: pd.DataFrame) -> list[Series]:
    """`frame`'s series (one, or one per value of `forecast.series_column`), time-ordered."""
    assert spec.forecast is not None and spec.time_column is not None
    key = spec.forecast.series_column
    parts = (
        [(spec.forecast.series_name, frame)]
        if key is None
        else [(str(name), part) for name, part in frame.groupby(key, sort=True)]
    )
    numeric = [spec.target, *(f.name for f in spec.features if f.is_numeric)]
    out = []
    for name, part in parts:
        times = (pd.to_datetime(part[spec.time_column]).to_numpy().astype("datetime64[s]")).astype(
            np.int64
        )
        order = np.argsort(times, kind="stable")
        values = {c: part[c].to_numpy(np.float64)[order] for c in numeric}
        out.append(Series(name, times[order], values))
    return out


@dataclass
class Backtest:
    """Per horizon: the actual values, each model's forecasts, each row's window."""

    horizons: tuple[int, ...]
    actual: dict[int, np.ndarray]
    forecasts: dict[str, dict[int, np.ndarray]]  # model name -> horizon -> forecasts
    window: dict[int, np.ndarray]
    windows: int
    design: dict[str, np.ndarray]  # model name -> its design rows at the first horizon

    @property
    def rows(self) -> int:
        return len(self.actual[self.horizons[0]])


def reference_back(horizon: int, period: int) -> int:
    """Steps from the target back to the newest value of a naive forecast with `period`
    that is known at the origin: whole periods back, at least the horizon."""
    return period * math.ceil(horizon / period)


def run_backtest(
    series: Sequence[Series],
    models: Mapping[str, ForecastModel],
    horizons: Sequence[int],
    *,
    target: str,
    season: int,
    step_seconds: int,
    windows: int = 4,
    stride: int = 1,
) -> Backtest:
    """Every model and both naive references from the same origins of every series."""
    horizons = tuple(horizons)
    day = max(1, DAY_SECONDS // step_seconds)
    reference = {SEASONAL: season, NAIVE24: day}
    needed = max(
        [m.history_rows - 1 for m in models.values()]
        + [reference_back(h, p) - h for h in horizons for p in reference.values()]
    )
    columns: dict[str, list[np.ndarray]] = {"actual": [], "origin": []}
    per_model: dict[str, list[np.ndarray]] = {n: [] for n in [*models, *reference]}
    designs: dict[str, list[np.ndarray]] = {n: [] for n in models}
    for one in series:
        if len(one.times) == 0:
            continue
        length = int((one.times[-1] - one.times[0]) // step_seconds) + 1
        grid, _ = on_grid(one.times, one.values, int(one.times[0]), length, step_seconds)
        origins = np.arange(needed, length - max(horizons), stride, dtype=np.int64)
        if origins.size == 0:
            continue
        origin_seconds = one.times[0] + origins * step_seconds
        values = grid[target]
        columns["actual"].append(np.concatenate([values[origins + h] for h in horizons]))
        columns["origin"].append(np.tile(origin_seconds, len(horizons)))
        for name, model in models.items():
            x = design_rows(grid, origins, origin_seconds, model.plan)
            own = _rows_for(model.plan, horizons, len(origins))
            designs[name].append(x[own[: len(origins)]])
            per_model[name].append(model.score(x[own]))
        for name, period in reference.items():
            per_model[name].append(
                np.concatenate([values[origins + h - reference_back(h, period)] for h in horizons])
            )
    return _assemble(horizons, columns, per_model, designs, windows)


def _rows_for(plan: LagPlan, horizons: tuple[int, ...], n: int) -> np.ndarray:
    """Indices of `horizons`' rows in `design_rows`' horizon-major output for `plan`."""
    missing = sorted(set(horizons) - set(plan.horizons))
    if missing:
        raise ValueError(f"the model has no horizon {missing} (it has {list(plan.horizons)})")
    blocks = [plan.horizons.index(h) for h in horizons]
    return np.concatenate([np.arange(b * n, (b + 1) * n) for b in blocks])


def _assemble(
    horizons: tuple[int, ...],
    columns: dict[str, list[np.ndarray]],
    per_model: dict[str, list[np.ndarray]],
    designs: dict[str, list[np.ndarray]],
    windows: int,
) -> Backtest:
    if not columns["actual"]:
        raise ValueError("no origin has the history and the targets a backtest needs")
    actual = np.concatenate(columns["actual"])
    origin = np.concatenate(columns["origin"])
    forecasts = {name: np.concatenate(parts) for name, parts in per_model.items()}
    count = len(horizons)
    # Rows every model and reference can be scored on (a gap leaves NaN): the same for all.
    usable = ~np.isnan(actual) & np.logical_and.reduce([~np.isnan(f) for f in forecasts.values()])
    per_horizon = len(actual) // count
    by_h = [slice(i * per_horizon, (i + 1) * per_horizon) for i in range(count)]
    keep = np.logical_and.reduce([usable[s] for s in by_h])  # an origin scored at every horizon
    edges = np.quantile(origin[by_h[0]][keep], np.linspace(0, 1, windows + 1)[1:-1])
    window = np.searchsorted(edges, origin[by_h[0]][keep], side="right")
    return Backtest(
        horizons=horizons,
        actual={h: actual[s][keep] for h, s in zip(horizons, by_h, strict=True)},
        forecasts={
            name: {h: f[s][keep] for h, s in zip(horizons, by_h, strict=True)}
            for name, f in forecasts.items()
        },
        window={h: window for h in horizons},
        windows=windows,
        design={name: np.concatenate(parts)[keep] for name, parts in designs.items()},
    )


def rmse(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.sqrt(np.mean((forecast - actual) ** 2))) if actual.size else math.nan


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Symmetric MAPE in percent (0..200); a row where both are 0 counts as 0."""
    if not actual.size:
        return math.nan
    scale = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(
        2 * np.abs(forecast - actual), scale, out=np.zeros_like(scale), where=scale > 0
    )
    return float(100 * np.mean(ratio))


def skill(model_rmse: float, reference_rmse: float) -> float:
    """1 - RMSE / reference RMSE: 0 is as good as the reference, 1 is perfect."""
    return 1.0 - model_rmse / reference_rmse if reference_rmse > 0 else math.nan


def metrics(result: Backtest, name: str) -> dict[str, float]:
    """The named model's (or reference's) metrics on the backtest's rows."""
    out: dict[str, float] = {}
    for h in result.horizons:
        actual, forecast = result.actual[h], result.forecasts[name][h]
        error = rmse(actual, forecast)
        out[f"rmse_h{h}"] = error
        out[f"mae_h{h}"] = float(np.mean(np.abs(forecast - actual))) if actual.size else math.nan
        out[f"smape_h{h}"] = smape(actual, forecast)
        out[f"skill_seasonal_h{h}"] = skill(error, rmse(actual, result.forecasts[SEASONAL][h]))
        out[f"skill_naive24_h{h}"] = skill(error, rmse(actual, result.forecasts[NAIVE24][h]))
    for h in result.horizons:
        for w in range(result.windows):
            rows = result.window[h] == w
            out[f"rmse_h{h}_w{w + 1}"] = rmse(
                result.actual[h][rows], result.forecasts[name][h][rows]
            )
    return out
