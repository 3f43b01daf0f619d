"""Model families as plugins: one training interface, a registry, candidate selection.

A family is a `Trainer`: `(spec, train_frame, validation_frame, model_dir, baseline_dir,
params, on_epoch) -> history`. It writes the served model into `model_dir` (a
`manifest.json` naming the family, which `castml.runtime.loaded_model.LOADERS` loads)
and the baseline evaluation compares it with into `baseline_dir` (what
`castml.models.train.BaselineModel` reads). Families register in `FAMILIES`; their
imports stay inside, so a process pays only for the families it trains.

`train_families` trains every family the spec lists (`model.candidates`, or the one
`model.family`); with several, each is scored on validation, the best goes forward into
`model_dir`/`baseline_dir` and every family's validation scores are written beside it as
`candidates.json`, the evidence registration logs. Every model directory also holds the
spec (`spec.yaml`) and the learned encoding (`encoding.json`): the spec travels with
the model.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from castml.errors import SpecError
from castml.models.train import EpochCallback, features_and_target, needs_encoding
from castml.spec import ProjectSpec

Trainer = Callable[
    [
        ProjectSpec,
        pd.DataFrame,
        pd.DataFrame,
        Path,
        Path,
        dict[str, dict[str, Any]],
        EpochCallback | None,
    ],
    list[float],
]
CANDIDATES_FILE = "candidates.json"


def _ae_gbm(
    spec: ProjectSpec,
    train_frame: pd.DataFrame,
    validation_frame: pd.DataFrame,
    model_dir: Path,
    baseline_dir: Path,
    params: dict[str, dict[str, Any]],
    on_epoch: EpochCallback | None,
) -> list[float]:
    if needs_encoding(spec):
        typed = [f.name for f in spec.features if f.dtype != "float" or f.missing == "impute"]
        raise SpecError(
            f"{spec.name}: family ae_gbm takes complete float features only; "
            f"{', '.join(typed) or 'derived features'} need the encoder: "
            "set model.family: gbm (or xgboost)"
        )
    from castml.models.train import train

    return train(spec, train_frame, validation_frame, model_dir, baseline_dir, params, on_epoch)


def _gbm(*args: Any) -> list[float]:
    from castml.models.gbm_family import train

    return train(*args)


def _xgboost(*args: Any) -> list[float]:
    from castml.models.xgboost_family import train

    return train(*args)


def _forecast(*args: Any) -> list[float]:
    from castml.models.forecast_family import train

    return train(*args)


def _lstm_seq(*args: Any) -> list[float]:
    from castml.models.lstm_seq_family import train

    return train(*args)


FAMILIES: dict[str, Trainer] = {
    "ae_gbm": _ae_gbm,
    "gbm": _gbm,
    "xgboost": _xgboost,
    "forecast": _forecast,
    "lstm_seq": _lstm_seq,
}


def trainer(family: str) -> Trainer:
    if family not in FAMILIES:
        raise SpecError(f"unknown model family '{family}' (known: {', '.join(sorted(FAMILIES))})")
    return FAMILIES[family]


@dataclass(frozen=True)
class TrainResult:
    family: str  # the family that went forward
    history: list[float]  # its training history (loss per epoch or boosting round)
    metric: str  # what chose it, on validation
    scores: dict[str, dict[str, float]]  # family -> validation metrics (with candidates)


def selection_metric(spec: ProjectSpec) -> tuple[str, bool]:
    """The validation metric candidates compete on, and whether higher is better."""
    return ("roc_auc", True) if spec.is_classification else ("rmse", False)


def train_families(
    spec: ProjectSpec,
    train_frame: pd.DataFrame,
    validation_frame: pd.DataFrame,
    model_dir: Path,
    baseline_dir: Path,
    params: dict[str, dict[str, Any]],
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    families = spec.model.families
    absent = spec.model.missing_blocks()
    if absent:
        raise SpecError(f"{spec.name}: model.params lacks block(s) {', '.join(absent)}")
    metric, _ = selection_metric(spec)
    if len(families) == 1:
        family = families[0]
        history = trainer(family)(
            spec, train_frame, validation_frame, model_dir, baseline_dir, params, on_epoch
        )
        _carry_spec(spec, train_frame, model_dir)
        return TrainResult(family, history, metric, {})
    with tempfile.TemporaryDirectory(prefix="castml-candidates-") as tmp:
        histories: dict[str, list[float]] = {}
        scores: dict[str, dict[str, float]] = {}
        for family in families:
            work = Path(tmp) / family
            histories[family] = trainer(family)(
                spec,
                train_frame,
                validation_frame,
                work / "model",
                work / "baseline",
                params,
                on_epoch,
            )
            scores[family] = validation_scores(spec, work / "model", validation_frame)
        chosen = best_family(spec, scores)
        for name, target in (("model", model_dir), ("baseline", baseline_dir)):
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(Path(tmp) / chosen / name, target)
    _carry_spec(spec, train_frame, model_dir)
    result = TrainResult(chosen, histories[chosen], metric, scores)
    (model_dir / CANDIDATES_FILE).write_text(json.dumps(asdict(result) | {"history": []}))
    return result


def validation_scores(
    spec: ProjectSpec, model_dir: Path, validation_frame: pd.DataFrame
) -> dict[str, float]:
    """The model's holdout metrics on the validation split (its own threshold)."""
    from castml.models.holdout_metrics import classification_metrics, regression_metrics
    from castml.runtime.loaded_model import load_model

    model = load_model(model_dir)
    x, y = features_and_target(validation_frame, spec)
    score = model.score(x)
    if spec.is_classification:
        return classification_metrics(y, score, model.manifest.threshold)
    return regression_metrics(y, score)


def best_family(spec: ProjectSpec, scores: dict[str, dict[str, float]]) -> str:
    """The best on the selection metric; a tie goes to `model.family`, then to list order."""
    metric, higher = selection_metric(spec)
    preferred = [spec.model.family, *(f for f in scores if f != spec.model.family)]

    def key(family: str) -> float:
        value = scores[family][metric]
        return -np.inf if np.isnan(value) else (value if higher else -value)

    return max(preferred, key=key)  # max keeps the first of equals


def read_candidates(model_dir: Path) -> TrainResult | None:
    """The candidates' evidence a multi-family training left in `model_dir`, if any."""
    path = model_dir / CANDIDATES_FILE
    if not path.is_file():
        return None
    return TrainResult(**json.loads(path.read_text()))


def _carry_spec(spec: ProjectSpec, train_frame: pd.DataFrame, model_dir: Path) -> None:
    """Every model directory carries its spec and encoding (ae_gbm's too: harmless there)."""
    from castml.data.tabular_encoding import fit
    from castml.runtime.model_bundle import (
        SPEC_FILE,
        has_encoding,
        write_encoding,
        write_spec,
    )

    if not (model_dir / SPEC_FILE).is_file():
        write_spec(model_dir, spec)
    if not has_encoding(model_dir):
        write_encoding(model_dir, fit(train_frame, spec))
