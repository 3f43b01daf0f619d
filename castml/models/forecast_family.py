"""Train the `forecast` family: one gradient-boosted model per horizon over lag features.

**Direct, not recursive.** Each horizon h gets its own model, trained on the design rows
of every origin with the value h steps later as its target. A recursive model would feed
its own 1-step forecasts back as lags for 24 steps, so its error at 24 h compounds 23
forecasts of its own, and training (on true lags) and serving (on forecast lags) would
see different inputs: the skew the one feature function exists to prevent. Direct
models cost one booster per horizon (two here) and each sees exactly what serving gives.

**Hand-built features, not mlforecast.** Nixtla's mlforecast (the anchor library) was
weighed and not adopted:
- serving must be numpy with no pandas on the scoring path; mlforecast's `predict`
  takes and returns DataFrames and rebuilds its feature state per call;
- the weather must enter as known at the origin (the previous day's daily values), a
  lag anchored at the origin; mlforecast's exogenous features are the target time's own
  values (`X_df`), which here would be peeking, so they would need shifting by hand
  anyway, outside the library's feature code;
- the platform must check the history window itself either way (mlforecast changes its
  predictions silently on a short window), and lay series on their time grid so that a
  lag is a time span, not a row count;
- its MLflow flavor would put mlforecast, pandas and its pickled state in every serving
  image, where castml's pyfunc bundles its own numpy runtime.
The lag and rolling-mean arithmetic is small (`castml.data.lag_features`), and the unit
tests check it against mlforecast's own lag and rolling-mean features on the same series.

Learners: the `forecast` block's `learners` (lightgbm, xgboost); each horizon keeps the
one with the lower validation RMSE, and every learner's validation scores are written as
`candidates.json`, the evidence registration logs.

Rows: every origin of the train and validation splits with a full history and a known
target; a row is a validation row when its target time lies after the train split. The
`train_rows` parameter keeps only the last n hours before validation (the fast profile).
Training does not yet drop origins whose window holds a gap longer than `max_gap` (serving
refuses those); the bundled data has no gap.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from castml.data.lag_features import LagFeature, LagPlan, parts_of, series_design
from castml.data.tabular_encoding import EncodingState, FeatureEncoding
from castml.errors import DataValidationError, SpecError
from castml.models.train import EpochCallback
from castml.runtime.forecast_model import (
    LEARNERS,
    booster_file,
    from_learned,
    to_learned,
    write_plan,
)
from castml.runtime.manifest import Manifest
from castml.runtime.model_bundle import write_encoding, write_spec, write_target_transform
from castml.spec import ProjectSpec

CANDIDATES_FILE = "candidates.json"  # castml.models.families reads it as evidence


def threads() -> int:
    """One thread per booster: with their OpenMP threads spinning on shared cores, LightGBM
    and XGBoost trained 20x slower on 2 threads than on 1 here (a loaded 2-core machine)."""
    return 1


def plan_of(spec: ProjectSpec) -> LagPlan:
    """The spec's forecast features as a `LagPlan`."""
    forecast = spec.forecast
    if forecast is None or spec.time_column is None:
        raise SpecError(f"{spec.name}: the forecast family needs a task forecast spec")
    lagged = [d for d in spec.derived if d.kind != "calendar"]
    read = {d.source for d in lagged}
    exogenous = tuple(f.name for f in spec.features if f.name in read)
    return LagPlan(
        time_column=spec.time_column,
        target=spec.target,
        exogenous=exogenous,
        step_seconds=forecast.step_seconds,
        horizons=tuple(forecast.horizons),
        calendar=parts_of([d for d in spec.derived if d.kind == "calendar"]),
        lags=tuple(
            LagFeature(d.name, d.source, d.kind, d.lag or 0, d.window or 1, d.anchor)  # type: ignore[arg-type]
            for d in lagged
        ),
        max_gap=forecast.max_gap,
        relative_to=forecast.relative_to,
        floor=forecast.floor,
    )


@dataclass(frozen=True)
class Design:
    """Every series' design rows with their targets (target scale) and target times."""

    x: np.ndarray  # float64 [rows, F]
    y: np.ndarray
    target_seconds: np.ndarray
    horizon: np.ndarray  # the rows' horizon (x[:, 0])


