"""The served `forecast` model: one gradient-boosted model per horizon over lag features.

A model directory holds `manifest.json` (family forecast; `features` are the design
columns), `forecast.json` (the `LagPlan` and each horizon's learner), one booster per
horizon (`h<h>.lightgbm.txt` or `h<h>.xgboost.json`), `target.json`, `encoding.json`
and `spec.yaml`.

Two ways in, both numpy only:
- a history: `forecast(history)` takes the latest rows of one series, ending at the
  forecast origin (the time column as datetime64, the target and the exogenous columns),
  checks the window (`HistoryTooShortError`, `HistoryGapError`: the platform checks the
  window itself, never extrapolating from too little), builds the design rows with the
  one feature function training used (`castml.data.lag_features`) and answers one value
  per horizon on the target's own scale. `forecast_many` does the same for many series in
  one pass.
- design rows: the `LoadedModel` interface (`score`, `predict`) takes `[N, F]` rows whose
  first column is the horizon, which routes each row to its horizon's model; this is what
  the pyfunc, the generic predictor, the explainer and evaluation see.

`features` is both: the design columns' names (a list, as every `LoadedModel` has) and,
called with a history, that history's design rows `[len(horizons), F]`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from castml.data.lag_features import (
    HistoryError,
    HistoryGapError,
    HistoryInvalidError,
    HistoryTooShortError,
    LagPlan,
    design_rows,
    grid_windows,
    history_window,
    stacked_windows,
)
from castml.data.target_transform import forward, inverse
from castml.runtime.manifest import Manifest
from castml.runtime.model_bundle import read_target_transform

__all__ = [
    "ForecastModel",
    "HistoryError",
    "HistoryGapError",
    "HistoryInvalidError",
    "HistoryTooShortError",
]
PLAN_FILE = "forecast.json"
LEARNERS = ("lightgbm", "xgboost")
Predictor = Callable[[np.ndarray], np.ndarray]


def booster_file(horizon: int, learner: str) -> str:
    return f"h{horizon}.{learner}.{'txt' if learner == 'lightgbm' else 'json'}"


def write_plan(directory: Path, plan: LagPlan, learners: Mapping[int, str]) -> None:
    body = {"plan": plan.to_json(), "learners": {str(h): learners[h] for h in plan.horizons}}
    (directory / PLAN_FILE).write_text(json.dumps(body, indent=1))


def load_predictor(path: Path, learner: str) -> Predictor:
    """The raw-output call of one horizon's booster, on a C-contiguous float32 matrix."""
    if learner == "lightgbm":
        import lightgbm as lgb

        from castml.runtime.direct_gbm import DirectGbm

        booster = lgb.Booster(model_file=str(path))
        direct = DirectGbm(booster)

        def lightgbm_predict(x: np.ndarray) -> np.ndarray:
            if direct.accepts(x):
                return direct(x)
            return np.asarray(booster.predict(x, num_threads=1), dtype=np.float64)

        return lightgbm_predict
    if learner == "xgboost":
        import xgboost as xgb

        model = xgb.Booster(model_file=str(path))
        model.set_param({"nthread": 1})  # a serving worker answers many small calls

        def xgboost_predict(x: np.ndarray) -> np.ndarray:
            return np.asarray(model.inplace_predict(x), dtype=np.float64).reshape(-1)

        return xgboost_predict
    raise ValueError(f"unknown forecast learner '{learner}' (known: {', '.join(LEARNERS)})")


def to_learned(transform: str, y: np.ndarray, design: np.ndarray, plan: LagPlan) -> np.ndarray:
    """What a horizon's model learns for target `y` (target scale) on `design` rows: the
    transformed target, less the transformed `relative_to` column when the plan has one."""
    learned = forward(transform, y)  # type: ignore[arg-type]  # a TargetTransform
    column = plan.relative_column
    if column is None:
        return learned
    base = forward(transform, design[:, column])  # type: ignore[arg-type]
    return np.subtract(learned, base)


def from_learned(transform: str, raw: np.ndarray, design: np.ndarray, plan: LagPlan) -> np.ndarray:
    """`to_learned` undone: the models' raw output back on the target's scale, raised to
    the plan's floor (a count is never below 0)."""
    column = plan.relative_column
    if column is not None:
        raw = raw + forward(transform, design[:, column].astype(np.float64))  # type: ignore[arg-type]
    out = raw if transform == "none" else inverse(transform, raw)  # type: ignore[arg-type]
    return out if plan.floor is None else np.maximum(out, plan.floor)


