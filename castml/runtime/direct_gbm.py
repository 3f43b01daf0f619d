"""LightGBM's C prediction calls made directly: the fast path of every LightGBM family.

Hand-built fast path: `make bench` compares it with `Booster.predict` on the same rows.
"""

from __future__ import annotations

import ctypes
import weakref

import lightgbm as lgb
import numpy as np

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