def frame_design(spec: ProjectSpec, frame: pd.DataFrame, plan: LagPlan) -> Design:
    """Training's feature path: each series of `frame` on its grid, every origin with a full
    history and a known target (the same `design_rows` that serving calls)."""
    forecast = spec.forecast
    assert forecast is not None  # plan_of checked
    groups = (
        [frame]
        if forecast.series_column is None
        else [part for _, part in frame.groupby(forecast.series_column, sort=True)]
    )
    xs, ys, stamps = [], [], []
    for part in groups:
        times = _seconds(part[plan.time_column])
        order = np.argsort(times, kind="stable")
        times = times[order]
        if len(times) < plan.history_rows + 1:
            continue  # too short to give one row
        if (np.diff(times) == 0).any():
            raise DataValidationError([f"{plan.time_column}: a series repeats a time"])
        values = {n: part[n].to_numpy(np.float64)[order] for n in plan.sources}
        x, y, at = series_design(times, values, plan)
        keep = ~np.isnan(y)
        xs.append(x[keep])
        ys.append(y[keep])
        stamps.append(at[keep])
    if not xs:
        raise DataValidationError(
            [f"no series holds more than the {plan.history_rows} rows one forecast needs"]
        )
    x = np.concatenate(xs)
    return Design(x, np.concatenate(ys), np.concatenate(stamps), x[:, 0].copy())


def _seconds(column: pd.Series) -> np.ndarray:
    values = column.to_numpy()
    if values.dtype.kind == "M":
        return np.asarray(values.astype("datetime64[s]").astype(np.int64))
    return np.asarray(pd.to_datetime(values).to_numpy().astype("datetime64[s]").astype(np.int64))


def _lightgbm(
    x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, p: dict[str, Any], seed: int
) -> tuple[Any, list[float]]:
    import lightgbm as lgb

    params = {
        "objective": "regression",
        "learning_rate": float(p["learning_rate"]),
        "num_leaves": int(p.get("num_leaves", 63)),
        "max_depth": int(p.get("max_depth", -1)),
        "min_data_in_leaf": int(p.get("min_child_samples", 20)),
        "feature_fraction": float(p.get("colsample_bytree", 1.0)),
        "bagging_fraction": float(p.get("subsample", 1.0)),
        "bagging_freq": 1 if float(p.get("subsample", 1.0)) < 1.0 else 0,
        "seed": seed,
        "deterministic": True,
        "num_threads": threads(),
        "verbose": -1,
    }
    train_set = lgb.Dataset(x, label=y, free_raw_data=True)
    valid = lgb.Dataset(xv, label=yv, reference=train_set)
    recorded: dict[str, Any] = {}
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=int(p["n_estimators"]),
        valid_sets=[valid],
        valid_names=["validation"],
        callbacks=[lgb.record_evaluation(recorded)],
    )
    return booster, [float(v) for v in recorded["validation"]["l2"]]


def _xgboost(
    x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, p: dict[str, Any], seed: int
) -> tuple[Any, list[float]]:
    import xgboost as xgb

    params = {
        "objective": "reg:squarederror",
        "eval_metric": "rmse",
        "tree_method": "hist",
        "max_depth": int(p.get("max_depth", 8)),
        "eta": float(p["learning_rate"]),
        "subsample": float(p.get("subsample", 1.0)),
        "colsample_bytree": float(p.get("colsample_bytree", 1.0)),
        "min_child_weight": float(p.get("min_child_weight", 1.0)),
        "seed": seed,
        "nthread": threads(),
        "verbosity": 0,
    }
    recorded: dict[str, Any] = {}
    booster = xgb.train(
        params,
        xgb.DMatrix(x, label=y, nthread=threads()),
        num_boost_round=int(p["n_estimators"]),
        evals=[(xgb.DMatrix(xv, label=yv, nthread=threads()), "validation")],
        evals_result=recorded,
        verbose_eval=False,
    )
    return booster, [float(v) ** 2 for v in recorded["validation"]["rmse"]]


def _raw_predict(booster: Any, learner: str, x: np.ndarray) -> np.ndarray:
    if learner == "lightgbm":
        return np.asarray(booster.predict(x, num_threads=threads()), dtype=np.float64)
    return np.asarray(booster.inplace_predict(x), dtype=np.float64).reshape(-1)


def split_rows(design: Design, boundary: int, train_rows: int, step: int) -> tuple[Any, Any]:
    """Row masks: training (target time up to `boundary`, the last `train_rows` steps of it
    when > 0) and validation (target time after it)."""
    fit = design.target_seconds <= boundary
    if train_rows > 0:
        fit &= design.target_seconds > boundary - train_rows * step
    return fit, design.target_seconds > boundary


