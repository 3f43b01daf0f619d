"""Training's half of the families that learn on the encoded matrix (gbm, xgboost).

The validated train split fits the `EncodingState` (vocabularies, imputed values); the
same state encodes train and validation, and is written with the model, so serving
encodes with exactly what training learned. A regression target is learned on its
`target_transform` and inverted on output (`castml.runtime.encoded_model`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from castml.data import target_transform
from castml.data.tabular_encoding import EncodingState, encode_frame, fit
from castml.models.holdout_metrics import tune_threshold
from castml.runtime.manifest import Manifest
from castml.runtime.model_bundle import write_encoding, write_spec, write_target_transform
from castml.spec import ProjectSpec


@dataclass(frozen=True)
class EncodedData:
    state: EncodingState
    x_train: np.ndarray  # float32 [N, columns], C-contiguous
    y_train: np.ndarray  # what the model learns: the target, transformed for a regression
    x_validation: np.ndarray
    y_validation: np.ndarray  # on the target's own scale (threshold tuning, selection)

    @property
    def categorical(self) -> list[int]:
        return self.state.categorical_columns


def threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def encoded_data(
    spec: ProjectSpec, train_frame: pd.DataFrame, validation_frame: pd.DataFrame
) -> EncodedData:
    """Fit the encoding on the train split; encode both splits with it."""
    state = fit(train_frame, spec)
    return EncodedData(
        state=state,
        x_train=np.ascontiguousarray(encode_frame(state, train_frame, np.float32)),
        y_train=learned_target(spec, train_frame[spec.target].to_numpy(np.float64)),
        x_validation=np.ascontiguousarray(encode_frame(state, validation_frame, np.float32)),
        y_validation=validation_frame[spec.target].to_numpy(np.float64),
    )


def learned_target(spec: ProjectSpec, y: np.ndarray) -> np.ndarray:
    """What the model learns for target `y`: `target_transform` applied to a regression's."""
    if spec.is_classification:
        return y
    return target_transform.forward(spec.target_transform, y)


def validation_output(spec: ProjectSpec, raw: np.ndarray) -> np.ndarray:
    """The model's raw validation output on the target's scale (a probability stays one)."""
    if spec.is_classification:
        return np.asarray(raw, dtype=np.float64)
    return target_transform.inverse(spec.target_transform, raw)


def write_model_dir(
    model_dir: Path,
    spec: ProjectSpec,
    data: EncodedData,
    family: str,
    validation_score: np.ndarray,
) -> None:
    """Everything beside the trees: manifest (threshold tuned on validation), encoding,
    target transform and the spec."""
    threshold = (
        tune_threshold(data.y_validation, validation_score) if spec.is_classification else 0.0
    )
    Manifest(
        project=spec.name,
        task=str(spec.task),
        features=data.state.columns,
        latent_dim=0,
        threshold=threshold,
        class_names=list(spec.class_names) if spec.class_names else None,
        family=family,
    ).write(model_dir)
    write_encoding(model_dir, data.state)
    write_target_transform(model_dir, spec.target_transform)
    write_spec(model_dir, spec)
