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
class _VocabularyGroup:
    """Categorical features with one vocabulary (so one code table): `feature` is any one."""

    feature: FeatureEncoding
    index: npt.NDArray[np.intp]
    members: tuple[int, ...]


# `encode`'s matrix (numbers unchecked), its raw columns, and the columns left to convert.
_Filled = tuple[npt.NDArray[np.float64], list[npt.NDArray[Any]], list[int]]


@dataclass(frozen=True)
class EncodingState:
    """Everything `encode` needs, learned by `fit`; one `FeatureEncoding` per feature, in order."""

    features: tuple[FeatureEncoding, ...]
    # Derived calendar parts, after the features in the matrix, from their source's seconds.
    derived: tuple[CalendarPart, ...] = ()
    _numeric: npt.NDArray[np.intp] = field(init=False, repr=False, compare=False)
    _integral: npt.NDArray[np.bool_] = field(init=False, repr=False, compare=False)

    _names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _numeric_list: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _groups: tuple[_VocabularyGroup, ...] = field(init=False, repr=False, compare=False)
    _others: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        numeric = [i for i, f in enumerate(self.features) if f.dtype in {"float", "int"}]
        integral = [self.features[i].dtype == "int" for i in numeric]
        object.__setattr__(self, "_numeric", np.asarray(numeric, dtype=np.intp))
        object.__setattr__(self, "_integral", np.asarray(integral, dtype=bool))
        object.__setattr__(self, "_names", tuple(f.name for f in self.features))
        object.__setattr__(self, "_numeric_list", tuple(numeric))
        # Categoricals that share a vocabulary share its codes too (a window's lags of one
        # feature): `encode` looks them up in one call per group.
        members: dict[tuple[str, ...], list[int]] = {}
        for index, feature in enumerate(self.features):
            if feature.dtype == "categorical" and feature.vocabulary:
                members.setdefault(feature.vocabulary, []).append(index)
        groups = tuple(
            _VocabularyGroup(self.features[m[0]], np.asarray(m, dtype=np.intp), tuple(m))
            for m in members.values()
        )
        grouped = {i for g in groups for i in g.members} | set(numeric)
        others = tuple(i for i in range(len(self.features)) if i not in grouped)
        object.__setattr__(self, "_groups", groups)
        object.__setattr__(self, "_others", others)

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
        block, and text categoricals found by one `searchsorted` per shared vocabulary; only
        a column with something to report, fill or convert takes the general per-column
        path. Columns of unequal or odd shapes (or missing ones) skip the grouped reading
        and take the per-column one, which names the problem.
        """
        grouped = self._grouped(columns)
        out, raws, general = grouped if grouped is not None else self._by_column(columns)
        width = len(self.features)
        if self._numeric.size:
            block = out[:, self._numeric]
            suspect = np.asarray(~np.isfinite(block).all(axis=0), dtype=bool)
            if self._integral.any():  # NaN and inf fail this too: they are suspects already
                fractional = np.mod(block[:, self._integral], 1) != 0
                suspect[self._integral] |= fractional.any(axis=0)
            general += self._numeric[suspect].tolist()
        problems: list[EncodingProblem] = []
        for index in sorted(set(general)):  # a number column may be listed twice
            raw = np.asarray(raws[index])
            out[:, index] = _encode_column(self.features[index], raw, problems)
        if problems:
            raise EncodingError(problems)
        for offset, part in enumerate(self.derived):
            # From the encoded (so already imputed) seconds: one function, both paths.
            source = out[:, self.names.index(part.source)]
            out[:, width + offset] = calendar_part(source, part)
        return out if dtype is np.float64 else out.astype(dtype)

    def _by_column(self, columns: Mapping[str, npt.NDArray[Any]]) -> _Filled:
        """The design matrix column by column (numbers not yet checked), and what is left
        for `_encode_column`: the reading for any shape of input."""
        raws = self._raw_columns(columns)
        rows = len(raws[0]) if raws else 0
        out = np.zeros((rows, len(self.features) + len(self.derived)), dtype=np.float64)
        general: list[int] = []
        for index, (feature, raw) in enumerate(zip(self.features, raws, strict=True)):
            if not _fast_column(feature, raw, out, index):
                general.append(index)
        return out, raws, general

    def _grouped(self, columns: Mapping[str, npt.NDArray[Any]]) -> _Filled | None:
        """`_by_column`'s result in a few numpy calls: each vocabulary group's text stacked
        and looked up at once, the numbers stacked and copied in as one block (a call per
        column costs ~1 us, and a window spec has ~100 columns). None when the columns are
        not all present numpy arrays, 1-D and of one length: `_by_column` then reads them
        (and says what is wrong)."""
        try:
            raws: list[Any] = [columns[name] for name in self._names]
            text_kinds = [{raws[i].dtype.kind for i in g.members} for g in self._groups]
            number_kinds = {raws[i].dtype.kind for i in self._numeric_list}
        except (KeyError, AttributeError):  # a column missing, or not an array
            return None
        # np.array stacks in C (np.stack is ~4x slower), but it would turn a number among
        # text into text, or a bool among numbers into a number: only columns of the one
        # right kind are stacked; the others are read by their own rule (`_fast_column`).
        alone: list[int] = []
        texts: list[npt.NDArray[np.str_] | None] = []
        block = None
        try:
            for group, kinds in zip(self._groups, text_kinds, strict=True):
                if kinds == {"U"}:
                    texts.append(np.array([raws[i] for i in group.members]))
                else:  # a null (object) or a number among them
                    texts.append(None)
                    alone += group.members
            if number_kinds <= set("iuf"):
                block = np.array([raws[i] for i in self._numeric_list])  # [numbers, rows]
            else:
                alone += self._numeric_list
        except ValueError:  # columns of unequal shapes
            return None
        shapes = {t.shape[1:] for t in texts if t is not None}
        if block is not None and self._numeric_list:
            shapes.add(block.shape[1:])
        for index in (*alone, *self._others):
            raws[index] = np.asarray(raws[index])
            shapes.add(raws[index].shape)
        if len(shapes) != 1 or len(one := shapes.pop()) != 1:
            return None  # not all 1-D, of one length
        out = np.zeros((one[0], len(self.features) + len(self.derived)), dtype=np.float64)
        general: list[int] = list(self._others)  # bool, datetime: always converted
        for group, text in zip(self._groups, texts, strict=True):
            if text is None:
                continue
            feature = group.feature
            position = feature._search.searchsorted(text)  # [members, rows]
            out[:, group.index] = feature._codes[position].T
            known = (feature._sorted[position] == text).all(axis=1)
            if not known.all():
                general += group.index[~known].tolist()
        if block is not None and self._numeric_list:
            out[:, self._numeric] = block.T  # `encode` checks it, as one block
        for index in alone:
            if not _fast_column(self.features[index], raws[index], out, index):
                general.append(index)
        return out, raws, general

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


def _fast_column(
    feature: FeatureEncoding, raw: npt.NDArray[Any], out: npt.NDArray[np.float64], index: int
) -> bool:
    """One clean column into `out[:, index]` (numbers: checked later, as a block); False
    when it needs `_encode_column` (text to parse, an unknown category, a fill, a bool)."""
    kind = raw.dtype.kind
    if feature.dtype in {"float", "int"} and kind in "iuf":
        out[:, index] = raw
        return True
    if feature.dtype == "categorical" and kind == "U":
        codes, known = feature.codes(raw)
        if known.all():
            out[:, index] = codes
            return True
    return False


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
