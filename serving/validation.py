"""Field-by-field validation of named feature records against the project spec.

The fast path (every record complete and numeric) costs a few set and type checks per
record plus vectorised range checks; only a request that fails walks the fields again
to name every problem.

A typed spec (categoricals, ints, bools, datetimes, imputed missing values) is checked
by `TypedValidator`: each field's JSON type for its dtype (null only where the spec
imputes), bounds for the numeric features; the result is raw columns by feature, which
the predictor encodes with the served version's vocabularies (an unknown category is
the predictor's 400, naming the feature and the value).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from castml.spec import Feature, ProjectSpec
from serving.errors import BadRequestError, FieldProblem, InvalidFeaturesError

_NUMBER = (int, float)


class FeatureValidator:
    def __init__(self, spec: ProjectSpec, max_rows: int) -> None:
        self.names = spec.feature_names
        self.name_set = frozenset(self.names)
        # Bounds for the numeric features only (a typed spec is validated by TypedValidator).
        bounds = [f.bounds if f.is_numeric else (-np.inf, np.inf) for f in spec.features]
        self.low = np.asarray([b[0] for b in bounds], dtype=np.float64)
        self.high = np.asarray([b[1] for b in bounds], dtype=np.float64)
        self.max_rows = max_rows

    def records(self, instances: list[Any], batch: bool) -> np.ndarray:
        """`[N, F]` float32 from records: objects keyed by feature, or lists in spec order."""
        if not instances:
            raise BadRequestError("'instances' is empty; send at least one record")
        if len(instances) > self.max_rows:
            raise BadRequestError(
                f"the request has {len(instances)} instances; the limit is {self.max_rows}"
            )
        problems: list[FieldProblem] = []
        rows: list[list[Any]] = []
        for i, record in enumerate(instances):
            index = i if batch else None
            if isinstance(record, dict):
                if record.keys() != self.name_set:
                    problems.extend(self._key_problems(record, index))
                    continue
                row = [record[name] for name in self.names]
            elif isinstance(record, list):
                if len(record) != len(self.names):
                    problems.append(
                        FieldProblem(
                            "<record>",
                            f"a list record needs {len(self.names)} values in spec order, "
                            f"got {len(record)}",
                            index,
                        )
                    )
                    continue
                row = record
            else:
                problems.append(
                    FieldProblem(
                        "<record>", "a record must be an object keyed by feature name", index
                    )
                )
                continue
            # bool is an int subclass: `type(...) in` refuses it where isinstance would not
            if not all(type(v) in _NUMBER for v in row):
                problems.extend(self._type_problems(row, index))
                continue
            rows.append(row)
        if problems:
            raise InvalidFeaturesError(problems)
        x = np.asarray(rows, dtype=np.float64)
        self.check_values(x, batch)
        return x.astype(np.float32)

    def check_values(self, x: np.ndarray, batch: bool) -> None:
        """Finite and inside the physical bounds, vectorised; every failure named."""
        bad_finite = ~np.isfinite(x)
        bad_range = ~bad_finite & ((x < self.low) | (x > self.high))
        if not (bad_finite.any() or bad_range.any()):
            return
        problems = []
        for row, col in zip(*np.nonzero(bad_finite | bad_range), strict=True):
            value = float(x[row, col])
            what = (
                f"{value} is not a finite number"
                if not math.isfinite(value)
                else f"{value:g} is outside the physical bounds "
                f"[{self.low[col]:g}, {self.high[col]:g}]"
            )
            problems.append(FieldProblem(self.names[col], what, int(row) if batch else None))
        raise InvalidFeaturesError(problems)

    def _key_problems(self, record: dict[str, Any], index: int | None) -> list[FieldProblem]:
        missing = [FieldProblem(n, "missing", index) for n in self.names if n not in record]
        unknown = [
            FieldProblem(str(k), "unknown field (not in the project spec)", index)
            for k in record
            if k not in self.name_set
        ]
        present = [record[n] for n in self.names if n in record]
        named = [n for n in self.names if n in record]
        return missing + unknown + self._type_problems(present, index, named)

    def _type_problems(
        self, row: list[Any], index: int | None, names: list[str] | None = None
    ) -> list[FieldProblem]:
        return [
            FieldProblem(name, f"must be a number, got {_describe(value)}", index)
            for name, value in zip(self.names if names is None else names, row, strict=True)
            if type(value) not in _NUMBER
        ]


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return f"a {type(value).__name__}"


def is_typed(spec: ProjectSpec) -> bool:
    """Whether `spec` needs `TypedValidator`: anything but complete floats."""
    plain = all(f.dtype == "float" and f.missing == "refuse" for f in spec.features)
    return not plain or bool(spec.derived)


def _type_error(feature: Feature, value: Any) -> str | None:
    """What is wrong with one JSON value for `feature`'s dtype; None: nothing."""
    if value is None:
        return None if feature.missing == "impute" else "missing (this feature refuses it)"
    kind = feature.dtype
    if kind in {"float", "int"}:
        if type(value) not in _NUMBER:
            return f"must be a number, got {_describe(value)}"
        if not math.isfinite(value):
            return f"{value} is not a finite number"
        if kind == "int" and value != int(value):
            return f"must be a whole number, got {value:g}"
        low, high = feature.bounds
        if not low <= value <= high:
            return f"{value:g} is outside the physical bounds [{low:g}, {high:g}]"
        return None
    if kind == "bool":
        return None if isinstance(value, bool) else f"must be true or false, got {_describe(value)}"
    if not isinstance(value, str):  # categorical and datetime values are text
        return f"must be a string, got {_describe(value)}"
    return None


class TypedValidator:
    """Named records -> raw columns by feature, every field's type and bounds checked."""

    def __init__(self, spec: ProjectSpec, max_rows: int) -> None:
        self.features = spec.features
        self.names = spec.feature_names
        self.name_set = frozenset(self.names)
        self.max_rows = max_rows

    def records(self, instances: list[Any], batch: bool) -> dict[str, np.ndarray]:
        if not instances:
            raise BadRequestError("'instances' is empty; send at least one record")
        if len(instances) > self.max_rows:
            raise BadRequestError(
                f"the request has {len(instances)} instances; the limit is {self.max_rows}"
            )
        problems: list[FieldProblem] = []
        for i, record in enumerate(instances):
            index = i if batch else None
            if not isinstance(record, dict):
                problems.append(
                    FieldProblem("<record>", "a record must be an object keyed by feature", index)
                )
                continue
            absent = [n for n in self.names if n not in record]
            problems.extend(FieldProblem(n, "missing", index) for n in absent)
            problems.extend(
                FieldProblem(str(k), "unknown field (not in the project spec)", index)
                for k in record
                if k not in self.name_set
            )
            for feature in self.features:
                if feature.name in record:
                    error = _type_error(feature, record[feature.name])
                    if error is not None:
                        problems.append(FieldProblem(feature.name, error, index))
        if problems:
            raise InvalidFeaturesError(problems)
        return {f.name: _column(f, [r[f.name] for r in instances]) for f in self.features}


def _column(feature: Feature, values: list[Any]) -> np.ndarray:
    """One checked column: floats (NaN: missing), ints, bools, or text (object, None: missing)."""
    has_null = any(v is None for v in values)
    if feature.dtype in {"float", "int"}:
        if feature.dtype == "int" and not has_null:
            return np.asarray(values, dtype=np.int64)
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    if feature.dtype == "bool":
        if not has_null:
            return np.asarray(values, dtype=bool)
        # With a missing value it travels as text, which the encoder reads as a bool.
        values = [None if v is None else str(v).lower() for v in values]
    return np.asarray(values, dtype=object)
