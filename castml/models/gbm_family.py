"""Train the `gbm` family: LightGBM on the encoded matrix, categoricals split natively.

Category codes go to LightGBM as `categorical_feature`, so a split groups categories
by their effect instead of cutting an alphabetical order. Hyper-parameters are the
`gbm` block, read as the ae_gbm family reads it (`castml.models.train._gbm_params`).

Also the baseline of both encoded families (gbm, xgboost): additive stumps, LightGBM
trees of one split each, so no interaction between features; what the candidate gains
over it is what its interactions are worth. It is written as a `gbm` model directory,
so evaluation scores it through the same `LoadedModel` as the candidate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from castml.models.encoded_training import (
    EncodedData,
    encoded_data,
    learned_target,
    validation_output,
    write_model_dir,
)
from castml.models.train import EpochCallback, _gbm_params
from castml.runtime.gbm import MODEL_FILE
from castml.spec import ProjectSpec

BASELINE_PARAMS = {
    "n_estimators": 100,
    "max_depth": 1,
    "num_leaves": 2,
    "learning_rate": 0.1,
    "min_child_samples": 20,
}


def fit_booster(
    data: EncodedData,
    spec: ProjectSpec,
    p: dict[str, Any],
    seed: int,
    on_epoch: EpochCallback | None = None,
) -> tuple[lgb.Booster, list[float]]:
    """LightGBM on the encoded train split; the validation loss per round is the history."""
    params = _gbm_params(spec, p, seed)
    train_set = lgb.Dataset(
        data.x_train, label=data.y_train, categorical_feature=data.categorical, free_raw_data=True
    )
    rounds = int(p["n_estimators"])
    history: list[float] = []

    def record(env: Any) -> None:
        loss = float(env.evaluation_result_list[0][2])
        history.append(loss)
        if on_epoch is not None:
            on_epoch(env.iteration + 1, rounds, loss)

    validation = lgb.Dataset(
        data.x_validation, label=learned_target(spec, data.y_validation), reference=train_set
    )
    booster = lgb.train(
        params, train_set, num_boost_round=rounds, valid_sets=[validation], callbacks=[record]
    )
    return booster, history


def train(
    spec: ProjectSpec,
    train_frame: pd.DataFrame,
    validation_frame: pd.DataFrame,
    model_dir: Path,
    baseline_dir: Path,
    params: dict[str, dict[str, Any]],
    on_epoch: EpochCallback | None = None,
) -> list[float]:
    """The `gbm` model into `model_dir`, the stumps baseline into `baseline_dir`."""
    data = encoded_data(spec, train_frame, validation_frame)
    p = params["gbm"]
    booster, history = fit_booster(data, spec, p, int(p.get("seed", spec.model.seed)), on_epoch)
    save(booster, data, spec, model_dir)
    train_baseline(spec, data, baseline_dir)
    return history


def save(booster: lgb.Booster, data: EncodedData, spec: ProjectSpec, model_dir: Path) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(model_dir / MODEL_FILE))
    score = validation_output(spec, np.asarray(booster.predict(data.x_validation)))
    write_model_dir(model_dir, spec, data, "gbm", score)


def train_baseline(spec: ProjectSpec, data: EncodedData, baseline_dir: Path) -> None:
    booster, _ = fit_booster(data, spec, BASELINE_PARAMS, spec.model.seed)
    save(booster, data, spec, baseline_dir)
