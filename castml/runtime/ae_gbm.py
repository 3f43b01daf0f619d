"""The served `ae_gbm` model: scale -> numpy encoder -> LightGBM on [scaled raw + latent].

A model directory holds `manifest.json`, `scaler.npz`, `encoder.npz` and `gbm.txt`.
Everything here is numpy end to end; input is a float array in spec feature order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from castml.runtime.encoder import NumpyEncoder

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Manifest:
    project: str
    task: str  # binary_classification | regression
    features: list[str]
    latent_dim: int
    threshold: float
    class_names: list[str] | None

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        raw: dict[str, Any] = json.loads((directory / MANIFEST).read_text())
        if raw.pop("format_version", None) != FORMAT_VERSION:
            raise ValueError(f"{directory}: unsupported model format")
        return cls(**raw)

    def write(self, directory: Path) -> None:
        body = {"format_version": FORMAT_VERSION, **self.__dict__}
        (directory / MANIFEST).write_text(json.dumps(body, indent=2))

    @property
    def is_classification(self) -> bool:
        return self.task == "binary_classification"


class AeGbmModel:
    """Loaded once, then called with `[N, F]` float arrays."""

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
        return np.hstack([scaled, latent]), latent

    def score(self, x: np.ndarray) -> np.ndarray:
        """Probability of the positive class (or the regression prediction), shape `[N]`."""
        design, _ = self.design_matrix(x)
        return np.asarray(self.booster.predict(design, num_threads=1), dtype=np.float64)

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        design, latent = self.design_matrix(x)
        score = np.asarray(self.booster.predict(design, num_threads=1), dtype=np.float32)
        if not self.manifest.is_classification:
            return {"prediction": score, "latent": latent}
        label = (score >= self.manifest.threshold).astype(np.int64)
        return {"probability": score, "label": label, "latent": latent}
