"""The spec's `target_transform`: what a regression model learns, and its inverse for output.

numpy only: serving inverts every prediction with `inverse`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

TargetTransform = Literal["none", "log1p"]


def forward(kind: TargetTransform, target: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The values the model is trained on (validation has refused a log1p target <= -1)."""
    values = np.asarray(target, dtype=np.float64)
    return np.log1p(values) if kind == "log1p" else values


def inverse(kind: TargetTransform, predicted: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """A model's output back on the target's own scale."""
    values = np.asarray(predicted, dtype=np.float64)
    return np.expm1(values) if kind == "log1p" else values
