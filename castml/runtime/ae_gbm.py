"""The served `ae_gbm` model: scale -> numpy encoder -> LightGBM on [scaled raw + latent].

A model directory holds `manifest.json`, `scaler.npz`, `encoder.npz` and `gbm.txt`.
Everything here is numpy end to end; input is a float array in spec feature order.
"""

from __future__ import annotations

import ctypes
import weakref
from pathlib import Path

import lightgbm as lgb
import numpy as np

from castml.runtime.encoder import NumpyEncoder
from castml.runtime.manifest import Manifest

_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL: the objective's output (probability)
_DTYPE_FLOAT32 = 0  # C_API_DTYPE_FLOAT32
_PARAMETERS = "num_threads=1"
_MAX_ROWS = 2**31 - 1  # LightGBM's int32 row count


class DirectGbm:
    """LightGBM's C prediction calls, made directly: the same trees, the same output.

    `Booster.predict` spends 20-50 us of Python per call (argument checks, input
    conversion, a row-count query) before LightGBM's C++ runs; for the few rows of a
    serving request that is most of the GBM's time. This makes the one C call that
    `Booster.predict` itself ends in (`LGBM_BoosterPredictForMat`) with the same
    arguments, and for a single row LightGBM's single-row fast path
    (`LGBM_BoosterPredictForMatSingleRowFast`, the config parsed once at load). The
    Booster serialises calls with its own lock, so this is safe from several threads.
    It uses lightgbm's ctypes handle (`_LIB`), pinned with lightgbm; if that fails to
    initialise, `ready` is False and callers keep `Booster.predict`.
    """

    def __init__(self, booster: lgb.Booster) -> None:
        self.booster = booster  # keeps the handle alive as long as the config
        self.n_features = booster.num_feature()
        self.num_iteration = booster.best_iteration  # what Booster.predict would use
        self.ready = False
        try:
            from lightgbm.basic import _LIB, _c_str, _safe_call  # type: ignore[attr-defined]

            config = ctypes.c_void_p()
            _safe_call(
                _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                    booster._handle,
                    ctypes.c_int(_PREDICT_NORMAL),
                    ctypes.c_int(0),
                    ctypes.c_int(self.num_iteration),
                    ctypes.c_int(_DTYPE_FLOAT32),
                    ctypes.c_int32(self.n_features),
                    _c_str(_PARAMETERS),
                    ctypes.byref(config),
                )
            )
        except Exception:  # an unexpected lightgbm build: the slow path still works
            return
        self._config = config
        self._handle = booster._handle
        self._single = _LIB.LGBM_BoosterPredictForMatSingleRowFast
        self._matrix = _LIB.LGBM_BoosterPredictForMat
        self._parameters = _c_str(_PARAMETERS)
        self._check = _safe_call
        weakref.finalize(self, _LIB.LGBM_FastConfigFree, config)
        self.ready = True

    def accepts(self, design: np.ndarray) -> bool:
        return (
            self.ready
            and design.ndim == 2
            and design.shape[1] == self.n_features
            and 0 < design.shape[0] <= _MAX_ROWS
            and design.dtype == np.float32
            and design.flags.c_contiguous
        )

    def __call__(self, design: np.ndarray) -> np.ndarray:
        """`design`: C-contiguous float32 `[N, n_features]` (see `accepts`); `[N]` float64."""
        rows = design.shape[0]
        out = np.empty(rows, dtype=np.float64)
        length = ctypes.c_int64()
        if rows == 1:
            self._check(
                self._single(
                    self._config,
                    ctypes.c_void_p(design.ctypes.data),
                    ctypes.byref(length),
                    ctypes.c_void_p(out.ctypes.data),
                )
            )
        else:
            self._check(
                self._matrix(
                    self._handle,
                    ctypes.c_void_p(design.ctypes.data),
                    ctypes.c_int(_DTYPE_FLOAT32),
                    ctypes.c_int32(rows),
                    ctypes.c_int32(self.n_features),
                    ctypes.c_int(1),  # row-major
                    ctypes.c_int(_PREDICT_NORMAL),
                    ctypes.c_int(0),
                    ctypes.c_int(self.num_iteration),
                    self._parameters,
                    ctypes.byref(length),
                    ctypes.c_void_p(out.ctypes.data),
                )
            )
        if length.value != rows:
            raise ValueError(f"LightGBM returned {length.value} predictions for {rows} rows")
        return out


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
