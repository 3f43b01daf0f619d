"""Train the `xgboost` family: XGBoost on the encoded matrix, categoricals split natively.

Category codes are declared categorical (`feature_types` "c", `enable_categorical`)
rather than passed as plain numbers: as numbers, a split could only cut the
vocabulary's alphabetical order, which means nothing for a workclass or a country;
declared, XGBoost partitions categories by their gradient statistics, as LightGBM does
for the `gbm` family, so the two candidates compete on equal terms. The booster keeps
the feature types, so serving needs nothing else. Its baseline is the gbm family's
additive stumps (`castml.models.gbm_family.train_baseline`).

Hyper-parameters: the `xgboost` block (n_estimators, max_depth, learning_rate,
subsample, colsample_bytree, min_child_weight, reg_lambda, max_cat_to_onehot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from castml.models.encoded_training import (
    EncodedData,
    encoded_data,
    learned_target,
    threads,
    validation_output,
    write_model_dir,
)
from castml.models.gbm_family import train_baseline
from castml.models.train import EpochCallback
from castml.runtime.xgboost_model import MODEL_FILE
from castml.spec import ProjectSpec


def _params(spec: ProjectSpec, p: dict[str, Any], seed: int) -> dict[str, Any]:
    return {
        "objective": "binary:logistic" if spec.is_classification else "reg:squarederror",
        "eval_metric": "logloss" if spec.is_classification else "rmse",
        "tree_method": "hist",
        "max_depth": int(p.get("max_depth", 6)),
        "eta": float(p.get("learning_rate", 0.1)),
        "subsample": float(p.get("subsample", 1.0)),
        "colsample_bytree": float(p.get("colsample_bytree", 1.0)),
        "min_child_weight": float(p.get("min_child_weight", 1.0)),
        "lambda": float(p.get("reg_lambda", 1.0)),
        "max_cat_to_onehot": int(p.get("max_cat_to_onehot", 4)),
        "seed": seed,
        "nthread": threads(),
        "verbosity": 0,
    }


def _matrix(data: EncodedData, x: np.ndarray, label: np.ndarray) -> xgb.DMatrix:
    categorical = set(data.categorical)
    types = ["c" if i in categorical else "q" for i in range(x.shape[1])]
    return xgb.DMatrix(
        x,
        label=label,
        feature_types=types,
        enable_categorical=True,
        nthread=threads(),
    )


def fit_booster(
    data: EncodedData,
    spec: ProjectSpec,
    p: dict[str, Any],
    seed: int,
    on_epoch: EpochCallback | None = None,
) -> tuple[xgb.Booster, list[float]]:
    """XGBoost on the encoded train split; the validation loss per round is the history."""
    train_set = _matrix(data, data.x_train, data.y_train)
    validation = _matrix(data, data.x_validation, learned_target(spec, data.y_validation))
    rounds = int(p["n_estimators"])
    recorded: dict[str, Any] = {}
    callbacks = [] if on_epoch is None else [_Progress(on_epoch, rounds)]
    booster = xgb.train(
        _params(spec, p, seed),
        train_set,
        num_boost_round=rounds,
        evals=[(validation, "validation")],
        evals_result=recorded,
        verbose_eval=False,
        callbacks=callbacks,
    )
    history = [float(v) for v in next(iter(recorded["validation"].values()))]
    return booster, history


class _Progress(xgb.callback.TrainingCallback):
    def __init__(self, on_epoch: EpochCallback, rounds: int) -> None:
        super().__init__()
        self.on_epoch, self.rounds = on_epoch, rounds

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        losses = next(iter(evals_log["validation"].values()))
        self.on_epoch(epoch + 1, self.rounds, float(losses[-1]))
        return False  # never stop early


def train(
    spec: ProjectSpec,
    train_frame: pd.DataFrame,
    validation_frame: pd.DataFrame,
    model_dir: Path,
    baseline_dir: Path,
    params: dict[str, dict[str, Any]],
    on_epoch: EpochCallback | None = None,
) -> list[float]:
    """The `xgboost` model into `model_dir`, the stumps baseline into `baseline_dir`."""
    data = encoded_data(spec, train_frame, validation_frame)
    p = params["xgboost"]
    booster, history = fit_booster(data, spec, p, int(p.get("seed", spec.model.seed)), on_epoch)
    model_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(model_dir / MODEL_FILE))
    raw = booster.inplace_predict(data.x_validation)
    write_model_dir(model_dir, spec, data, "xgboost", validation_output(spec, np.asarray(raw)))
    train_baseline(spec, data, baseline_dir)
    return history
