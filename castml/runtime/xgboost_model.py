"""The served `xgboost` model: XGBoost on the encoded matrix, categoricals split natively.

A model directory holds `manifest.json`, `xgboost.json` (the booster, which remembers
which columns are categorical), `encoding.json`, `target.json` and `spec.yaml`.
`inplace_predict` skips building a DMatrix per call.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xgboost as xgb

from castml.runtime.encoded_model import EncodedModel

MODEL_FILE = "xgboost.json"


class XgboostModel(EncodedModel):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.booster = xgb.Booster(model_file=str(directory / MODEL_FILE))
        # One thread: a serving worker answers many small requests side by side.
        self.booster.set_param({"nthread": 1})

    @classmethod
    def load(cls, directory: str | Path) -> XgboostModel:
        return cls(Path(directory))

    def raw_score(self, design: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(design), dtype=np.float64).reshape(-1)
