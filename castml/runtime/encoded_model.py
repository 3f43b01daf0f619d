"""The shared half of the families that take the encoded matrix directly (gbm, xgboost).

Input: `[N, len(manifest.features)]`, the `EncodingState`'s matrix (category codes,
imputed values, derived columns), float32; or raw typed values as an object array (see
`model_bundle.design_matrix`). Output: `probability` + `label` on the tuned threshold,
or `prediction` back on the target's own scale (`target_transform` inverted).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from castml.data.target_transform import inverse
from castml.runtime.manifest import Manifest
from castml.runtime.model_bundle import (
    design_matrix,
    has_encoding,
    read_encoding,
    read_target_transform,
)


class EncodedModel:
    """A `LoadedModel` over a trees' raw output; subclasses give `raw_score`."""

    def __init__(self, directory: Path) -> None:
        self.manifest = Manifest.read(directory)
        self.encoding = read_encoding(directory) if has_encoding(directory) else None
        self.target_transform = read_target_transform(directory)

    @property
    def features(self) -> list[str]:
        return self.manifest.features

    def raw_score(self, design: np.ndarray) -> np.ndarray:
        """The trees' output for the C-contiguous float32 design matrix, `[N]` float64."""
        raise NotImplementedError

    def score(self, x: np.ndarray) -> np.ndarray:
        """Probability of the positive class, or the prediction on the target's scale, `[N]`."""
        score = self.raw_score(design_matrix(x, self.encoding))
        if self.manifest.is_classification or self.target_transform == "none":
            return score
        return inverse(self.target_transform, score)  # type: ignore[arg-type]  # read from JSON

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        score = self.score(x).astype(np.float32)
        if not self.manifest.is_classification:
            return {"prediction": score}
        label = (score >= self.manifest.threshold).astype(np.int64)
        return {"probability": score, "label": label}
