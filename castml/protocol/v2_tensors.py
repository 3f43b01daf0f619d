"""v2 (Open Inference Protocol) tensors <-> numpy, for REST JSON (+ binary extension) and gRPC.

Accepts the two layouts of DESIGN.md §4: one `[N, F]` tensor in spec feature order,
or one `[N]` tensor per feature. Every check is vectorised: no per-row Python.
Typed specs (categoricals, datetimes) send `BYTES` tensors, as JSON strings (null: a
missing value), and `BOOL`; `feature_columns` hands them on by name as numpy arrays for
the version's encoder. `features_matrix`, the all-float hot path, takes numbers only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from castml.web.errors import BadRequestError, FieldProblem, InvalidFieldsError

NUMERIC: dict[str, np.dtype[Any]] = {
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
}
V2_DATATYPE = {np.dtype(v): k for k, v in NUMERIC.items()}
BYTES = "BYTES"
BOOL = "BOOL"
# Datatypes that `feature_columns` takes besides the numeric ones (JSON `data` only).
TYPED = (BYTES, BOOL)
BINARY_HEADER = "inference-header-content-length"
# A request full of NaN names this many cells; the message says how many more there are.
MAX_NAMED_CELLS = 100


# Not frozen: a frozen dataclass's __init__ costs ~0.4 us more (object.__setattr__ per
# field), and a typed request builds ~100 of them. Nothing changes one after decoding.
@dataclass(slots=True)
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    values: np.ndarray  # flat: numeric; bool (BOOL); str, or object with None (BYTES)


def _shape(name: str, raw: Any) -> tuple[int, ...]:
    if type(raw) is list and len(raw) == 1 and type(raw[0]) is int and raw[0] >= 0:
        return (raw[0],)  # the common [N]: a request of per-feature tensors has ~100
    if not isinstance(raw, list) or not all(type(d) is int and d >= 0 for d in raw):
        raise BadRequestError(f"input '{name}': 'shape' must be a list of non-negative integers")
    return tuple(raw)


def _numeric(name: str, datatype: Any) -> np.dtype[Any]:
    if not isinstance(datatype, str) or datatype not in NUMERIC:
        raise BadRequestError(
            f"input '{name}': datatype {datatype!r} is not supported; "
            "send FP32 (or another numeric type), BYTES or BOOL"
        )
    return NUMERIC[datatype]


def _typed_values(name: str, datatype: str, data: Any) -> np.ndarray:
    """BYTES (strings, null for a missing value) or BOOL `data`, flat; refused, never coerced."""
    if not isinstance(data, list):
        raise BadRequestError(f"input '{name}': 'data' must be a flat list")
    try:
        values = np.asarray(data)
    except ValueError:
        raise BadRequestError(f"input '{name}': 'data' is ragged; send a flat list") from None
    if values.ndim != 1:
        values = values.reshape(-1)
    if datatype == BOOL:
        if values.dtype.kind != "b":
            raise BadRequestError(f"input '{name}': BOOL 'data' must hold true/false only")
        return values
    # numpy would turn [1, "a"] into text; only strings (and null: missing) are BYTES values.
    kinds = set(map(type, data))  # one pass in C, not a per-row Python loop
    if not kinds <= {str, type(None)}:
        raise BadRequestError(f"input '{name}': BYTES 'data' must hold strings (or null) only")
    return values if type(None) not in kinds else np.asarray(data, dtype=object)


def _checked(name: str, values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    expected = shape[0] if len(shape) == 1 else math.prod(shape)
    if values.size != expected:
        raise BadRequestError(
            f"input '{name}': shape {list(shape)} needs {expected} values, got {values.size}"
        )
    return values


def _lone_rule(dtype: np.dtype[Any]) -> tuple[np.dtype[Any], tuple[type, ...], float, float]:
    """What a lone value of `dtype` may be on the fast path: its Python types (a float is
    never an integer) and a range inside which the cast neither overflows nor wraps
    (integer limits stay Python ints: as floats, int64's maximum would round up)."""
    if dtype.kind == "f":
        return dtype, (float, int), -3e38, 3e38
    limits = np.iinfo(dtype)
    return dtype, (int,), int(limits.min), int(limits.max)


_LONE = {datatype: _lone_rule(dtype) for datatype, dtype in NUMERIC.items()}
ONE = (1,)  # the shape of a lone value's tensor


def tensor_from_json(
    raw: Any, binary: memoryview | None, offset: int, nulls: bool = False
) -> tuple[Tensor, int]:
    """One input object of a REST request; `binary` is the tail after the JSON header, if any.

    `nulls`: a null in FP32/FP64 data is a missing value (NaN), for a typed version whose
    encoder imputes or refuses it by name; otherwise a null is refused here.
    """
    if not isinstance(raw, dict):
        raise BadRequestError(
            "each entry of 'inputs' must be an object with name, shape, datatype, data"
        )
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequestError("an input has no 'name'")
    shape = _shape(name, raw.get("shape"))
    datatype = raw.get("datatype")
    data = raw.get("data")
    # The commonest tensor of all (one feature of one row, ~100 a request): a lone string
    # (BYTES), or a lone number that fits its numeric type exactly, needs neither the
    # kind checks nor a guarded cast. Anything else (a bool, null, NaN, a float for an
    # integer type, a number out of range) takes the general path below.
    if type(data) is list and len(data) == 1:
        value = data[0]
        if datatype == BYTES and type(value) is str:
            return Tensor(name, BYTES, shape, _checked(name, np.array(data), shape)), offset
        rule = _LONE.get(datatype) if isinstance(datatype, str) else None
        if rule is not None and type(value) in rule[1] and rule[2] <= value <= rule[3]:
            values = _checked(name, np.array(data, rule[0]), shape)
            return Tensor(name, str(datatype), shape, values), offset
    if datatype in TYPED:
        if "data" not in raw:
            raise BadRequestError(f"input '{name}': send {datatype} values as JSON 'data'")
        values = _typed_values(name, datatype, raw["data"])
        return Tensor(name, datatype, shape, _checked(name, values, shape)), offset
    dtype = _numeric(name, datatype)
    if "data" in raw:
        try:
            values = np.asarray(raw["data"])
        except ValueError:
            raise BadRequestError(f"input '{name}': 'data' is ragged; send a flat list") from None
        # A string, null or boolean anywhere makes the array non-numeric: refuse, never coerce.
        if values.dtype.kind not in "iuf":
            with_nulls = _with_nulls(raw["data"], dtype) if nulls else None
            if with_nulls is None:
                raise BadRequestError(f"input '{name}': 'data' must hold numbers only")
            values = with_nulls
        if values.ndim != 1:
            values = values.reshape(-1)
        if dtype.kind in "iu" and values.size:
            _check_integers(name, str(datatype), values, dtype)
        if values.dtype != dtype:  # errstate only around a real cast: ~1 us to enter, and
            # a request of per-feature tensors has ~100 inputs
            with np.errstate(over="ignore"):  # an overflow becomes inf, refused below
                values = values.astype(dtype)
    elif type(size := _binary_size(raw)) is int and binary is not None:
        if size < 0 or offset + size > len(binary) or size % dtype.itemsize:
            raise BadRequestError(f"input '{name}': binary_data_size {size} does not fit the body")
        values = np.frombuffer(binary[offset : offset + size], dtype=dtype.newbyteorder("<"))
        offset += size
    else:
        raise BadRequestError(f"input '{name}' has no 'data'")
    return Tensor(name, raw["datatype"], shape, _checked(name, values, shape)), offset


def _check_integers(name: str, datatype: str, values: np.ndarray, dtype: np.dtype[Any]) -> None:
    """An integer tensor holds whole numbers its type can: a cast would truncate 1.5 to 1,
    or wrap 2**31 into a valid-looking -2**31, and the model would see another value."""
    if values.dtype.kind == "f" and not bool(np.all(np.isfinite(values) & (values % 1 == 0))):
        raise BadRequestError(f"input '{name}': {datatype} 'data' must hold whole numbers")
    limits = np.iinfo(dtype)
    low, high = values.min(), values.max()
    if low < limits.min or high > limits.max:
        raise BadRequestError(
            f"input '{name}': a value is outside {datatype}'s range [{limits.min}, {limits.max}]"
        )


def _binary_size(raw: dict[str, Any]) -> Any:
    params = raw.get("parameters") or {}
    return params.get("binary_data_size") if isinstance(params, dict) else None


def _with_nulls(data: Any, dtype: np.dtype[Any]) -> np.ndarray | None:
    """Numbers and nulls (missing: NaN) as floats; None when anything else is there."""
    if dtype.kind != "f" or not isinstance(data, list):
        return None
    if not all(v is None or type(v) in (int, float) for v in data):  # the rarer, null path
        return None
    return np.asarray(data, dtype=np.float64)


def column_tensors(columns: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """Per-feature v2 JSON tensors for raw typed columns (a missing value is null):
    bool -> BOOL, integers -> INT64, floats -> FP64, text (str or object) -> BYTES."""
    tensors = []
    for name, values in columns.items():
        kind = values.dtype.kind
        if kind == "b":
            datatype, data = BOOL, values.tolist()
        elif kind in "iu":
            datatype, data = "INT64", values.tolist()
        elif kind == "f":
            datatype = "FP64"
            data = [None if v != v else v for v in values.tolist()]  # NaN (missing): null
        else:
            datatype, data = BYTES, values.tolist()
        tensors.append({"name": name, "datatype": datatype, "shape": [len(values)], "data": data})
    return tensors


def _lone_values(inputs: list[Any]) -> list[tuple[str, str, np.ndarray] | None]:
    """Per input, `tensor_from_json`'s lone-value fast path in one loop: (name, datatype,
    values) for shape exactly [1] and one string (BYTES) or one number that fits its type;
    None for anything else, which the general decoder reads (and refuses by name).

    A typed window request has ~100 such inputs: one loop without a call per input costs
    half of what the calls and their checks did.
    """
    out: list[tuple[str, str, np.ndarray] | None] = []
    append = out.append
    for raw in inputs:
        if type(raw) is dict:
            name, shape, datatype, data = (
                raw.get("name"),
                raw.get("shape"),
                raw.get("datatype"),
                raw.get("data"),
            )
            if (
                type(name) is str
                and name
                and type(data) is list
                and len(data) == 1
                and type(shape) is list
                and len(shape) == 1
                and type(shape[0]) is int
                and shape[0] == 1
                and type(datatype) is str
            ):
                value = data[0]
                if datatype == BYTES and type(value) is str:
                    append((name, BYTES, np.array(data)))
                    continue
                rule = _LONE.get(datatype)
                if rule is not None and type(value) in rule[1] and rule[2] <= value <= rule[3]:
                    append((name, datatype, np.array(data, rule[0])))
                    continue
        append(None)
    return out


def _inputs(payload: Any) -> list[Any]:
    if not isinstance(payload, dict):
        raise BadRequestError("a v2 request is a JSON object with an 'inputs' list")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequestError("'inputs' must be a non-empty list of tensors")
    return inputs


def tensors_from_json(
    payload: Any, binary: memoryview | None = None, nulls: bool = False
) -> list[Tensor]:
    inputs = _inputs(payload)
    tensors: list[Tensor] = []
    offset = 0
    for raw, lone in zip(inputs, _lone_values(inputs), strict=True):
        if lone is not None:
            tensors.append(Tensor(lone[0], lone[1], ONE, lone[2]))
        else:
            tensor, offset = tensor_from_json(raw, binary, offset, nulls)
            tensors.append(tensor)
    return tensors


def lone_columns(
    payload: Any, features: Sequence[str], max_rows: int
) -> dict[str, np.ndarray] | None:
    """`feature_columns(tensors_from_json(payload), ...)` for the commonest typed request:
    one row, one lone-value tensor per feature (a window spec: ~100), without building
    the tensors. None when the request is anything else (or wrong): the two steps then
    read it, and refuse it by name. The columns come in the request's order."""
    if not isinstance(payload, dict) or max_rows < 1:
        return None
    inputs = payload.get("inputs")
    if type(inputs) is not list or len(inputs) != len(features):
        return None
    columns = {one[0]: one[2] for one in _lone_values(inputs) if one is not None}
    if len(columns) != len(inputs) or not all(f in columns for f in features):
        return None  # an input that is not a lone value, a name twice, or not a feature
    return columns


def requested_outputs(payload: Mapping[str, Any], known: Sequence[str]) -> list[str]:
    raw = payload.get("outputs")
    if raw is None:
        return list(known)
    if not isinstance(raw, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in raw
    ):
        raise BadRequestError("'outputs' must be a list of objects with a 'name'")
    names = [o["name"] for o in raw]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BadRequestError(
            f"unknown output(s) {', '.join(unknown)}; this model has {', '.join(known)}"
        )
    return names or list(known)


def features_matrix(tensors: list[Tensor], features: Sequence[str], max_rows: int) -> np.ndarray:
    """`[N, F]` float32 in spec order from either layout; refuses anything ambiguous."""
    n_features = len(features)
    if len(tensors) == 1 and len(tensors[0].shape) == 2:
        tensor = tensors[0]
        rows, cols = tensor.shape
        if tensor.values.dtype.kind not in "iuf":
            raise _not_numeric(tensor)
        if cols != n_features:
            raise BadRequestError(
                f"input '{tensor.name}': shape {list(tensor.shape)} needs {n_features} columns "
                f"(one per feature, in spec order), got {cols}"
            )
        x = tensor.values.reshape(rows, cols)
    else:
        by_name = {t.name: t for t in tensors}
        if len(by_name) != len(tensors):
            raise BadRequestError("input names must be unique")
        _name_check(by_name, features)
        rows = tensors[0].values.size
        for t in tensors:
            if t.values.dtype.kind not in "iuf":
                raise _not_numeric(t)
            if len(t.shape) > 2 or (len(t.shape) == 2 and t.shape[1] != 1) or t.values.size != rows:
                raise BadRequestError(
                    f"input '{t.name}': per-feature tensors must all have shape [N] (or [N, 1]) "
                    f"with the same N; got {list(t.shape)}"
                )
        x = np.stack([by_name[f].values for f in features], axis=1)
    if x.shape[0] == 0:
        raise BadRequestError("the request has no rows")
    if x.shape[0] > max_rows:
        raise BadRequestError(f"the request has {x.shape[0]} rows; the limit is {max_rows}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        matrix = tensors[0].name if len(tensors) == 1 and len(tensors[0].shape) == 2 else None
        raise InvalidFieldsError(non_finite_problems(x, features, matrix))
    return x


def _not_numeric(tensor: Tensor) -> BadRequestError:
    return BadRequestError(
        f"input '{tensor.name}': datatype {tensor.datatype} is not supported by this model, "
        "whose features are all numbers; send FP32"
    )


def _name_check(by_name: Mapping[str, Tensor], features: Sequence[str]) -> None:
    missing = [f for f in features if f not in by_name]
    if not missing and len(by_name) == len(features):
        return  # every feature, and as many names: none unknown (the common request)
    known = set(features)
    unknown = [n for n in by_name if n not in known]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing input(s): {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown input(s): {', '.join(unknown)}")
        raise BadRequestError(
            "send one [N, F] tensor or one [N] tensor per feature; " + "; ".join(parts)
        )


def feature_columns(
    tensors: list[Tensor], features: Sequence[str], max_rows: int
) -> dict[str, np.ndarray]:
    """Raw values by feature name, for a typed spec's encoder (which checks each value).

    Either layout: one tensor per feature (BYTES for categorical and datetime values,
    numbers or BOOL for the others), or one `[N, F]` tensor in spec order (all one type).
    """
    if len(tensors) == 1 and len(tensors[0].shape) == 2:
        tensor = tensors[0]
        rows, cols = tensor.shape
        if cols != len(features):
            raise BadRequestError(
                f"input '{tensor.name}': shape {list(tensor.shape)} needs {len(features)} "
                f"columns (one per feature, in spec order), got {cols}"
            )
        matrix = tensor.values.reshape(rows, cols)
        columns = {name: matrix[:, i] for i, name in enumerate(features)}
    else:
        by_name = {t.name: t for t in tensors}
        if len(by_name) != len(tensors):
            raise BadRequestError("input names must be unique")
        _name_check(by_name, features)
        rows = tensors[0].values.size
        flat = (rows,)  # every decoder checks that a tensor holds as many values as its shape
        for t in tensors:
            if t.shape == flat:
                continue  # the common case, without the general test below (~100 inputs)
            if len(t.shape) > 2 or (len(t.shape) == 2 and t.shape[1] != 1) or t.values.size != rows:
                raise BadRequestError(
                    f"input '{t.name}': per-feature tensors must all have shape [N] (or [N, 1]) "
                    f"with the same N; got {list(t.shape)}"
                )
        columns = {name: by_name[name].values for name in features}
    if rows == 0:
        raise BadRequestError("the request has no rows")
    if rows > max_rows:
        raise BadRequestError(f"the request has {rows} rows; the limit is {max_rows}")
    return columns


def non_finite_problems(
    x: np.ndarray, features: Sequence[str], matrix_input: str | None
) -> list[FieldProblem]:
    """Each NaN or infinite cell, named by its feature (the failure path only).

    `matrix_input`: the name of the one `[N, F]` tensor, said too, since its name is not
    the feature's. The instance is given when the request has more than one row.
    """
    rows, cols = np.nonzero(~np.isfinite(x))
    where = f" (input '{matrix_input}')" if matrix_input is not None else ""
    batch = len(x) > 1
    problems = []
    for row, col in zip(
        rows[:MAX_NAMED_CELLS].tolist(), cols[:MAX_NAMED_CELLS].tolist(), strict=True
    ):
        value = float(x[row, col])
        what = (
            "NaN is not a number"
            if value != value
            else f"{value} is not finite (infinite, or beyond the FP32 range)"
        )
        problems.append(FieldProblem(features[col], what + where, row if batch else None))
    return problems


def output_json(name: str, values: np.ndarray) -> dict[str, Any]:
    array = np.ascontiguousarray(values)
    return {
        "name": name,
        "datatype": V2_DATATYPE[array.dtype],
        "shape": list(array.shape),
        "data": array.reshape(-1),
    }