def train(
    spec: ProjectSpec,
    train_frame: pd.DataFrame,
    validation_frame: pd.DataFrame,
    model_dir: Path,
    baseline_dir: Path,
    params: dict[str, dict[str, Any]],
    on_epoch: EpochCallback | None = None,
) -> list[float]:
    """Per horizon, each learner on the training rows; the better on validation is kept."""
    p = params["forecast"]
    plan = plan_of(spec)
    learners = [str(name) for name in p.get("learners", ["lightgbm"])]
    unknown = sorted(set(learners) - set(LEARNERS))
    if unknown or not learners:
        raise SpecError(f"forecast.learners: unknown {unknown} (known: {', '.join(LEARNERS)})")
    seed = int(p.get("seed", spec.model.seed))
    design = frame_design(spec, pd.concat([train_frame, validation_frame]), plan)
    boundary = int(_seconds(train_frame[plan.time_column]).max())
    fit, valid = split_rows(design, boundary, int(p.get("train_rows", 0)), plan.step_seconds)
    x32 = np.ascontiguousarray(design.x, dtype=np.float32)
    learned = to_learned(spec.target_transform, design.y, x32, plan)
    model_dir.mkdir(parents=True, exist_ok=True)
    rounds = int(p["n_estimators"]) * len(learners) * len(plan.horizons)
    done, chosen, history = 0, {}, list[float]()
    scores: dict[str, dict[str, float]] = {name: {} for name in learners}
    for horizon in plan.horizons:
        rows = design.horizon == horizon
        tr, va = rows & fit, rows & valid
        if tr.sum() == 0 or va.sum() == 0:
            raise DataValidationError(
                [f"horizon {horizon}: no training or validation rows with a full history"]
            )
        best: tuple[float, str, Any, list[float]] | None = None
        for learner in learners:
            fitter = _lightgbm if learner == "lightgbm" else _xgboost
            booster, losses = fitter(x32[tr], learned[tr], x32[va], learned[va], p, seed)
            done += len(losses)
            if on_epoch is not None:
                on_epoch(done, rounds, losses[-1])
            raw = _raw_predict(booster, learner, x32[va])
            predicted = from_learned(spec.target_transform, raw, x32[va], plan)
            rmse = float(np.sqrt(np.mean((predicted - design.y[va]) ** 2)))
            scores[learner][f"rmse_h{horizon}"] = rmse
            if best is None or rmse < best[0]:
                best = (rmse, learner, booster, losses)
        assert best is not None
        chosen[horizon] = best[1]
        best[2].save_model(str(model_dir / booster_file(horizon, best[1])))
        history = history or best[3]
    write_forecast_dir(model_dir, spec, plan, chosen)
    (model_dir / CANDIDATES_FILE).write_text(
        json.dumps(
            {
                "family": "forecast",
                "history": [],
                "metric": "rmse per horizon (validation), learners: "
                + ", ".join(f"h{h} {chosen[h]}" for h in plan.horizons),
                "scores": scores,
            }
        )
    )
    write_baseline(baseline_dir, spec)
    return [math.sqrt(v) for v in history]


def write_forecast_dir(
    model_dir: Path, spec: ProjectSpec, plan: LagPlan, learners: dict[int, str]
) -> None:
    """Everything beside the boosters: the plan, manifest, transform, spec and encoding."""
    write_plan(model_dir, plan, learners)
    Manifest(
        project=spec.name,
        task=str(spec.task),
        features=plan.columns,
        latent_dim=0,
        threshold=0.0,
        class_names=None,
        family="forecast",
    ).write(model_dir)
    write_target_transform(model_dir, spec.target_transform)
    write_spec(model_dir, spec)
    # The pyfunc's input is the design rows: each column a number, NaN where a lag is
    # unknown at that row's horizon (passed through as NaN, never refused).
    passthrough = tuple(
        FeatureEncoding(name, "float", "impute", float("nan")) for name in plan.columns
    )
    write_encoding(model_dir, EncodingState(passthrough))


def write_baseline(baseline_dir: Path, spec: ProjectSpec) -> None:
    """The forecast's baselines need no training: seasonal naive and naive-24 are computed
    from the test period itself (`castml.forecast_backtest`); this records which."""
    forecast = spec.forecast
    assert forecast is not None
    baseline_dir.mkdir(parents=True, exist_ok=True)
    body = {"baselines": ["seasonal_naive", "naive24"], "season": forecast.season}
    (baseline_dir / "baseline.json").write_text(json.dumps(body))
