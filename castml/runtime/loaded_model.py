"""The one interface every model family serves through, and the loader that picks one.

Serving, evaluation, registration, the pyfunc and the explainer see a `LoadedModel`
only: numpy in (`[N, F]` float32, the manifest's `features` in order), numpy out.
For the gbm and xgboost families that matrix is the `EncodingState`'s (category codes,
imputed values); raw typed values are encoded before, by the model's `encoding.json`.
A family adds a class with `load(directory)` and registers it in `LOADERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from castml.runtime.manifest import Manifest


class LoadedModel(Protocol):
    manifest: Manifest

    @property
    def features(self) -> list[str]: ...

    def score(self, x: np.ndarray) -> np.ndarray:
        """Probability of the positive class (or the regression prediction), `[N]`; the
        explainer's model function."""
        ...

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The served outputs: `probability` + `label`, or `prediction`; `latent` when
        `manifest.latent_dim` > 0."""
        ...


def _ae_gbm(directory: Path) -> LoadedModel:
    from castml.runtime.ae_gbm import AeGbmModel

    return AeGbmModel.load(directory)


def _gbm(directory: Path) -> LoadedModel:
    from castml.runtime.gbm import GbmModel

    return GbmModel.load(directory)


def _xgboost(directory: Path) -> LoadedModel:
    from castml.runtime.xgboost_model import XgboostModel

    return XgboostModel.load(directory)


def _forecast(directory: Path) -> LoadedModel:
    from castml.runtime.forecast_model import ForecastModel

    return ForecastModel.load(directory)


def _lstm_seq(directory: Path) -> LoadedModel:
    from castml.runtime.lstm_seq_model import LstmSeqModel

    return LstmSeqModel.load(directory)


# family name -> loader; imports stay inside so a process loads only its own family
LOADERS: dict[str, Callable[[Path], LoadedModel]] = {
    "ae_gbm": _ae_gbm,
    "gbm": _gbm,
    "xgboost": _xgboost,
    "forecast": _forecast,
    "lstm_seq": _lstm_seq,
}


def load_model(directory: str | Path) -> LoadedModel:
    """The model in `directory`, by the family its manifest names."""
    directory = Path(directory)
    family = Manifest.read(directory).family
    if family not in LOADERS:
        known = ", ".join(sorted(LOADERS))
        raise ValueError(f"{directory}: unknown model family '{family}' (known: {known})")
    return LOADERS[family](directory)
