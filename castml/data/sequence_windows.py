"""Each row's window: the k rows before it in its stream, flattened into one wide row.

The one place that builds a sequence model's input from a table (spec `sequence:`), used
by training, evaluation, registration and the benchmark alike. A stream is the rows that
share the `sequence.keys` values, ordered by `sequence.order` (default: the time column;
ties keep file order). Row j's lag i is the i-th row before it in its stream.

The window is flattened so that serving needs nothing new: a request carries one row of
`window_names(spec)` (the current row's features, then per lag i = 1..k the lag's
features as `<feature>__lag<i>`, its label `<target>__lag<i>`, `present__lag<i>` (1: the
stream has that many rows before) and `age__lag<i>` (hours before the current row for a
datetime order, the order column's own units for a number)), and the predictor serves
it as an ordinary row of the flattened spec (`flattened_spec`), which the trained model
carries as its own `spec.yaml`. A lag the stream does not have is missing, and the
flattened spec imputes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from castml.data.typed_values import parse, time_values
from castml.errors import SpecError
from castml.spec import Feature, ProjectSpec, SequenceSpec

PRESENT = "present"
AGE = "age"
SECONDS_PER_HOUR = 3600.0


def lag_name(name: str, lag: int) -> str:
    return f"{name}__lag{lag}"


def _sequence(spec: ProjectSpec) -> SequenceSpec:
    if spec.sequence is None:
        raise SpecError(f"{spec.name}: the spec has no sequence: (stream keys, order, length)")
    return spec.sequence


def lag_extras(spec: ProjectSpec, lag: int) -> list[str]:
    """The per-lag columns that are not features: the lag's label, presence and age."""
    return [lag_name(spec.target, lag), lag_name(PRESENT, lag), lag_name(AGE, lag)]


def window_names(spec: ProjectSpec) -> list[str]:
    """The flattened window's columns, in the model's input order."""
    seq = _sequence(spec)
    base = [f.name for f in spec.features]
    if seq.flattened:
        return base
    names = list(base)
    for lag in range(1, seq.length + 1):
        names += [lag_name(n, lag) for n in base] + lag_extras(spec, lag)
    return names


def flattened_spec(spec: ProjectSpec) -> ProjectSpec:
    """The spec of the flattened window: what a trained lstm_seq model carries and serves.

    The current row's features keep their rules; each lag's copy is imputed when the
    stream is too short; the lag label, presence and age are floats.
    """
    seq = _sequence(spec)
    if seq.flattened:
        return spec
    features = list(spec.features)
    taken = {f.name for f in features} | {spec.target}
    for lag in range(1, seq.length + 1):
        for f in spec.features:
            features.append(
                f.model_copy(
                    update={
                        "name": lag_name(f.name, lag),
                        "column": None,
                        "missing": "impute",
                        "impute": None,
                        "description": f"{f.name}, {lag} row(s) before in the stream",
                    }
                )
            )
        label, present, age = lag_extras(spec, lag)
        features += [
            Feature.model_validate(
                {"name": label, "bounds": (0.0, 1.0), "missing": "impute", "impute": 0.0}
            ),
            Feature.model_validate({"name": present, "bounds": (0.0, 1.0)}),
            Feature.model_validate({"name": age, "bounds": (0.0, 1e12), "missing": "impute"}),
        ]
    clash = sorted(taken & {f.name for f in features[len(spec.features) :]})
    if clash:
        raise SpecError(f"{spec.name}: window column names clash with features: {clash}")
    body = spec.model_dump(by_alias=True)
    body["features"] = [f.model_dump(by_alias=True) for f in features]
    body["sequence"] = {**body["sequence"], "flattened": True}
    body["ignore"] = []
    return ProjectSpec.model_validate(body)