class FeatureColumns(list[str]):
    """The design columns' names; called with a history, that history's design rows."""

    def __init__(self, names: Sequence[str], build: Callable[[Any], np.ndarray]) -> None:
        super().__init__(names)
        self._build = build

    def __call__(self, history: Mapping[str, npt.NDArray[Any]]) -> np.ndarray:
        return self._build(history)


class ForecastModel:
    def __init__(self, directory: Path) -> None:
        self.manifest = Manifest.read(directory)
        raw = json.loads((directory / PLAN_FILE).read_text())
        self.plan = LagPlan.from_json(raw["plan"])
        self.learners = {int(h): str(name) for h, name in raw["learners"].items()}
        self.target_transform = read_target_transform(directory)
        self.horizons: tuple[int, ...] = self.plan.horizons
        self.history_rows: int = self.plan.history_rows
        self.time_column: str = self.plan.time_column
        self.target: str = self.plan.target
        self.exogenous: tuple[str, ...] = self.plan.exogenous
        self.predictors = {
            h: load_predictor(directory / booster_file(h, self.learners[h]), self.learners[h])
            for h in self.horizons
        }
        self._features = FeatureColumns(self.manifest.features, self.design)

    @classmethod
    def load(cls, directory: str | Path) -> ForecastModel:
        return cls(Path(directory))

    @property
    def features(self) -> FeatureColumns:
        return self._features

    def design(self, history: Mapping[str, npt.NDArray[Any]]) -> np.ndarray:
        """One series' design rows `[len(horizons), F]` (float64), from its latest rows."""
        grid, origin = history_window(history, self.plan)
        origins = np.asarray([self.history_rows - 1], dtype=np.int64)
        return design_rows(grid, origins, np.asarray([origin], dtype=np.int64), self.plan)

    def forecast(self, history: Mapping[str, npt.NDArray[Any]]) -> np.ndarray:
        """One series' forecast at each horizon, `[len(horizons)]`, on the target's scale."""
        return self.score(self.design(history))

    def forecast_many(self, histories: Sequence[Mapping[str, npt.NDArray[Any]]]) -> np.ndarray:
        """`[S, len(horizons)]` for S series, built and scored in one pass each.

        One bad history fails the call (with its error); callers that must skip a series
        check it with `design` (or `forecast`) first.
        """
        if not histories:
            return np.empty((0, len(self.horizons)))
        grid, origins, origin_seconds = stacked_windows(histories, self.plan)
        rows = design_rows(grid, origins, origin_seconds, self.plan)
        return self.score(rows).reshape(len(self.horizons), len(histories)).T

    def forecast_grid(
        self,
        grid: Mapping[str, npt.NDArray[np.float64]],
        filled: npt.NDArray[np.bool_],
        origin_seconds: npt.NDArray[np.int64],
    ) -> np.ndarray:
        """`forecast_many` for windows already on their grids (`[S, history_rows]` each,
        see `castml.data.lag_features.grid_windows`): the same rows, the same forecasts,
        without building one window per series in Python."""
        count = len(filled)
        if not count:
            return np.empty((0, len(self.horizons)))
        stacked, origins, seconds = grid_windows(grid, filled, origin_seconds, self.plan)
        rows = design_rows(stacked, origins, seconds, self.plan)
        return self.score(rows).reshape(len(self.horizons), count).T

    def score(self, x: np.ndarray) -> np.ndarray:
        """The forecast of each design row (its first column names the horizon), `[N]`."""
        design = np.ascontiguousarray(x, dtype=np.float32)
        if design.ndim != 2 or design.shape[1] != len(self.manifest.features):
            raise ValueError(
                f"design rows must be [N, {len(self.manifest.features)}], got {list(design.shape)}"
            )
        out = np.empty(len(design), dtype=np.float64)
        horizon = design[:, 0]
        routed = np.zeros(len(design), dtype=bool)
        for h, predict in self.predictors.items():
            rows = horizon == h
            if rows.all():
                out[:] = predict(design)
                routed[:] = True
                break
            if rows.any():
                out[rows] = predict(np.ascontiguousarray(design[rows]))
                routed |= rows
        if not routed.all():
            unknown = sorted({float(v) for v in horizon[~routed]})
            raise ValueError(f"no model for horizon(s) {unknown} (this model has {self.horizons})")
        return from_learned(self.target_transform, out, design, self.plan)

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"prediction": self.score(x).astype(np.float32)}
