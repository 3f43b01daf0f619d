"""Typed features -> one numeric design matrix, in numpy: the encoder training and serving share.

`fit` learns, from the training frame, what the spec leaves open: each categorical's
vocabulary and each imputed feature's fill value. The result, an `EncodingState`, is
JSON (`to_json`/`from_json`) so that it can travel with the model version. `encode`
turns columns of raw values (a mapping of feature name -> numpy array) into a
`[rows, features]` matrix in spec order:

- float, int, bool: the number (bool as 0/1); datetime: seconds since the Unix epoch (UTC);
- categorical: the value's integer code in the vocabulary (found with `np.searchsorted`
  over the sorted vocabulary, no per-row Python); an unknown value is refused or gets the
  shared "other" code `len(vocabulary)`;
- missing: refused, or the fill value.

Every problem in a call is collected and raised at once as one `EncodingError`.
This is a hot path for serving: numpy only, no pandas (only `fit` and `encode_frame`,
the training side, take a DataFrame). `make bench` measures it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from castml.data.calendar_features import CalendarPart, calendar_part
from castml.data.typed_values import Parsed, parse
from castml.errors import CastmlError

if TYPE_CHECKING:
    import pandas as pd

    from castml.spec import Feature, ProjectSpec

STATE_VERSION = 1


@dataclass(frozen=True)
class EncodingProblem:
    """One feature's problem in one `encode` call: what, and in how many rows."""

    feature: str
    message: str
    rows: int

    def __str__(self) -> str:
        return f"{self.feature}: {self.message}"


