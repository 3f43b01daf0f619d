"""A small trained `lstm_seq` (ctr) version in a local model store, and v2 rows for it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from castml.data.ctr_generator import generate
from castml.data.sequence_windows import sequence_view
from castml.data.validation import validated
from castml.spec import ProjectSpec, load_spec

SMALL_PARAMS = {
    "lstm_seq": {
        "epochs": 2,
        "batch_size": 128,
        "learning_rate": 0.01,
        "lstm_hidden": 8,
        "mlp_hidden": [8],
        "dropout": 0.0,
    }
}
V2_TYPES = {"float": "FP64", "int": "INT64", "bool": "BOOL", "categorical": "BYTES"}


def ctr_frame(rows: int, seed: int = 5) -> pd.DataFrame:
    return validated(generate(rows, seed), load_spec("ctr"))


def build_lstm_store(root: Path, rows: int = 3000) -> Path:
    """`root/1/model`: an lstm_seq ctr version, @champion."""
    from castml.models.lstm_seq_family import train

    frame = ctr_frame(rows)
    cut = int(rows * 0.75)
    train(
        load_spec("ctr"),
        frame.iloc[:cut],
        frame.iloc[cut:],
        root / "1" / "model",
        root / "baseline",
        SMALL_PARAMS,
    )
    (root / "aliases.json").write_text(json.dumps({"champion": "1"}))
    return root


def window_rows(frame: pd.DataFrame) -> tuple[ProjectSpec, pd.DataFrame]:
    """The flattened spec and the frame's windows (what a client sends, row by row)."""
    return sequence_view(load_spec("ctr"), frame)


def v2_inputs(flat: ProjectSpec, window: pd.DataFrame) -> list[dict[str, Any]]:
    """One v2 tensor per flattened feature: BYTES for categoricals, and for a number column
    with a missing value (a lag the stream lacks: JSON numbers have no NaN, text has null);
    numbers as such otherwise."""
    inputs = []
    for feature in flat.features:
        values = window[feature.name].to_numpy()
        datatype = V2_TYPES[feature.dtype]
        if feature.dtype == "categorical":
            data: list[Any] = [None if v is None else str(v) for v in values]
        else:
            numbers = values.astype(np.float64)
            cast = int if feature.dtype == "int" else float
            if np.isnan(numbers).any():
                datatype = "BYTES"
                data = [None if np.isnan(v) else str(cast(v)) for v in numbers]
            else:
                data = [cast(v) for v in numbers]
        inputs.append(
            {"name": feature.name, "datatype": datatype, "shape": [len(data)], "data": data}
        )
    return inputs


def pyfunc_frame(flat: ProjectSpec, window: pd.DataFrame) -> pd.DataFrame:
    """The window as the pyfunc's signature takes it: an int feature that is never missing
    as int64 (the validated frame holds numbers as float64)."""
    frame = window[flat.feature_names].copy()
    for feature in flat.features:
        if feature.dtype == "int" and feature.missing == "refuse":
            frame[feature.name] = frame[feature.name].astype("int64")
    return frame