def predecessors(
    keys: list[npt.NDArray[Any]], order: npt.NDArray[np.float64], length: int
) -> npt.NDArray[np.intp]:
    """`[N, length]`: the row index of each row's lag 1..length in its stream, -1 if none."""
    n = len(order)
    stream = np.zeros(n, dtype=np.int64)
    for column in keys:
        text = np.asarray(column, dtype=object).astype(str)  # None and NaN become one key
        _, codes = np.unique(text, return_inverse=True)
        stream = stream * (int(codes.max(initial=0)) + 1) + codes.reshape(-1)
    rows = np.arange(n)
    ranked = np.lexsort((rows, np.nan_to_num(order, nan=np.inf), stream))
    sorted_stream = stream[ranked]
    out = np.full((n, length), -1, dtype=np.intp)
    for lag in range(1, min(length, n - 1) + 1):
        same = sorted_stream[lag:] == sorted_stream[:-lag]
        target = ranked[lag:]
        out[target[same], lag - 1] = ranked[:-lag][same]
    return out


def order_values(frame: pd.DataFrame, spec: ProjectSpec) -> tuple[npt.NDArray[np.float64], float]:
    """The order column as numbers, and the divisor that makes an age out of a difference."""
    column = _sequence(spec).order or spec.time_column
    assert column is not None  # the spec's validation guarantees one
    raw = np.asarray(frame[column].to_numpy())
    values = np.asarray(time_values(raw).values, dtype=np.float64)
    return values, (1.0 if raw.dtype.kind in "iuf" else SECONDS_PER_HOUR)


def _gather(values: npt.NDArray[Any], index: npt.NDArray[np.intp]) -> npt.NDArray[Any]:
    """`values[index]`, missing where index is -1 (None, NaN, NaT or "" by the column's kind)."""
    picked = values[np.maximum(index, 0)]  # fancy indexing: already a copy
    absent = index < 0
    if not absent.any():
        return picked
    if values.dtype.kind == "M":
        picked[absent] = np.datetime64("NaT")
    elif values.dtype.kind in "iub":
        picked = picked.astype(np.float64)
        picked[absent] = np.nan
    elif values.dtype.kind == "f":
        picked[absent] = np.nan
    elif values.dtype.kind == "U":
        picked[absent] = ""  # what text means missing to the encoder
    else:
        picked = picked.astype(object)
        picked[absent] = None
    return picked


def _windows(
    frame: pd.DataFrame, spec: ProjectSpec, base: dict[str, npt.NDArray[Any]]
) -> dict[str, npt.NDArray[Any]]:
    """The window columns, `window_names(spec)` in order, from `base` (each feature's
    column of `frame`, in the form the lags should copy)."""
    index, extras = lag_index(frame, spec)
    columns = dict(base)
    for lag in range(1, index.shape[1] + 1):
        at = index[:, lag - 1]
        for name, values in base.items():
            columns[lag_name(name, lag)] = _gather(values, at)
        for name in lag_extras(spec, lag):
            columns[name] = extras[name]
    return columns


def lag_index(
    frame: pd.DataFrame, spec: ProjectSpec
) -> tuple[npt.NDArray[np.intp], dict[str, npt.NDArray[np.float64]]]:
    """(`[N, k]`: the row of each row's lag 1..k in its stream, -1 if none; each lag's
    extras (`lag_extras`: label, presence, age) as float columns)."""
    seq = _sequence(spec)
    order, unit = order_values(frame, spec)
    index = predecessors([np.asarray(frame[k].to_numpy()) for k in seq.keys], order, seq.length)
    target = (
        np.asarray(frame[spec.target].to_numpy(), dtype=np.float64)
        if spec.target in frame.columns
        else None
    )
    extras: dict[str, npt.NDArray[np.float64]] = {}
    for lag in range(1, seq.length + 1):
        at = index[:, lag - 1]
        label, present, age = lag_extras(spec, lag)
        extras[label] = _gather(target, at) if target is not None else np.full(len(frame), np.nan)
        extras[present] = (at >= 0).astype(np.float64)
        gap = (order - order[np.maximum(at, 0)]) / unit
        extras[age] = np.where(at >= 0, np.maximum(gap, 0.0), np.nan)
    return index, extras