class EncodingError(CastmlError):
    """Raw values that the spec refuses (a 400 on a server); `problems` names each one."""

    status_code = 400

    def __init__(self, problems: list[EncodingProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(map(str, problems)))


@dataclass(frozen=True)
class FeatureEncoding:
    """How one feature becomes one design-matrix column."""

    name: str
    dtype: Literal["float", "int", "bool", "categorical", "datetime"]
    missing: Literal["refuse", "impute"] = "refuse"
    # The fill for a missing value: a number (seconds since the epoch for a datetime), or a
    # category of the vocabulary. None: missing values are refused.
    impute: float | str | None = None
    # Categoricals: the vocabulary in code order (code i is vocabulary[i]).
    vocabulary: tuple[str, ...] = ()
    unknown: Literal["refuse", "other"] = "refuse"
    _sorted: npt.NDArray[np.str_] = field(init=False, repr=False, compare=False)
    _search: npt.NDArray[np.str_] = field(init=False, repr=False, compare=False)
    _codes: npt.NDArray[np.float64] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        vocabulary = np.asarray(self.vocabulary, dtype=str)
        order = np.argsort(vocabulary, kind="stable")
        # Padded with a copy of the last value: `searchsorted` answers len(vocabulary) only
        # for a value above them all, and that slot then holds a value it cannot equal.
        # This saves a clip per call.
        padded = np.concatenate([order, order[-1:]])
        object.__setattr__(self, "_sorted", vocabulary[padded])
        object.__setattr__(self, "_search", self._sorted[:-1])  # sliced once, not per call
        object.__setattr__(self, "_codes", padded.astype(np.float64))

    @property
    def other_code(self) -> int:
        return len(self.vocabulary)

    def codes(
        self, text: npt.NDArray[np.str_]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Each value's code (a float, as the design matrix holds it), and whether it is known."""
        if not self.vocabulary:
            return np.full(text.shape, np.nan), np.zeros(text.shape, dtype=bool)
        position = self._search.searchsorted(text)  # the method: np.searchsorted adds ~1 us
        return self._codes[position], self._sorted[position] == text

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "missing": self.missing,
            "impute": self.impute,
            "vocabulary": list(self.vocabulary),
            "unknown": self.unknown,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FeatureEncoding:
        return cls(
            name=str(raw["name"]),
            dtype=raw["dtype"],
            missing=raw["missing"],
            impute=raw["impute"],
            vocabulary=tuple(str(v) for v in raw["vocabulary"]),
            unknown=raw["unknown"],
        )


@dataclass(frozen=True)
class EncodingState:
    """Everything `encode` needs, learned by `fit`; one `FeatureEncoding` per feature, in order."""

    features: tuple[FeatureEncoding, ...]
    # Derived calendar parts, after the features in the matrix, from their source's seconds.
    derived: tuple[CalendarPart, ...] = ()
    _numeric: npt.NDArray[np.intp] = field(init=False, repr=False, compare=False)
    _integral: npt.NDArray[np.bool_] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        numeric = [i for i, f in enumerate(self.features) if f.dtype in {"float", "int"}]
        integral = [self.features[i].dtype == "int" for i in numeric]
        object.__setattr__(self, "_numeric", np.asarray(numeric, dtype=np.intp))
        object.__setattr__(self, "_integral", np.asarray(integral, dtype=bool))

    @property
    def names(self) -> list[str]:
        """The raw features `encode` reads, in order."""
        return [f.name for f in self.features]

    @property
    def columns(self) -> list[str]:
        """The design matrix's columns: the features, then the derived features."""
        return [*self.names, *(d.name for d in self.derived)]

    @property
    def categorical_columns(self) -> list[int]:
        """Design-matrix columns that hold category codes (for a GBM's categorical support)."""
        return [i for i, f in enumerate(self.features) if f.dtype == "categorical"]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "features": [f.to_json() for f in self.features],
            "derived": [d.to_json() for d in self.derived],
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> EncodingState:
        if raw.get("version") != STATE_VERSION:
            raise CastmlError(f"encoding state version {raw.get('version')} is not supported")
        return cls(
            tuple(FeatureEncoding.from_json(f) for f in raw["features"]),
            tuple(CalendarPart.from_json(d) for d in raw.get("derived", [])),
        )

    def encode(
        self,
        columns: Mapping[str, npt.NDArray[Any]],
        dtype: type[np.floating[Any]] = np.float64,
    ) -> npt.NDArray[np.floating[Any]]:
        """The `[rows, features + derived]` design matrix of `columns` (name -> raw values).

        Hand-built fast path (`make bench`): clean numbers are copied in and checked as one
        block, and text categoricals found by one `searchsorted` each; only a column with
        something to report, fill or convert takes the general per-column path.
        """
        raws = self._raw_columns(columns)
        rows = len(raws[0]) if raws else 0
        width = len(self.features)
        out = np.zeros((rows, width + len(self.derived)), dtype=np.float64)
        general: list[int] = []
        for index, (feature, raw) in enumerate(zip(self.features, raws, strict=True)):
            kind = raw.dtype.kind
            if feature.dtype in {"float", "int"} and kind in "iuf":
                out[:, index] = raw  # checked below, with the other numbers at once
            elif feature.dtype == "categorical" and kind == "U":
                codes, known = feature.codes(raw)
                if known.all():
                    out[:, index] = codes
                else:
                    general.append(index)
            else:
                general.append(index)
        if self._numeric.size:
            block = out[:, self._numeric]
            suspect = np.asarray(~np.isfinite(block).all(axis=0), dtype=bool)
            if self._integral.any():  # NaN and inf fail this too: they are suspects already
                fractional = np.mod(block[:, self._integral], 1) != 0
                suspect[self._integral] |= fractional.any(axis=0)
            general += self._numeric[suspect].tolist()
        problems: list[EncodingProblem] = []
        for index in sorted(set(general)):  # a number column may be listed twice
            out[:, index] = _encode_column(self.features[index], raws[index], problems)
        if problems:
            raise EncodingError(problems)
        for offset, part in enumerate(self.derived):
            # From the encoded (so already imputed) seconds: one function, both paths.
            source = out[:, self.names.index(part.source)]
            out[:, width + offset] = calendar_part(source, part)
        return out if dtype is np.float64 else out.astype(dtype)

    def _raw_columns(self, columns: Mapping[str, npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
        absent = [f.name for f in self.features if f.name not in columns]
        if absent:
            raise EncodingError([EncodingProblem(n, "missing from the input", 0) for n in absent])
        raws = [np.asarray(columns[f.name]).reshape(-1) for f in self.features]
        lengths = {len(raw) for raw in raws}
        if len(lengths) > 1:
            raise EncodingError(
                [EncodingProblem("*", f"features differ in length: {sorted(lengths)}", 0)]
            )
        return raws


def encode(
    state: EncodingState,
    columns: Mapping[str, npt.NDArray[Any]],
    dtype: type[np.floating[Any]] = np.float64,
) -> npt.NDArray[np.floating[Any]]:
    """`state.encode(columns, dtype)`."""
    return state.encode(columns, dtype)


def encode_frame(
    state: EncodingState, frame: pd.DataFrame, dtype: type[np.floating[Any]] = np.float64
) -> npt.NDArray[np.floating[Any]]:
    """Training's side: the same `encode` on a frame's feature columns."""
    return state.encode(frame_columns(frame, state.names), dtype)


def frame_columns(frame: pd.DataFrame, names: list[str]) -> dict[str, npt.NDArray[Any]]:
    """A frame's columns as numpy, with pandas' missing markers (NA, NaT) as None/NaT."""
    out: dict[str, npt.NDArray[Any]] = {}
    for name in names:
        column = frame[name]
        if column.dtype == object or str(column.dtype) in {"string", "category"}:
            out[name] = column.astype(object).where(column.notna(), None).to_numpy()
        else:
            out[name] = column.to_numpy()
    return out


def _encode_column(
    feature: FeatureEncoding, raw: npt.NDArray[Any], problems: list[EncodingProblem]
) -> npt.NDArray[np.float64]:
    parsed = parse(raw, feature.dtype)
    if parsed.bad.any():
        problems.append(_bad(feature, raw, parsed))
    if feature.dtype == "categorical":
        values, known = feature.codes(parsed.values)
        unknown = ~known & ~parsed.missing
        if unknown.any():
            if feature.unknown == "refuse":
                shown = ", ".join(repr(str(v)) for v in np.unique(parsed.values[unknown])[:5])
                problems.append(
                    EncodingProblem(feature.name, f"unknown category {shown}", int(unknown.sum()))
                )
            values[unknown] = feature.other_code
    else:
        values = parsed.values
    if parsed.missing.any():
        if feature.impute is None:
            count = int(parsed.missing.sum())
            problems.append(
                EncodingProblem(feature.name, f"{count} missing value(s) (refused)", count)
            )
        else:
            values = np.where(parsed.missing, _fill(feature), values)
    return values


def _fill(feature: FeatureEncoding) -> float:
    if feature.dtype != "categorical":
        return float(feature.impute)  # type: ignore[arg-type]  # a number for non-categoricals
    code, known = feature.codes(np.asarray([str(feature.impute)]))
    return float(code[0]) if known[0] else float(feature.other_code)


def _bad(feature: FeatureEncoding, raw: npt.NDArray[Any], parsed: Parsed) -> EncodingProblem:
    count = int(parsed.bad.sum())
    shown = ", ".join(parsed.bad_examples(raw))
    return EncodingProblem(
        feature.name, f"{count} value(s) that are not a valid {feature.dtype}: {shown}", count
    )


def fit(frame: pd.DataFrame, spec: ProjectSpec) -> EncodingState:
    """What `encode` needs for `spec`, learned from the training `frame` (validated)."""
    return fit_columns(frame_columns(frame, spec.feature_names), spec)


def fit_columns(columns: Mapping[str, npt.NDArray[Any]], spec: ProjectSpec) -> EncodingState:
    """`fit` on numpy columns (feature name -> values), for callers that have no DataFrame:
    a sequence family's windows, whose text columns a DataFrame would hold as objects."""
    # Calendar parts only: a forecast's lags and rolling means are its family's own
    # (castml.data.lag_features), and other tasks may declare nothing else (castml.spec).
    derived = tuple(
        CalendarPart(d.name, d.source, d.part, d.country, d.subdivision)
        for d in spec.derived
        if d.kind == "calendar" and d.part is not None
    )
    return EncodingState(tuple(_fit_feature(f, columns[f.name]) for f in spec.features), derived)


def _fit_feature(feature: Feature, raw: npt.NDArray[Any]) -> FeatureEncoding:
    parsed = parse(raw, feature.dtype)
    present = ~parsed.missing & ~parsed.bad
    vocabulary: tuple[str, ...] = ()
    if feature.dtype == "categorical":
        seen = np.unique(parsed.values[present])
        vocabulary = tuple(feature.categories or (str(v) for v in seen))
    impute: float | str | None = None
    if feature.missing == "impute":
        impute = _learned_fill(feature, parsed, present)
        # A declared fill that the training data never holds joins a learned vocabulary.
        learned = feature.categories is None and feature.dtype == "categorical"
        if learned and impute not in vocabulary:
            vocabulary = (*vocabulary, str(impute))
    return FeatureEncoding(
        feature.name, feature.dtype, feature.missing, impute, vocabulary, feature.unknown
    )


def _learned_fill(feature: Feature, parsed: Parsed, present: npt.NDArray[np.bool_]) -> float | str:
    if feature.impute is not None and feature.dtype != "datetime":
        return feature.impute
    if feature.impute is not None:
        return float(parse(np.asarray([feature.impute]), "datetime").values[0])
    values = parsed.values[present]
    if feature.categories is not None:  # the most frequent known category, never an unknown
        values = values[np.isin(values, feature.categories)]
    if values.size == 0:
        raise CastmlError(
            f"{feature.name}: no value in the training data to learn its imputed value from;"
            " declare one with impute:"
        )
    if feature.dtype in {"categorical", "bool"}:
        seen, counts = np.unique(values, return_counts=True)
        top = seen[int(np.argmax(counts))]  # ties: the first in sorted order
        return str(top) if feature.dtype == "categorical" else float(top)
    median = float(np.median(values))
    return float(np.round(median)) if feature.dtype == "int" else median
