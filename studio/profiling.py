"""An uploaded table -> a draft project spec: types, categoricals, bounds, the target.

The draft is a real `castml.spec.ProjectSpec` (validated before it is written), stored as
YAML next to the CSV it describes, so a training run loads it by path like any spec.

Rules, in order, per column:
- the target: the first column named like a click label (`TARGET_NAMES`) holding exactly
  the values 0 and 1 (or true/false);
- a time column (its name says time or date, its text parses as datetimes): the split's
  order (`time_column`), not a feature;
- an unnamed pandas index (`Unnamed: 0`) or a constant column: ignored, with a warning;
- numbers: `int` or `float` with bounds widened past the data by its span (so a little
  drift validates), imputed when values are missing; an integer column whose name ends in
  `id` is an identifier, hence categorical;
- text: categorical with its vocabulary learned in training and an unknown category
  mapped to `other`; text with nearly one value per row (free text, row ids) is ignored.

A table trains only when every part of the split the draft implies (time-ordered with a
time column) holds at least `MIN_PART_CLICKS` clicks: a test part without clicks has no
ROC-AUC, and the upload says so instead of a pipeline failing later.
The model: `lstm_seq` over streams keyed by the identifiers (`studio.lstm_params`) when
the table has them and a time column, else `gbm`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from castml.spec import ProjectSpec
from studio.settings import MIN_HOLDOUT_CLICKS

TARGET_NAMES = ("click", "clicked", "is_click", "clicks", "label", "target", "y", "converted")
TIME_NAME = re.compile(r"time|date", re.IGNORECASE)
ID_NAME = re.compile(r"(^|_)id$", re.IGNORECASE)
TEST_SHARE = 0.2  # the spec's default split.test and split.validation
MIN_PART_CLICKS = 3
TRUE_TEXT = frozenset({"1", "true", "yes"})
FALSE_TEXT = frozenset({"0", "false", "no"})


@dataclass
class Profile:
    """What profiling found: the draft spec (None when the table cannot train) and why."""

    spec: dict[str, Any] | None
    target: str | None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    positives: int = 0


def binary_values(column: pd.Series) -> np.ndarray | None:
    """The column as 0/1 floats (NaN where missing), or None when it is not a 0/1 label."""
    if pd.api.types.is_bool_dtype(column):
        return np.asarray(column.to_numpy(dtype=np.float64), dtype=np.float64)
    if pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=np.float64)
        present = values[~np.isnan(values)]
        return values if present.size and np.isin(present, (0.0, 1.0)).all() else None
    text = column.astype("string").str.strip().str.lower()
    known = text.isin(TRUE_TEXT | FALSE_TEXT) | text.isna()
    if not bool(known.all()):
        return None
    return np.where(text.isna(), np.nan, text.isin(TRUE_TEXT).to_numpy(dtype=np.float64))


def find_target(frame: pd.DataFrame) -> tuple[str | None, list[str]]:
    """The click label's column, or None with the reasons each candidate was refused."""
    reasons: list[str] = []
    by_lower = {str(c).lower(): str(c) for c in frame.columns}
    for name in TARGET_NAMES:
        column = by_lower.get(name)
        if column is None:
            continue
        if binary_values(frame[column]) is None:
            reasons.append(f"column '{column}' is not a 0/1 label")
            continue
        return column, reasons
    return None, reasons


def _is_time(column: pd.Series, name: str) -> bool:
    if not TIME_NAME.search(name) or pd.api.types.is_numeric_dtype(column):
        return False
    sample = column.dropna().astype(str).head(200)
    parsed = pd.to_datetime(sample, errors="coerce", utc=True, format="mixed")
    return bool(len(sample)) and float(parsed.notna().mean()) >= 0.95


def _bounds(values: np.ndarray, integer: bool) -> list[float]:
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    span = max(high - low, 1.0)
    low = 0.0 if low >= 0 else low - span
    high = high + span
    if integer:
        return [float(math.floor(low)), float(math.ceil(high))]
    return [round(low, 6), round(high, 6)]


def _feature(name: str, column: pd.Series, rows: int) -> tuple[dict[str, Any] | None, str]:
    """A feature's spec entry, or None with why the column is left out."""
    present = column.dropna()
    missing = len(present) < rows
    base: dict[str, Any] = {"name": name}
    if missing:
        base["missing"] = "impute"
    if present.nunique() <= 1:
        return None, f"column '{name}' holds one value only: ignored"
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = column.to_numpy(dtype=np.float64)
        integer = bool(np.all(np.mod(values[~np.isnan(values)], 1) == 0))
        if integer and ID_NAME.search(name):
            return {**base, "dtype": "categorical", "unknown": "other"}, ""
        dtype = "int" if integer else "float"
        return {**base, "dtype": dtype, "bounds": _bounds(values, integer)}, ""
    if pd.api.types.is_bool_dtype(column):
        return {**base, "dtype": "bool"}, ""
    if present.nunique() > 0.9 * rows and rows > 20:
        return None, f"column '{name}' has a distinct value on nearly every row: ignored"
    return {**base, "dtype": "categorical", "unknown": "other"}, ""


