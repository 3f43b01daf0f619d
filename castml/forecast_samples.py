"""What registration logs beside a forecast model: rows of its design, not raw table rows.

A forecast's input is a design row (`castml.data.lag_features`), built from a series'
history; a row sampled from the table alone has no history, so the samples are cut from
the design of the training frame instead (the same `frame_design` training used):

- the reference sample (drift job): the spec's raw columns at the forecast's target time,
  the target, the design columns of the first horizon, and `score`, the model's forecast
  of that row from the origin before it;
- the explainer's background: design rows of every horizon, float32;
- the pyfunc's input example: one design row per horizon.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from castml.models.forecast_family import frame_design, plan_of
from castml.runtime.loaded_model import LoadedModel
from castml.spec import ProjectSpec


def _design(spec: ProjectSpec, train: pd.DataFrame, rows: int | None = None) -> pd.DataFrame:
    """The training frame's design rows with their target time (`frame_design`), as a frame."""
    plan = plan_of(spec)
    source = train if rows is None else train.sort_values(plan.time_column).tail(rows)
    design = frame_design(spec, source, plan)
    frame = pd.DataFrame(design.x, columns=plan.columns)
    frame[plan.time_column] = design.target_seconds.astype("datetime64[s]").astype("datetime64[ns]")
    frame[spec.target] = design.y
    return frame


def reference_sample(spec: ProjectSpec, model: LoadedModel, train: pd.DataFrame) -> pd.DataFrame:
    plan = plan_of(spec)
    design = _design(spec, train)
    first = design[design["horizon"] == plan.horizons[0]]
    n = min(spec.monitoring.reference_rows, len(first))
    sample = first.sample(n=n, random_state=spec.split.seed).reset_index(drop=True)
    raw = train[[plan.time_column, *spec.feature_names]].drop_duplicates(plan.time_column)
    sample = sample.merge(raw, on=plan.time_column, how="left")
    sample["score"] = model.score(sample[plan.columns].to_numpy(np.float32))
    return sample


def background_sample(spec: ProjectSpec, train: pd.DataFrame) -> np.ndarray:
    plan = plan_of(spec)
    design = _design(spec, train)
    n = min(spec.monitoring.background_rows, len(design))
    rows = design.sample(n=n, random_state=spec.split.seed + 1)
    return np.ascontiguousarray(rows[plan.columns].to_numpy(np.float32))


def input_example(spec: ProjectSpec, train: pd.DataFrame) -> pd.DataFrame:
    plan = plan_of(spec)
    design = _design(spec, train, rows=plan.history_rows + max(plan.horizons) + 1)
    return design.groupby("horizon").head(1)[plan.columns].reset_index(drop=True)
