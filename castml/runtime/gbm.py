"""The served `gbm` model: LightGBM on the encoded matrix, categoricals split natively.

A model directory holds `manifest.json`, `gbm.txt`, `encoding.json`, `target.json` and
`spec.yaml`. Prediction goes through `DirectGbm` (LightGBM's C call made directly, the
fast path `make bench` measures) and falls back to `Booster.predict`.
"""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np

from castml.runtime.direct_gbm import DirectGbm
from castml.runtime.encoded_model import EncodedModel

MODEL_FILE = "gbm.txt"


class GbmModel(EncodedModel):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.booster = lgb.Booster(model_file=str(directory / MODEL_FILE))
        self.direct = DirectGbm(self.booster)

    @classmethod
    def load(cls, directory: str | Path) -> GbmModel:
        return cls(Path(directory))

    def raw_score(self, design: np.ndarray) -> np.ndarray:
        if self.direct.accepts(design):
            return self.direct(design)
        return np.asarray(self.booster.predict(design, num_threads=1), dtype=np.float64)
