"""The served `ae_gbm` model: scale -> numpy encoder -> LightGBM on [scaled raw + latent].

A model directory holds `manifest.json`, `scaler.npz`, `encoder.npz` and `gbm.txt`.
Everything here is numpy end to end; input is a float array in spec feature order.
"""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np

from castml.runtime.direct_gbm import DirectGbm
from castml.runtime.encoder import NumpyEncoder
from castml.runtime.manifest import Manifest

# DirectGbm lived here before the gbm family shared it; kept importable from here.
__all__ = ["AeGbmModel", "DirectGbm"]


class AeGbmModel:
    """Loaded once, then called with `[N, F]` float arrays: the `ae_gbm` `LoadedModel`."""

    def __init__(
        self,
        manifest: Manifest,
        mean: np.ndarray,
        scale: np.ndarray,
        encoder: NumpyEncoder,
        booster: lgb.Booster,
    ) -> None:
        self.manifest = manifest
        self.mean = mean.astype(np.float32)
        self.inv_scale = (1.0 / scale).astype(np.float32)
        self.encoder = encoder
        self.booster = booster
        self.direct = DirectGbm(booster)

    @classmethod
    def load(cls, directory: str | Path) -> AeGbmModel:
        directory = Path(directory)
        manifest = Manifest.read(directory)
        with np.load(directory / "scaler.npz") as scaler:
            mean, scale = scaler["mean"], scaler["scale"]
        encoder = NumpyEncoder.load(directory / "encoder.npz")
        booster = lgb.Booster(model_file=str(directory / "gbm.txt"))
        return cls(manifest, mean, scale, encoder, booster)

    @property
    def features(self) -> list[str]:
        return self.manifest.features

    def scale(self, x: np.ndarray) -> np.ndarray:
        return np.asarray((np.asarray(x, dtype=np.float32) - self.mean) * self.inv_scale)

    def design_matrix(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The GBM's 42 inputs (scaled raw + latent), and the latent part alone."""
        scaled = self.scale(x)
        latent = self.encoder(scaled)
        return np.concatenate((scaled, latent), axis=1), latent

    def gbm(self, design: np.ndarray) -> np.ndarray:
        """The GBM's output for the design matrix, `[N]` float64."""
        if self.direct.accepts(design):
            return self.direct(design)
        return np.asarray(self.booster.predict(design, num_threads=1), dtype=np.float64)

    def score(self, x: np.ndarray) -> np.ndarray:
        """Probability of the positive class (or the regression prediction), shape `[N]`."""
        design, _ = self.design_matrix(x)
        return self.gbm(design)

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        design, latent = self.design_matrix(x)
        score = self.gbm(design).astype(np.float32)
        if not self.manifest.is_classification:
            return {"prediction": score, "latent": latent}
        label = (score >= self.manifest.threshold).astype(np.int64)
        return {"probability": score, "label": label, "latent": latent}
