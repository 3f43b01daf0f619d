"""The studio's training config -> the model family's parameter block, and the draft's streams.

The frontend sends `{epochs, batch_size, learning_rate, lstm_hidden, mlp_hidden, dropout}`;
the `lstm_seq` family reads its `lstm_seq` block (castml/models/lstm_seq_family.py). Until
that family is installed the studio drafts `gbm` specs, where `epochs` is the number of
boosting rounds (each round is an "epoch" on the WebSocket) and the LSTM sizes do not apply.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

# The studio config's names -> the lstm_seq block's names.
LSTM_KEYS = {
    "epochs": "epochs",
    "batch_size": "batch_size",
    "learning_rate": "learning_rate",
    "lstm_hidden": "lstm_hidden",
    "mlp_hidden": "mlp_hidden",
    "dropout": "dropout",
}
DEFAULT_CONFIG: dict[str, Any] = {
    "epochs": 3,
    "batch_size": 256,
    "learning_rate": 1e-3,
    "lstm_hidden": 32,
    "mlp_hidden": 32,
    "dropout": 0.1,
}
SEQUENCE_LENGTH = 8


def lstm_available() -> bool:
    return importlib.util.find_spec("castml.models.lstm_seq_family") is not None


def draft_family(setting: str = "auto") -> str:
    """The family a new upload's draft names (CASTML_STUDIO_FAMILY; auto: lstm_seq once
    installed, else gbm)."""
    if setting != "auto":
        return setting
    return "lstm_seq" if lstm_available() else "gbm"


def default_block() -> dict[str, Any]:
    return {LSTM_KEYS[k]: v for k, v in DEFAULT_CONFIG.items()}


def params_override(family: str, config: dict[str, Any]) -> str:
    """The pipeline's `params_override` (JSON) for one training config."""
    if family == "lstm_seq":
        block = {LSTM_KEYS[k]: v for k, v in config.items() if k in LSTM_KEYS}
        return json.dumps({"lstm_seq": block})
    return json.dumps(
        {"gbm": {"n_estimators": int(config["epochs"]), "learning_rate": config["learning_rate"]}}
    )


def stream_keys(features: list[dict[str, Any]]) -> list[str]:
    """What keys a stream: the categorical identifiers (`*_id`), and `position` and
    `campaign` if present (the Open Bandit layout: an item in a slot), e.g. [item_id,
    position]."""
    keys = [
        f["name"]
        for f in features
        if f["dtype"] == "categorical" and str(f["name"]).lower().endswith("id")
    ]
    # a slot on the page, and the campaign when several are stacked (ids differ per campaign)
    keys += [f["name"] for f in features if str(f["name"]).lower() in ("position", "campaign")]
    return keys


def sequence_block(
    features: list[dict[str, Any]], time_column: str | None
) -> dict[str, Any] | None:
    """The draft's `sequence:`: streams keyed by the identifiers (and position), in time order."""
    keys = stream_keys(features)
    if not keys or time_column is None:
        return None
    return {"keys": keys, "order": time_column, "length": SEQUENCE_LENGTH}
