"""Anchors rules through alibi: an optional extra (BSL licence, numpy < 2), in its own venv.

The default install never imports alibi; without it, asking for anchors answers 422.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from serving.errors import MethodUnavailableError
from serving.store import ServedModel

INSTALL_HINT = (
    "method 'anchors' needs the optional extra alibi (BSL-licensed, pins numpy<2), which "
    "is not installed in this explainer; run the explainer from its own venv with "
    "`pip install alibi`, or use method 'shap'"
)


def available() -> bool:
    try:
        import alibi.explainers  # noqa: F401
    except ImportError:
        return False
    return True


def anchors(served: ServedModel, x: np.ndarray, threshold: float = 0.95) -> dict[str, Any]:
    try:
        from alibi.explainers import AnchorTabular
    except ImportError:
        raise MethodUnavailableError(INSTALL_HINT) from None
    if served.background is None:
        raise MethodUnavailableError(f"version {served.version} has no background sample logged")
    model = served.model
    explainer = AnchorTabular(lambda rows: model.predict(rows)["label"], model.features)
    explainer.fit(served.background)
    found = explainer.explain(x.reshape(1, -1), threshold=threshold)
    return {
        "method": "anchors",
        "anchor": list(found.anchor),
        "precision": float(found.precision),
        "coverage": float(found.coverage),
    }
