"""Train the `ae_gbm` family: AutoEncoder, then LightGBM on [scaled raw + latent].

Also trains the ablation baseline (LightGBM on the scaled raw features only).
The GBM is fitted on latent codes from the *numpy* encoder, the very code that
serves, so training and serving cannot disagree.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from castml.data.tabular_encoding import frame_columns
from castml.models.holdout_metrics import tune_threshold
from castml.runtime.encoder import NumpyEncoder
from castml.runtime.loaded_model import LoadedModel, load_model
from castml.runtime.manifest import MANIFEST, Manifest
from castml.spec import ProjectSpec

# (epoch, epochs, loss) -> None; the CLI turns it into a progress bar. A callback may take
# a fourth argument, `metrics` (a mapping): families that measure more per epoch (lstm_seq:
# EPOCH_METRICS) pass it through `report_epoch` to callbacks that accept it.
EpochCallback = Callable[..., None]
EPOCH_METRICS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")
# A family's further baselines, each a model directory under `<baseline_dir>/more/<name>`,
# scored beside the baseline by evaluation (lstm_seq: logistic regression).
EXTRA_BASELINES_DIR = "more"


def report_epoch(
    on_epoch: EpochCallback | None,
    epoch: int,
    epochs: int,
    loss: float,
    metrics: Mapping[str, float],
) -> None:
    """Call `on_epoch` with `metrics` as its fourth argument when it takes one, else
    with (epoch, epochs, loss) as every callback does."""
    if on_epoch is None:
        return
    try:
        inspect.signature(on_epoch).bind(epoch, epochs, loss, metrics)
    except (TypeError, ValueError):
        on_epoch(epoch, epochs, loss)
        return
    on_epoch(epoch, epochs, loss, dict(metrics))


def needs_encoding(spec: ProjectSpec) -> bool:
    """Whether raw values differ from the model's input: a typed, imputed or derived feature."""
    return bool(spec.derived) or any(
        f.dtype != "float" or f.missing == "impute" for f in spec.features
    )


def model_input(frame: pd.DataFrame, spec: ProjectSpec) -> np.ndarray:
    """The features of `frame` as a model takes them offline.

    An all-float spec: the float32 matrix, as ever. A typed one: the raw values as an
    object array (spec feature order), which each model encodes with its own learned
    encoding (`castml.runtime.model_bundle.design_matrix`); datetimes as ISO text.
    A sequence spec (lstm_seq): each row's window, flattened
    (`castml.data.sequence_windows`), unless `frame` is windowed already.
    """
    if spec.sequence is not None and not spec.sequence.flattened:
        from castml.data.sequence_windows import sequence_view

        flat, window = sequence_view(spec, frame)
        return model_input(window, flat)
    if not needs_encoding(spec):
        return np.asarray(frame[spec.feature_names].to_numpy(np.float32))
    columns = frame_columns(frame, spec.feature_names)
    raw = np.empty((len(frame), len(columns)), dtype=object)
    for index, feature in enumerate(spec.features):
        values = columns[feature.name]
        if values.dtype.kind == "M":
            text = np.datetime_as_string(values, unit="ns").astype(object)
            text[np.isnat(values)] = None
            values = text
        elif feature.dtype == "bool" and values.dtype.kind == "f":
            # A validated bool is 0.0/1.0 (NaN: missing); as objects it must be a bool again.
            flags = (values == 1).astype(object)
            flags[np.isnan(values)] = None
            values = flags
        raw[:, index] = values
    return raw


def features_and_target(frame: pd.DataFrame, spec: ProjectSpec) -> tuple[np.ndarray, np.ndarray]:
    return model_input(frame, spec), frame[spec.target].to_numpy(np.float64)


def train_autoencoder(
    x: np.ndarray,
    y: np.ndarray,
    spec: ProjectSpec,
    p: dict[str, Any],
    seed: int,
    on_epoch: EpochCallback | None = None,
) -> tuple[Any, list[float]]:
    import torch

    from castml.models.autoencoder import AutoEncoder, focal_loss

    torch.manual_seed(seed)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    model = AutoEncoder(
        x.shape[1], list(p["hidden"]), int(p["latent"]), int(p["token_dim"]), int(p["heads"])
    )
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=float(p["lr"]), weight_decay=float(p["weight_decay"])
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimiser, T_0=int(p["t0"]), T_mult=int(p["t_mult"]), eta_min=float(p["eta_min"])
    )
    xs = torch.from_numpy(x)
    if spec.is_classification:
        ys = torch.from_numpy(y.astype(np.float32))
    else:  # standardise a regression target so the aux loss is on the scale of the MSE
        ys = torch.from_numpy(((y - y.mean()) / (y.std() or 1.0)).astype(np.float32))
    generator = torch.Generator().manual_seed(seed)
    batch, epochs = int(p["batch_size"]), int(p["epochs"])
    steps = max(1, int(np.ceil(len(xs) / batch)))
    history: list[float] = []
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(xs), generator=generator)
        total = 0.0
        for step in range(steps):
            idx = order[step * batch : (step + 1) * batch]
            xb, yb = xs[idx], ys[idx]
            _, recon, aux = model(xb)
            aux_loss = (
                focal_loss(aux, yb, float(p["focal_gamma"]), float(p["focal_alpha"]))
                if spec.is_classification
                else torch.nn.functional.mse_loss(aux, yb)
            )
            loss = torch.nn.functional.mse_loss(recon, xb) + float(p["aux_weight"]) * aux_loss
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            schedule.step(epoch + (step + 1) / steps)
            total += float(loss.detach()) * len(idx)
        history.append(total / len(xs))
        if on_epoch:
            on_epoch(epoch + 1, epochs, history[-1])
    model.eval()
    return model, history


