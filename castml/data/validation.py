"""Validate a data set against its spec, naming every problem at once."""

from __future__ import annotations

import numpy as np
import pandas as pd

from castml.errors import DataValidationError
from castml.spec import ProjectSpec


def find_problems(frame: pd.DataFrame, spec: ProjectSpec) -> list[str]:
    """Every way `frame` breaks `spec`; empty when the data set is usable."""
    problems: list[str] = []
    expected = [*spec.feature_names, spec.target]
    missing = [c for c in expected if c not in frame.columns]
    extra = [str(c) for c in frame.columns if c not in expected]
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    if extra:
        problems.append(f"unknown columns: {', '.join(extra)}")

    for feature in spec.features:
        if feature.name not in frame.columns:
            continue
        problems += _column_problems(frame[feature.name], feature.name, feature.bounds)

    if spec.target in frame.columns:
        problems += _target_problems(frame[spec.target], spec)

    if len(frame) < spec.validation.min_rows:
        problems.append(f"too few rows: {len(frame)} < {spec.validation.min_rows}")
    return problems


def _column_problems(column: pd.Series, name: str, bounds: tuple[float, float]) -> list[str]:
    if not (pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)):
        return [f"{name}: wrong dtype {column.dtype} (expected numeric)"]
    values = column.to_numpy(dtype=np.float64)
    problems = []
    nan = int(np.isnan(values).sum())
    if nan:
        problems.append(f"{name}: {nan} NaN value(s)")
    inf = int(np.isinf(values).sum())
    if inf:
        problems.append(f"{name}: {inf} infinite value(s)")
    finite = values[np.isfinite(values)]
    lo, hi = bounds
    outside = (finite < lo) | (finite > hi)
    if outside.any():
        problems.append(
            f"{name}: {int(outside.sum())} value(s) outside the physical bounds [{lo}, {hi}]"
            f" (seen {finite.min():.6g}..{finite.max():.6g})"
        )
    return problems


def _target_problems(target: pd.Series, spec: ProjectSpec) -> list[str]:
    name = spec.target
    if not pd.api.types.is_numeric_dtype(target):
        return [f"{name}: wrong dtype {target.dtype} for the target (expected numeric)"]
    values = target.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        return [f"{name}: {int((~np.isfinite(values)).sum())} missing or infinite target value(s)"]
    if not spec.is_classification:
        return []
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
    """`frame` in spec order with float64 features, or DataValidationError naming each problem."""
    problems = find_problems(frame, spec)
    if problems:
        raise DataValidationError(problems)
    out = frame[[*spec.feature_names]].astype(np.float64)
    out[spec.target] = frame[spec.target].astype(np.int64 if spec.is_classification else np.float64)
    return out.reset_index(drop=True)
