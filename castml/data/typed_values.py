"""Read one column of raw values as its spec type, in numpy: the values, what is missing,
what does not parse.

One set of rules for every path a value takes: data validation, training's encoding and
(later) serving's. The column arrives as numpy: numbers, bools, `datetime64`, text (`U`,
UTF-8 `S`) or objects (str, numbers, None, NaN). Missing is NaN, NaT, None or "".

Rows are never looped over in Python on the way a valid column takes; only a column that
fails to parse is walked element by element, to name the values that failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
TEXT_TRUE = ("true", "1", "yes")
TEXT_FALSE = ("false", "0", "no")
# Seconds since the Unix epoch are what a datetime becomes in a design matrix.
NS_PER_SECOND = 1_000_000_000


@dataclass(frozen=True)
class Parsed:
    """`values` (float64, or text `U` for categoricals) with `missing` and `bad` row masks.

    Missing and bad rows hold a placeholder in `values` (NaN or ""), never a real value.
    """

    values: npt.NDArray[Any]
    missing: BoolArray
    bad: BoolArray

    def bad_examples(self, raw: npt.NDArray[Any], limit: int = 3) -> list[str]:
        return [repr(_plain(v)) for v in raw[self.bad][:limit]]


def missing_mask(raw: npt.NDArray[Any]) -> BoolArray:
    kind = raw.dtype.kind
    if kind == "f":
        return np.asarray(np.isnan(raw), dtype=bool)
    if kind == "M":
        return np.asarray(np.isnat(raw), dtype=bool)
    if kind in "US":
        return np.asarray(np.char.str_len(raw) == 0)
    if kind == "O":
        # Elementwise in C: None, NaN (the one value unequal to itself) and "".
        empty = np.equal(raw, np.asarray(None)) | np.not_equal(raw, raw)
        return np.asarray(empty | np.equal(raw, ""), dtype=bool)
    return np.zeros(raw.shape, dtype=bool)


def parse(raw: npt.NDArray[Any], dtype: str) -> Parsed:
    """`raw` read as a feature of spec type `dtype`."""
    raw = np.asarray(raw)
    if dtype == "categorical":
        return _text(raw)
    if dtype == "datetime":
        return _datetime(raw)
    if dtype == "bool":
        return _bool(raw)
    parsed = _number(raw)
    if dtype == "int":
        fractional = ~parsed.missing & ~parsed.bad & (np.mod(parsed.values, 1) != 0)
        if fractional.any():
            parsed = _with_bad(parsed, fractional)
    return parsed


def time_values(raw: npt.NDArray[Any]) -> Parsed:
    """A time column (the spec's `time_column`) as seconds since the epoch; numbers as they are."""
    return parse(raw, "float" if raw.dtype.kind in "iuf" else "datetime")


def _with_bad(parsed: Parsed, bad: BoolArray) -> Parsed:
    values = parsed.values.copy()
    values[bad] = np.nan
    return Parsed(values, parsed.missing, parsed.bad | bad)


def _number(raw: npt.NDArray[Any]) -> Parsed:
    missing = missing_mask(raw)
    kind = raw.dtype.kind
    if kind in "iuf":
        values = raw.astype(np.float64)
        return _finite(values, missing)
    if kind in "bM":
        return _fail_all(raw, missing)
    try:
        values = np.where(missing, np.nan, raw).astype(np.float64)
    except (ValueError, TypeError):
        values = _float_each(raw, missing)
    bad = ~missing & np.isnan(values)
    if kind == "O":
        # Python bools pass as 1.0 and 0.0 above; as a number they are a type error.
        bad |= np.asarray(np.frompyfunc(_is_bool, 1, 1)(raw), dtype=bool) & ~missing
        values[bad] = np.nan
    return _finite(values, missing, bad)


def _finite(values: FloatArray, missing: BoolArray, bad: BoolArray | None = None) -> Parsed:
    # Infinity is "not a number we accept": bad, so every path refuses it the same way.
    bad = (np.zeros(values.shape, dtype=bool) if bad is None else bad) | np.isinf(values)
    values = np.where(bad | missing, np.nan, values)
    return Parsed(values, missing, bad)


def _fail_all(raw: npt.NDArray[Any], missing: BoolArray) -> Parsed:
    return Parsed(np.full(raw.shape, np.nan), missing, ~missing)


def _float_or_nan(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _float_each(raw: npt.NDArray[Any], missing: BoolArray) -> FloatArray:
    """The slow path, taken only when a column holds something that is not a number."""
    values = np.asarray(np.frompyfunc(_float_or_nan, 1, 1)(raw), dtype=np.float64)
    values[missing] = np.nan
    return values


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool | np.bool_)


def _bool(raw: npt.NDArray[Any]) -> Parsed:
    missing = missing_mask(raw)
    kind = raw.dtype.kind
    if kind == "b":
        return Parsed(raw.astype(np.float64), missing, np.zeros(raw.shape, dtype=bool))
    if kind in "iuf":
        values = raw.astype(np.float64)
        bad = ~missing & (values != 0) & (values != 1)
        return Parsed(np.where(bad | missing, np.nan, values), missing, bad)
    if kind == "M":
        return _fail_all(raw, missing)
    text = np.char.lower(_as_text(raw, missing))
    true = np.isin(text, TEXT_TRUE)
    false = np.isin(text, TEXT_FALSE)
    bad = ~missing & ~true & ~false
    values = np.where(true, 1.0, np.where(false, 0.0, np.nan))
    return Parsed(values, missing, bad)


def _datetime(raw: npt.NDArray[Any]) -> Parsed:
    missing = missing_mask(raw)
    kind = raw.dtype.kind
    if kind == "M":
        stamps = raw.astype("datetime64[ns]")
    elif kind in "biuf":
        return _fail_all(raw, missing)
    else:
        text = _as_text(raw, missing)
        try:
            stamps = np.where(missing, "NaT", text).astype("datetime64[ns]")
        except ValueError:
            stamps = np.asarray(
                np.frompyfunc(_stamp_or_nat, 1, 1)(np.where(missing, "NaT", text)),
                dtype="datetime64[ns]",
            )
    unparsed = np.isnat(stamps) & ~missing
    seconds = stamps.astype(np.int64).astype(np.float64) / NS_PER_SECOND
    return Parsed(np.where(missing | unparsed, np.nan, seconds), missing, unparsed)


def _stamp_or_nat(value: str) -> np.datetime64:
    try:
        return np.datetime64(value, "ns")
    except ValueError:
        return np.datetime64("NaT", "ns")


def _as_text(raw: npt.NDArray[Any], missing: BoolArray) -> npt.NDArray[np.str_]:
    if raw.dtype.kind == "U":
        return raw
    if raw.dtype.kind == "S":
        return np.char.decode(raw, "utf-8")
    try:
        # numpy reads bytes objects as ASCII here: b"red" becomes "red".
        text: npt.NDArray[np.str_] = np.where(missing, "", raw).astype(str)
    except UnicodeDecodeError:  # UTF-8 bytes beyond ASCII: decode them one by one
        text = np.asarray(np.frompyfunc(_decoded, 1, 1)(np.where(missing, "", raw)), dtype=str)
    return text


def _decoded(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


# From this many values on, text objects are read once per distinct value (below).
DISTINCT_FROM = 4096


def _text(raw: npt.NDArray[Any]) -> Parsed:
    if raw.dtype.kind == "O" and raw.ndim == 1 and raw.size >= DISTINCT_FROM:
        found = _distinct_text(raw)
        if found is not None:
            return found
    missing = missing_mask(raw)
    text = _as_text(raw, missing)
    if raw.dtype.kind == "f":
        # A category read as a number: 3.0 is the category "3", as the CSV wrote it.
        whole = ~missing & (np.mod(raw, 1) == 0)
        text = np.where(whole, np.where(missing, 0, raw).astype(np.int64).astype(str), text)
    return Parsed(np.where(missing, "", text), missing, np.zeros(raw.shape, dtype=bool))


def _distinct_text(raw: npt.NDArray[Any]) -> Parsed | None:
    """`_text` of a long column of str objects, read once per distinct value: a category
    column holds few, and turning each object into text was most of a training encode
    (a window's ~100 lag columns of 36,000 rows: 3.2 ms a column). None unless every
    value present is a str (pandas hashes 1, 1.0 and True alike; their texts differ)."""
    import pandas as pd

    try:
        codes, uniques = pd.factorize(raw)  # None and NaN: code -1
    except TypeError:  # an unhashable value (a list): read value by value
        return None
    distinct = np.asarray(uniques, dtype=object)
    if not all(type(value) is str for value in distinct.tolist()):
        return None
    once = _text(distinct)
    absent = codes < 0
    at = np.where(absent, 0, codes)
    if not len(distinct):
        return Parsed(np.full(raw.shape, "", dtype=str), absent, np.zeros(raw.shape, bool))
    text = once.values[at]
    text[absent] = ""
    return Parsed(text, absent | once.missing[at], np.zeros(raw.shape, dtype=bool))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