def _gbm_params(spec: ProjectSpec, p: dict[str, Any], seed: int) -> dict[str, Any]:
    return {
        "objective": "binary" if spec.is_classification else "regression",
        "max_depth": int(p["max_depth"]),
        "num_leaves": int(p.get("num_leaves", 2 ** int(p["max_depth"]) - 1)),
        "learning_rate": float(p["learning_rate"]),
        "min_data_in_leaf": int(p.get("min_child_samples", 20)),
        "bagging_fraction": float(p.get("subsample", 1.0)),
        "bagging_freq": 1 if float(p.get("subsample", 1.0)) < 1.0 else 0,
        "feature_fraction": float(p.get("colsample_bytree", 1.0)),
        "seed": seed,
        "deterministic": True,
        "num_threads": max(1, min(4, os.cpu_count() or 1)),
        "verbose": -1,
    }


def fit_gbm(
    x: np.ndarray, y: np.ndarray, spec: ProjectSpec, p: dict[str, Any], seed: int
) -> lgb.Booster:
    data = lgb.Dataset(x, label=y, free_raw_data=True)
    return lgb.train(_gbm_params(spec, p, seed), data, num_boost_round=int(p["n_estimators"]))


def _threshold(spec: ProjectSpec, y: np.ndarray, score: np.ndarray) -> float:
    return tune_threshold(y, score) if spec.is_classification else 0.0


def train(
    spec: ProjectSpec,
    train_frame: pd.DataFrame,
    validation_frame: pd.DataFrame,
    model_dir: Path,
    baseline_dir: Path,
    params: dict[str, dict[str, Any]],
    on_epoch: EpochCallback | None = None,
) -> list[float]:
    """Train the served model into `model_dir` and the ablation baseline into `baseline_dir`."""
    seed = spec.model.seed
    x_train, y_train = features_and_target(train_frame, spec)
    x_val, y_val = features_and_target(validation_frame, spec)
    model_dir.mkdir(parents=True, exist_ok=True)
    baseline_dir.mkdir(parents=True, exist_ok=True)

    mean = x_train.mean(axis=0)
    scale = x_train.std(axis=0)
    scale[scale == 0] = 1.0
    np.savez(model_dir / "scaler.npz", mean=mean, scale=scale)
    np.savez(baseline_dir / "scaler.npz", mean=mean, scale=scale)
    scaled_train = (x_train - mean) / scale
    scaled_val = (x_val - mean) / scale

    ae_p, gbm_p = params["autoencoder"], params["gbm"]
    autoencoder, history = train_autoencoder(
        scaled_train, y_train, spec, ae_p, int(ae_p.get("seed", seed)), on_epoch
    )
    autoencoder.encoder.export(model_dir / "encoder.npz")
    encoder = NumpyEncoder.load(model_dir / "encoder.npz")

    gbm_seed = int(gbm_p.get("seed", seed))
    booster = fit_gbm(
        np.hstack([scaled_train, encoder(scaled_train)]), y_train, spec, gbm_p, gbm_seed
    )
    booster.save_model(str(model_dir / "gbm.txt"))
    val_score = booster.predict(np.hstack([scaled_val, encoder(scaled_val)]))
    Manifest(
        project=spec.name,
        task=str(spec.task),
        features=spec.feature_names,
        latent_dim=int(params["autoencoder"]["latent"]),
        threshold=_threshold(spec, y_val, np.asarray(val_score)),
        class_names=list(spec.class_names) if spec.class_names else None,
    ).write(model_dir)

    baseline = fit_gbm(scaled_train, y_train, spec, gbm_p, gbm_seed)
    baseline.save_model(str(baseline_dir / "gbm.txt"))
    threshold = _threshold(spec, y_val, np.asarray(baseline.predict(scaled_val)))
    (baseline_dir / "baseline.json").write_text(json.dumps({"threshold": threshold}))
    return history  # the AutoEncoder loss per epoch


class BaselineModel:
    """The baseline a candidate is compared with, scored the same way as the candidate.

    ae_gbm's: the ablation GBM on the scaled raw features (`scaler.npz`, `gbm.txt`,
    `baseline.json`). The encoded families write theirs as a model directory of its own
    (`manifest.json`), loaded as any `LoadedModel`.
    """

    def __init__(self, directory: Path) -> None:
        self.model: LoadedModel | None = None
        if (directory / MANIFEST).is_file():
            self.model = load_model(directory)
            self.threshold = self.model.manifest.threshold
            return
        with np.load(directory / "scaler.npz") as scaler:
            self.mean, self.scale = scaler["mean"], scaler["scale"]
        self.booster = lgb.Booster(model_file=str(directory / "gbm.txt"))
        self.threshold = float(json.loads((directory / "baseline.json").read_text())["threshold"])

    def score(self, x: np.ndarray) -> np.ndarray:
        if self.model is not None:
            return np.asarray(self.model.score(x), dtype=np.float64)
        return np.asarray(self.booster.predict((x - self.mean) / self.scale), dtype=np.float64)
