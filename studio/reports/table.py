"""A run's upload as the numeric table the reports analyse (importance, correlation).

The reports describe the data a run trained on, read from the upload with the run's draft
spec: each spec feature becomes one column (numbers as they are, missing values as the
median; bools 0/1; categoricals as codes ranked by frequency, the rarest pooled), the
target 0/1. At most `MAX_ROWS` rows, a seeded sample that keeps every clicked row (clicks
are rare; a sample that drops them has nothing to explain).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from castml.errors import CastmlError
from studio.profiling import binary_values

MAX_ROWS = 6000
MAX_CATEGORIES = 30


@dataclass(frozen=True)
class Table:
    features: list[str]
    kinds: list[str]  # each feature's spec dtype
    x: npt.NDArray[np.float64]  # [rows, features]
    y: npt.NDArray[np.int64]  # 0/1
    raw: pd.DataFrame  # the sampled rows' original columns, for the tests between classes


def _codes(column: pd.Series) -> npt.NDArray[np.float64]:
    text = column.astype("string").fillna("<missing>")
    ranked = text.value_counts().index[:MAX_CATEGORIES]
    mapping = {value: float(rank) for rank, value in enumerate(ranked)}
    return np.asarray(text.map(mapping).fillna(float(len(ranked))), dtype=np.float64)


def _numbers(column: pd.Series) -> npt.NDArray[np.float64]:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        fill = float(np.nanmedian(values)) if np.isfinite(values).any() else 0.0
        values = np.where(np.isnan(values), fill, values)
    return np.asarray(values, dtype=np.float64)


def build_table(frame: pd.DataFrame, spec: dict[str, Any], seed: int = 0) -> Table:
    target = str(spec["target"])
    labels = binary_values(frame[target])
    if labels is None:
        raise CastmlError(f"target '{target}' is not a 0/1 label")
    keep = ~np.isnan(labels)
    frame, labels = frame.loc[keep].reset_index(drop=True), labels[keep]
    if len(frame) > MAX_ROWS:
        rng = np.random.default_rng(seed)
        positives = np.flatnonzero(labels == 1)
        negatives = rng.permutation(np.flatnonzero(labels == 0))
        chosen = np.sort(
            np.r_[
                positives[: MAX_ROWS // 2],
                negatives[: MAX_ROWS - min(len(positives), MAX_ROWS // 2)],
            ]
        )
        frame, labels = frame.iloc[chosen].reset_index(drop=True), labels[chosen]
    names, kinds, columns = [], [], []
    for feature in spec["features"]:
        name, kind = str(feature["name"]), str(feature["dtype"])
        column = frame[feature.get("column") or name]
        if kind == "categorical":
            columns.append(_codes(column))
        elif kind == "bool":
            flags = binary_values(column)
            columns.append(np.nan_to_num(flags if flags is not None else _numbers(column)))
        else:
            columns.append(_numbers(column))
        names.append(name)
        kinds.append(kind)
    return Table(names, kinds, np.column_stack(columns), labels.astype(np.int64), frame)
