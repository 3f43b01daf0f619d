"""Field-by-field validation of named feature records against the project spec.

The fast path (every record complete and numeric) costs a few set and type checks per
record plus vectorised range checks; only a request that fails walks the fields again
to name every problem.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from castml.spec import ProjectSpec
from serving.errors import BadRequestError, FieldProblem, InvalidFeaturesError

_NUMBER = (int, float)


class FeatureValidator:
    def __init__(self, spec: ProjectSpec, max_rows: int) -> None:
        self.names = spec.feature_names
        self.name_set = frozenset(self.names)
        self.low = np.asarray([f.bounds[0] for f in spec.features], dtype=np.float64)
        self.high = np.asarray([f.bounds[1] for f in spec.features], dtype=np.float64)
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
