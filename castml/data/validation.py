"""Validate a data set against its spec, naming every problem at once.

Values are read by the same rules (`castml.data.typed_values`) that training's encoder
and serving apply, so a value validation passes is one they accept.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from castml.data.typed_values import Parsed, parse, time_values
from castml.errors import DataValidationError
from castml.spec import Feature, ProjectSpec

SHOWN = 5  # values named in one problem; the count says how many rows


def find_problems(frame: pd.DataFrame, spec: ProjectSpec) -> list[str]:
    """Every way `frame` breaks `spec`; empty when the data set is usable."""
    problems = _column_problems(frame, spec)
    for feature in spec.features:
        if feature.name in frame.columns:
            problems += _feature_problems(_numpy(frame[feature.name]), feature)
    time = spec.time_column
    if time is not None and time not in spec.feature_names and time in frame.columns:
        problems += _time_problems(_numpy(frame[time]), time)
    if spec.target in frame.columns:
        problems += _target_problems(frame[spec.target], spec)
    if len(frame) < spec.validation.min_rows:
        problems.append(f"too few rows: {len(frame)} < {spec.validation.min_rows}")
    return problems


def _column_problems(frame: pd.DataFrame, spec: ProjectSpec) -> list[str]:
    expected = spec.data_columns
    present = {str(c) for c in frame.columns}
    problems = []
    missing = [c for c in expected if c not in present]
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    absent_ignored = [c for c in spec.ignore if c not in present]
    if absent_ignored:
        problems.append(
            f"ignored columns not in the data: {', '.join(absent_ignored)}"
            " (remove them from the spec's ignore: list)"
        )
    known = {*expected, *spec.ignore}
    extra = [str(c) for c in frame.columns if str(c) not in known]
    if extra:
        problems.append(
            f"unknown columns: {', '.join(extra)} (neither a feature nor the target: list them"
            " under ignore: in the spec to drop them)"
        )
    return problems


def _numpy(column: pd.Series) -> npt.NDArray[Any]:
    if column.dtype == object or str(column.dtype) in {"string", "category"}:
        # pandas' NA is not a numpy value; None is what a raw numpy column holds.
        return np.asarray(column.astype(object).where(column.notna(), None).to_numpy())
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return np.asarray(column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy())
    return np.asarray(column.to_numpy())


def _feature_problems(raw: npt.NDArray[Any], feature: Feature) -> list[str]:
    name = feature.name
    parsed = parse(raw, feature.dtype)
    problems = []
    bad = int(parsed.bad.sum())
    if bad:
        shown = ", ".join(parsed.bad_examples(raw, SHOWN))
        problems.append(
            f"{name}: {bad} value(s) that are not a valid {feature.dtype} (column type"
            f" {raw.dtype}), e.g. {shown}"
        )
    missing = int(parsed.missing.sum())
    if missing and feature.missing == "refuse":
        # Numbers say NaN, as validation always has (pipelines and people grep for it).
        marker = "NaN" if feature.is_numeric else "missing"
        problems.append(
            f"{name}: {missing} {marker} value(s), missing values the spec refuses"
            " (missing: impute fills them)"
        )
    if feature.is_numeric:
        problems += _bounds_problems(parsed, feature)
    if feature.dtype == "categorical" and feature.categories and feature.unknown == "refuse":
        problems += _unknown_problems(parsed, feature, feature.categories)
    return problems


def _bounds_problems(parsed: Parsed, feature: Feature) -> list[str]:
    values = parsed.values[~parsed.missing & ~parsed.bad]
    lo, hi = feature.bounds
    outside = (values < lo) | (values > hi)
    if not outside.any():
        return []
    return [
        f"{feature.name}: {int(outside.sum())} value(s) outside the physical bounds [{lo}, {hi}]"
        f" (seen {values.min():.6g}..{values.max():.6g})"
    ]


def _unknown_problems(parsed: Parsed, feature: Feature, categories: list[str]) -> list[str]:
    unknown = ~parsed.missing & ~np.isin(parsed.values, categories)
    if not unknown.any():
        return []
    values = np.unique(parsed.values[unknown])
    shown = ", ".join(repr(str(v)) for v in values[:SHOWN])
    more = f" and {len(values) - SHOWN} more" if len(values) > SHOWN else ""
    return [
        f"{feature.name}: {int(unknown.sum())} row(s) with unknown categories {shown}{more}"
        " (add them to categories:, or set unknown: other)"
    ]


def _time_problems(raw: npt.NDArray[Any], name: str) -> list[str]:
    parsed = time_values(raw)
    failed = int((parsed.bad | parsed.missing).sum())
    if not failed:
        return []
    shown = ", ".join(parsed.bad_examples(raw, SHOWN)) or "missing"
    return [f"{name}: {failed} time value(s) that are missing or not a datetime, e.g. {shown}"]


def _target_problems(target: pd.Series, spec: ProjectSpec) -> list[str]:
    name = spec.target
    if spec.target_labels is not None:
        return _labelled_target_problems(target, spec, spec.target_labels)
    if not pd.api.types.is_numeric_dtype(target):
        return [f"{name}: wrong dtype {target.dtype} for the target (expected numeric)"]
    values = target.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        return [f"{name}: {int((~np.isfinite(values)).sum())} missing or infinite target value(s)"]
    if spec.target_transform == "log1p" and (values <= -1).any():
        return [f"{name}: {int((values <= -1).sum())} value(s) <= -1, where log1p is undefined"]
    if not spec.is_classification:
        return []
    return _class_problems(values, spec)


def _labelled_target_problems(
    target: pd.Series, spec: ProjectSpec, labels: tuple[str, str]
) -> list[str]:
    text = parse(_numpy(target), "categorical")
    unknown = ~np.isin(text.values, labels) | text.missing
    if unknown.any():
        seen = np.unique(text.values[unknown])
        shown = ", ".join(repr(str(v)) for v in seen[:SHOWN])
        return [
            f"{spec.target}: {int(unknown.sum())} target value(s) other than the target_labels"
            f" {list(labels)}: {shown}"
        ]
    return _class_problems((text.values == labels[1]).astype(np.float64), spec)


def _class_problems(values: npt.NDArray[np.float64], spec: ProjectSpec) -> list[str]:
    name = spec.target
    labels, counts = np.unique(values, return_counts=True)
    if not set(labels.tolist()) <= {0.0, 1.0}:
        return [f"{name}: binary target must be 0/1, found {labels[:10].tolist()}"]
    if len(labels) < 2:
        return [f"{name}: a single class ({int(labels[0])}); need both 0 and 1"]
    rare = int(counts.min())
    if rare < spec.validation.min_class_rows:
        return [f"{name}: minority class has {rare} rows < {spec.validation.min_class_rows}"]
    return []


def validated(frame: pd.DataFrame, spec: ProjectSpec) -> pd.DataFrame:
    """`frame` in spec order with typed columns, or DataValidationError naming each problem.

    Numbers and bools become float64 (NaN where missing), categoricals text (None where
    missing), datetimes datetime64[ns]; ignored columns are dropped; the target is int64
    0/1 (text labels mapped by `target_labels`) for classification, float64 otherwise.
    """
    problems = find_problems(frame, spec)
    if problems:
        raise DataValidationError(problems)
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for feature in spec.features:
        out[feature.name] = _typed(_numpy(frame[feature.name]), feature.dtype)
    time = spec.time_column
    if time is not None and time not in spec.feature_names:
        raw = _numpy(frame[time])
        out[time] = raw if raw.dtype.kind in "iuf" else _typed(raw, "datetime")
    target = frame[spec.target]
    if spec.target_labels is not None:
        text = parse(_numpy(target), "categorical").values
        out[spec.target] = (text == spec.target_labels[1]).astype(np.int64)
    else:
        out[spec.target] = target.to_numpy(dtype=np.int64 if spec.is_classification else np.float64)
    return out


def _typed(raw: npt.NDArray[Any], dtype: str) -> npt.NDArray[Any]:
    parsed = parse(raw, dtype)
    if dtype == "categorical":
        text: npt.NDArray[Any] = parsed.values.astype(object)
        text[parsed.missing] = None
        return text
    if dtype == "datetime":
        nanos = np.round(np.nan_to_num(parsed.values) * 1e9).astype(np.int64)
        stamps: npt.NDArray[Any] = nanos.view("datetime64[ns]").copy()
        stamps[parsed.missing] = np.datetime64("NaT")
        return stamps
    numbers: npt.NDArray[np.float64] = np.asarray(parsed.values, dtype=np.float64)
    return numbers
