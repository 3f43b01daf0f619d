"""Issue 14 §4 on the real data: a model of 2011-2012 against one retrained on 2013, on 2014.

Bike demand grew over the decade. A model trained on 2011-2012 forecasts 2014 from 2014's
own recent history (its lags carry the new level), but its trees never saw counts that
high, so it falls short at the peaks; a model retrained on the recent window (2013) has.
Both are backtested from every hour of 2014 (`castml.forecast_backtest`), with the
seasonal-naive and naive-24h forecasts on the same origins.

    python -m castml.forecast_drift_study   # minutes: four boosters per model, full size
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from castml.data.loaders import load_dataset
from castml.data.validation import validated
from castml.forecast_backtest import NAIVE24, SEASONAL, metrics
from castml.forecast_evaluation import backtest_models
from castml.models.forecast_family import train
from castml.runtime.forecast_model import ForecastModel
from castml.spec import ProjectSpec, load_spec

WINDOWS = {"2011-2012": ("2011-01-01", "2013-01-01"), "2013": ("2013-01-01", "2014-01-01")}
SCORED = ("2014-01-01", "2015-01-01")
VALIDATION_SHARE = 0.1  # the last tenth of a training window chooses the learner


def _rows(frame: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    inside = (frame["ts"] >= pd.Timestamp(start)) & (frame["ts"] < pd.Timestamp(end))
    return frame[inside].reset_index(drop=True)


def _fit(spec: ProjectSpec, window: pd.DataFrame, directory: Path) -> ForecastModel:
    cut = int(len(window) * (1 - VALIDATION_SHARE))
    params = spec.model.resolved(None)
    train(spec, window.iloc[:cut], window.iloc[cut:], directory / "model", directory / "b", params)
    return ForecastModel.load(directory / "model")


def run(spec: ProjectSpec | None = None) -> dict[str, Any]:
    """RMSE and skill at each horizon on 2014, per training window and for the references."""
    spec = spec or load_spec("bikeshare")
    frame = validated(load_dataset(spec), spec)
    history_start = pd.Timestamp(SCORED[0]) - pd.Timedelta(hours=167)  # the first origin's
    scored = _rows(frame, str(history_start), SCORED[1])
    with tempfile.TemporaryDirectory(prefix="castml-drift-study-") as tmp:
        models = {
            name: _fit(spec, _rows(frame, *bounds), Path(tmp) / name)
            for name, bounds in WINDOWS.items()
        }
        result = backtest_models(spec, models, scored)
    keep = ("rmse", "mae", "smape", "skill_seasonal", "skill_naive24")
    table = {
        name: {
            k: round(v, 4) for k, v in metrics(result, name).items() if k.rsplit("_h", 1)[0] in keep
        }
        for name in [*WINDOWS, SEASONAL, NAIVE24]
    }
    return {"scored": f"{SCORED[0]} .. {SCORED[1]}", "origins": result.rows, "models": table}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