def absent_value(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """One element: what a lag the stream lacks holds in a copy of `values` (`_gather`)."""
    return _gather(values, np.full(1, -1, dtype=np.intp))


def windowed_frame(frame: pd.DataFrame, spec: ProjectSpec) -> pd.DataFrame:
    """`frame` (validated) as flattened windows: `window_names(spec)`, the target (when
    the frame has it) and the order column. A frame that already holds every window
    column (windowed upstream, over the whole data set) is returned as it is."""
    names = window_names(spec)
    if set(names) <= set(frame.columns):
        return frame
    base = {f.name: np.asarray(frame[f.name].to_numpy()) for f in spec.features}
    out = pd.DataFrame(_windows(frame, spec, base), index=frame.index)
    seq = _sequence(spec)
    order_column = seq.order or spec.time_column
    if order_column is not None and order_column not in out.columns:
        out[order_column] = frame[order_column].to_numpy()
    if spec.target in frame.columns:
        out[spec.target] = frame[spec.target].to_numpy()
    return out


def with_windows(frame: pd.DataFrame, spec: ProjectSpec) -> pd.DataFrame:
    """`frame` with its window columns added, built over the whole of it.

    The split step calls this before it splits, so a validation or test row keeps its real
    history even where its stream's earlier rows fell into the training part (windows built
    per part would start each part's streams empty: served windows never do). The lags
    copy earlier rows only, never the row's own label."""
    windowed = windowed_frame(frame, spec)
    added = [name for name in windowed.columns if name not in frame.columns]
    return pd.concat([frame, windowed[added]], axis=1)


def _encoder_input(frame: pd.DataFrame, name: str, categorical: bool) -> npt.NDArray[Any]:
    """A column as the encoder reads it: a categorical as text (`U`, "" where missing:
    what `typed_values` reads None as), anything else as it is."""
    values = np.asarray(frame[name].to_numpy())
    return parse(values, "categorical").values if categorical else values


def window_columns(frame: pd.DataFrame, spec: ProjectSpec) -> dict[str, npt.NDArray[Any]]:
    """`frame` (validated) as the encoder's input: `window_names(spec)` -> numpy column.

    The same windows as `windowed_frame`, without the DataFrame: training encodes these
    straight away. A categorical is read as text once, before its k lags copy it, so the
    encoder does not turn k + 1 object columns into text one element at a time. A frame
    windowed upstream (`with_windows`) gives its own columns.
    """
    if is_windowed(frame, spec):
        categorical = {f.name for f in flattened_spec(spec).features if f.dtype == "categorical"}
        return {
            name: _encoder_input(frame, name, name in categorical) for name in window_names(spec)
        }
    return _windows(frame, spec, base_columns(frame, spec))


def is_windowed(frame: pd.DataFrame, spec: ProjectSpec) -> bool:
    """Whether `frame` holds every window column already (windowed upstream)."""
    return set(window_names(spec)) <= set(frame.columns)


def base_columns(frame: pd.DataFrame, spec: ProjectSpec) -> dict[str, npt.NDArray[Any]]:
    """The current row's features as the encoder reads them, which the lags copy."""
    return {f.name: _encoder_input(frame, f.name, f.dtype == "categorical") for f in spec.features}


def sequence_view(spec: ProjectSpec, frame: pd.DataFrame) -> tuple[ProjectSpec, pd.DataFrame]:
    """(the spec the model takes, the frame in its columns): for a sequence spec, the
    flattened spec and the windowed frame; any other spec and frame as they are."""
    if spec.sequence is None or spec.sequence.flattened:
        return spec, frame
    return flattened_spec(spec), windowed_frame(frame, spec)
