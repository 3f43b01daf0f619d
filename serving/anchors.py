"""Anchors rules through alibi: an optional extra (BSL licence, numpy < 2), in its own venv.

An anchor is a set of feature conditions (`"Process_Pressure > 82.83"`) under which the
served model keeps its prediction for this row with at least the requested precision,
whatever the other features are (they are drawn from the version's logged background).
Coverage is the share of background rows the conditions hold for.

alibi 0.9.6 pins numpy < 2 and the core pins numpy >= 2.2, so alibi never shares a venv
with the default install: the explainer that answers `method: "anchors"` runs from
`.venv-alibi` (`make anchors-venv`, scripts/alibi_venv.sh). The default install never
imports alibi; there, asking for anchors answers 422 with `INSTALL_HINT`. Everything here
works under numpy 1.26 and 2.x alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from serving.errors import BadRequestError, MethodUnavailableError
from serving.version_store import ServedModel

METHOD = "anchors"
DEFAULT_THRESHOLD = 0.95
MIN_THRESHOLD = 0.5
SEED = 0  # the same row and version give the same anchor
INSTALL_HINT = (
    "method 'anchors' needs the optional extra alibi (BSL-licensed, pins numpy<2), which "
    "is not installed in this explainer; run the explainer from its own venv (`make "
    "anchors-venv`, then `.venv-alibi/bin/python -m serving explainer ...`), or use method 'shap'"
)


def available() -> bool:
    try:
        import alibi.explainers  # noqa: F401
    except ImportError:
        return False
    return True


def anchors(
    served: ServedModel, x: np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> dict[str, Any]:
    """The anchor of one row `x` (`[F]`) for the served classifier's label."""
    try:
        from alibi.explainers import AnchorTabular
    except ImportError:
        raise MethodUnavailableError(INSTALL_HINT) from None
    if served.background is None:
        raise MethodUnavailableError(
            f"version {served.version} has no explainer background logged; re-register it"
        )
    model = served.model
    if not model.manifest.is_classification:
        raise BadRequestError(
            f"method 'anchors' explains a classifier's label; version {served.version} is a "
            "regression model, use method 'shap'"
        )

    def predict_label(rows: np.ndarray) -> np.ndarray:
        return model.predict(np.asarray(rows, dtype=np.float32))["label"]

    row = np.asarray(x, dtype=np.float32).reshape(1, -1)
    label = int(predict_label(row)[0])
    # A fresh, seeded explainer per row: fitting is only the background's quartiles (ms).
    explainer = AnchorTabular(predict_label, model.features, seed=SEED)
    explainer.fit(served.background)
    found = explainer.explain(row[0], threshold=threshold)
    raw = found.data["raw"]
    if int(np.asarray(raw["prediction"]).reshape(-1)[0]) != label:  # alibi's own call
        raise RuntimeError("alibi explained another label than the model predicts")
    class_names = model.manifest.class_names
    return {
        "method": METHOD,
        "anchor": [str(condition) for condition in found.anchor],
        "features": [model.features[int(j)] for j in raw["feature"]],
        # An empty anchor (the label holds almost everywhere) has the overall precision.
        "precision": float(np.asarray(found.precision).reshape(-1)[0]),
        "coverage": float(found.coverage),
        "threshold": threshold,
        "meets_threshold": bool(raw["success"]),
        "prediction": {
            "label": label,
            "class": class_names[label] if class_names else str(label),
        },
        "background_rows": len(served.background),
    }