def split_problems(frame: pd.DataFrame, labels: np.ndarray, time_column: str | None) -> list[str]:
    """Whether each part of the split the draft implies (time-ordered when there is a time
    column, else stratified) holds enough clicks to train, pick a threshold and evaluate."""
    if time_column is None:
        return []  # stratified: each part gets its share of the clicks
    seconds = pd.to_datetime(frame[time_column], errors="coerce", utc=True, format="mixed")
    ordered = labels[np.argsort(seconds.to_numpy(), kind="stable")]
    n_test = math.ceil(len(ordered) * TEST_SHARE)
    rest = ordered[: len(ordered) - n_test]
    n_val = math.ceil(len(rest) * TEST_SHARE / (1 - TEST_SHARE))
    parts = {
        "train": rest[: len(rest) - n_val],
        "validation": rest[len(rest) - n_val :],
        "test": ordered[len(ordered) - n_test :],
    }
    return [
        f"the time-ordered {name} part ({len(part)} rows) holds {int(np.nansum(part))} "
        f"click(s); at least {MIN_PART_CLICKS} are needed: upload more rows"
        for name, part in parts.items()
        if np.nansum(part) < MIN_PART_CLICKS
    ]


def model_block(family: str) -> dict[str, Any]:
    """The model section of a draft: the family and its parameter block's defaults."""
    if family == "lstm_seq":
        from studio.lstm_params import default_block

        return {"family": "lstm_seq", "params": {"lstm_seq": default_block()}, "seed": 0}
    return {
        "family": "gbm",
        "params": {"gbm": {"n_estimators": 60, "max_depth": 4, "learning_rate": 0.1}},
        "seed": 0,
    }


def profile(frame: pd.DataFrame, name: str, csv_path: str, family: str) -> Profile:
    """Draft the spec of `frame` (stored at `csv_path`) as project `name`."""
    target, reasons = find_target(frame)
    if target is None:
        wanted = ", ".join(TARGET_NAMES)
        why = f" ({'; '.join(reasons)})" if reasons else ""
        return Profile(None, None, [f"no usable target: no 0/1 column named {wanted}{why}"])
    labels = binary_values(frame[target])
    assert labels is not None
    positives = int(np.nansum(labels))
    negatives = int(np.sum(labels == 0))
    errors: list[str] = []
    if positives == 0 or negatives == 0:
        only = "1" if negatives == 0 else "0"
        errors.append(f"target '{target}' has a single class (every row is {only})")
    if int(np.isnan(labels).sum()):
        errors.append(f"target '{target}' is missing on {int(np.isnan(labels).sum())} row(s)")
    warnings: list[str] = []
    features: list[dict[str, Any]] = []
    ignore: list[str] = []
    time_column: str | None = None
    for column_name in frame.columns:
        column_label = str(column_name)
        if column_label == target:
            continue
        column = frame[column_name]
        if column_label.startswith("Unnamed:") or column_label == "":
            ignore.append(column_label)
            warnings.append(f"column '{column_label}' is an unnamed index: ignored")
        elif time_column is None and _is_time(column, column_label):
            time_column = column_label
        else:
            feature, why = _feature(column_label, column, len(frame))
            if feature is None:
                ignore.append(column_label)
                warnings.append(why)
            else:
                features.append(feature)
    if not features:
        errors.append("no usable feature column")
    if not errors:
        errors += split_problems(frame, labels, time_column)
    if errors:
        return Profile(None, target, errors, warnings, positives)
    spec: dict[str, Any] = {
        "name": name,
        "description": f"Drafted by the studio from the upload {csv_path}.",
        "task": "binary_classification",
        "target": target,
        "class_names": ["no_click", "click"],
        "source": {"kind": "csv", "path": csv_path},
        "features": features,
        "ignore": ignore,
        "model": model_block(family),
        "validation": {"min_rows": 50, "min_class_rows": 5},
        "gates": {"min_positives": MIN_HOLDOUT_CLICKS},
        "monitoring": {"reference_rows": 2000, "background_rows": 50},
    }
    if time_column is not None:
        spec["time_column"] = time_column
    if family == "lstm_seq":
        from studio.lstm_params import sequence_block

        sequence = sequence_block(features, time_column)
        if sequence is not None:
            spec["sequence"] = sequence
        else:  # no streams to run an LSTM over: a plain tabular model, said so
            spec["model"] = model_block("gbm")
            warnings.append(
                "no stream keys (an *_id or position column) and time column found: "
                "drafted with the gbm family instead of lstm_seq"
            )
    ProjectSpec.model_validate(spec)  # a draft that would not load is a bug here, not later
    return Profile(spec, target, [], warnings, positives)
