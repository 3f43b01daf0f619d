"""The served `ae_gbm` model: scale -> numpy encoder -> LightGBM on [scaled raw + latent].

A model directory holds `manifest.json`, `scaler.npz`, `encoder.npz` and `gbm.txt`.
Everything here is numpy end to end; input is a float array in spec feature order.
"""

from __future__ import annotations

import ctypes
import json
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from castml.runtime.encoder import NumpyEncoder

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL: the objective's output (probability)
_DTYPE_FLOAT32 = 0  # C_API_DTYPE_FLOAT32


class SingleRowGbm:
    """LightGBM's single-row fast path (`LGBM_BoosterPredictForMatSingleRowFast`).

    `Booster.predict` spends some 25 us of Python (argument checks, array conversion,
    ctypes set-up) per call; for one row that is most of the model's time. The fast path
    parses the prediction config once and then costs one C call per row (~3 us), with the
    very same trees and output (the Booster serialises calls with its own lock, so this
    is safe from several threads). It uses lightgbm's ctypes handle (`_LIB`), pinned with
    lightgbm; if that ever fails to initialise, `config` stays None and callers keep
    `Booster.predict`.
    """

    def __init__(self, booster: lgb.Booster) -> None:
        self.booster = booster  # keeps the handle alive as long as the config
        self.n_features = booster.num_feature()
        self.config: ctypes.c_void_p | None = None
        try:
            from lightgbm.basic import _LIB, _c_str, _safe_call  # type: ignore[attr-defined]

            config = ctypes.c_void_p()
            _safe_call(
                _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                    booster._handle,
                    ctypes.c_int(_PREDICT_NORMAL),
                    ctypes.c_int(0),
                    ctypes.c_int(-1),
                    ctypes.c_int(_DTYPE_FLOAT32),
                    ctypes.c_int32(self.n_features),
                    _c_str("num_threads=1"),
                    ctypes.byref(config),
                )
            )
        except Exception:  # an unexpected lightgbm build: the slow path still works
            return
        self.config = config
        self._call = _LIB.LGBM_BoosterPredictForMatSingleRowFast
        self._check = _safe_call
        weakref.finalize(self, _LIB.LGBM_FastConfigFree, config)

    def __call__(self, row: np.ndarray) -> np.ndarray:
        """`row`: C-contiguous float32 of shape `[1, n_features]`; returns `[1]` float64."""
        out = np.empty(1, dtype=np.float64)
        length = ctypes.c_int64()
        self._check(
            self._call(
                self.config,
                ctypes.c_void_p(row.ctypes.data),
                ctypes.byref(length),
                ctypes.c_void_p(out.ctypes.data),
            )
        )
        return out


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
        self.single_row = SingleRowGbm(booster)

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

    def gbm(self, design: np.ndarray) -> np.ndarray:
        """The GBM's output for the design matrix, `[N]` float64."""
        if (
            design.shape == (1, self.single_row.n_features)
            and self.single_row.config is not None
            and design.dtype == np.float32
            and design.flags.c_contiguous
        ):
            return self.single_row(design)
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
