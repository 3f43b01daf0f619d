"""Hypothesis strategies for the serving endpoints: transformer, explainer, predictor (+ load).

Valid requests come from the project spec (feature names and physical bounds), so a
valid one really is answered 200; mutations of them and random JSON probe the
validation. Every strategy yields a `FuzzRequest`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from castml.protocol.v2_tensors import BINARY_HEADER
from castml.spec import load_spec
from tests.support.fuzz_json import (
    HUGE_INTS,
    NASTY_STRINGS,
    TOKEN_CHARS,
    content_type,
    encode,
    extra_headers,
    hostile_scalars,
    hostile_values,
)
from tests.support.fuzz_request import FuzzRequest, body_of_kind

SPEC = load_spec("diecast")
PROJECT = SPEC.name
FEATURES = SPEC.feature_names
BOUNDS = [(float(f.bounds[0]), float(f.bounds[1])) for f in SPEC.features]
MAX_ROWS = 4096  # CASTML_MAX_BATCH_ROWS: one more is refused
EXPLAIN_MAX_INSTANCES = 16  # serving.explainer.MAX_INSTANCES
OTHER_MODELS = ("nosuch", "DIECAST", "diecast ", "diecast-kb", "dié", "%2e%2e", "x" * 300)
VERSIONS = ("1", "2", "champion", "challenger", "999", "0", "-1", "01", "1.0")


LOW = np.array([b[0] for b in BOUNDS])
HIGH = np.array([b[1] for b in BOUNDS])


def _row_from_seed(seed: int) -> list[float]:
    """A row inside the bounds; some values exactly on a bound (inclusive edges)."""
    rng = np.random.default_rng(seed)
    row = rng.uniform(LOW, HIGH)
    edge = rng.random(len(row))
    row = np.where(edge < 0.05, LOW, np.where(edge > 0.95, HIGH, row))
    return [float(v) for v in row]


def valid_row() -> st.SearchStrategy[list[float]]:
    # One draw per row, not one per feature: 10,000 examples must stay cheap to generate.
    return st.integers(0, 2**32 - 1).map(_row_from_seed)


def valid_record() -> st.SearchStrategy[dict[str, Any] | list[float]]:
    """An object keyed by feature name (mostly), or a list in spec order."""
    named = valid_row().map(lambda row: dict(zip(FEATURES, row, strict=True)))
    return st.one_of(named, named, named, valid_row())


@st.composite
def mutated_record(draw: st.DrawFn) -> Any:
    record: dict[str, Any] = dict(zip(FEATURES, draw(valid_row()), strict=True))
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(FEATURES))
        how = draw(st.sampled_from(["drop", "rename", "extra", "value", "value", "bounds"]))
        if how == "drop":
            record.pop(name, None)
        elif how == "rename" and name in record:
            new = draw(st.sampled_from([name.lower(), name + "_", " " + name, name[:-1] + "é"]))
            record[new] = record.pop(name)
        elif how == "extra":
            record[draw(st.text(max_size=12))] = draw(hostile_scalars())
        elif how == "value":
            record[name] = draw(hostile_values())
        else:  # just outside the physical bounds
            low, high = BOUNDS[FEATURES.index(name)]
            record[name] = draw(st.sampled_from([low - 1e-3, high + 1e-3, -high, high * 1e6]))
    roll = draw(st.integers(0, 9))
    if roll == 0:
        return list(record.values())  # a list record, likely of the wrong length or types
    if roll == 1:
        return draw(hostile_scalars())  # not a record at all
    return record


# --- named JSON: the transformer's :predict and the explainer's :explain -----------------


@st.composite
def records_payload(draw: st.DrawFn, max_valid: int) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"features": draw(valid_record())}
    return {"instances": draw(st.lists(valid_record(), min_size=1, max_size=max_valid))}


@st.composite
def mutated_records_payload(draw: st.DrawFn, max_rows: int) -> Any:
    record = st.one_of(valid_record(), mutated_record())
    roll = draw(st.integers(0, 11))
    if roll < 3:
        return {"features": draw(mutated_record())}
    if roll < 6:
        return {"instances": draw(st.lists(record, min_size=1, max_size=4))}
    if roll == 6:  # both, or neither
        body = draw(records_payload(2))
        return {"features": draw(valid_record()), **body} if draw(st.booleans()) else {}
    if roll == 7:
        return {"features": draw(hostile_values())}
    if roll == 8:
        return {"instances": draw(st.one_of(hostile_values(), st.just([])))}
    if roll == 9:  # one row over the limit
        row = draw(valid_row())
        return {"instances": [row] * (max_rows + 1)}
    if roll == 10:
        key = draw(st.sampled_from(["Features", "instance", "inputs", "data", ""]))
        return {key: draw(valid_record())}
    return draw(st.lists(valid_record(), min_size=1, max_size=2))  # a bare list of records


def with_headers(
    target: str, path: str, kind_body: tuple[str, bytes], headers: dict[str, bytes]
) -> FuzzRequest:
    kind, body = kind_body
    return FuzzRequest(target, path, body, headers, kind)


@st.composite
def serving_headers(draw: st.DrawFn) -> dict[str, bytes]:
    headers = draw(extra_headers())
    media = draw(content_type())
    if media is not None:
        headers["content-type"] = media.encode()
    return headers


@st.composite
def model_path(draw: st.DrawFn, template: str) -> str:
    # 7, not 0: hypothesis draws the ends of a range far more often than the middle
    model = PROJECT if draw(st.integers(0, 19)) != 7 else draw(st.sampled_from(OTHER_MODELS))
    return template.format(model=model)


@st.composite
def transformer_predict(draw: st.DrawFn) -> FuzzRequest:
    """`POST /v1/models/<project>:predict` with `{"features"}` or `{"instances"}`."""
    body = draw(body_of_kind(records_payload(4), mutated_records_payload(MAX_ROWS)))
    path = draw(model_path("/v1/models/{model}:predict"))
    return with_headers("transformer", path, body, draw(serving_headers()))


# --- v2 tensors: the predictor, the transformer's v2 infer, the explainer's v2 explain ----


@st.composite
def valid_v2(draw: st.DrawFn, max_rows: int = 4) -> dict[str, Any]:
    rows = draw(st.lists(valid_row(), min_size=1, max_size=max_rows))
    n = len(rows)
    if draw(st.booleans()):
        flat = [v for row in rows for v in row]
        tensor = {
            "name": draw(st.sampled_from(["features", "input-0", "x"])),
            "shape": [n, len(FEATURES)],
            "datatype": draw(st.sampled_from(["FP32", "FP32", "FP64"])),
            "data": rows if draw(st.booleans()) else flat,
        }
        inputs = [tensor]
    else:
        column_shape = draw(st.sampled_from([[n], [n, 1]]))
        inputs = [
            {
                "name": name,
                "shape": column_shape,
                "datatype": "FP32",
                "data": [row[i] for row in rows],
            }
            for i, name in enumerate(FEATURES)
        ]
    payload: dict[str, Any] = {"inputs": inputs}
    if draw(st.booleans()):
        payload["id"] = draw(st.text(TOKEN_CHARS, min_size=1, max_size=20))
    return payload


HOSTILE_SHAPES: tuple[Any, ...] = (
    [],
    [-1, 30],
    [0, 30],
    [30],
    [1, 30, 1],
    [1, 29],
    [2**63, 30],
    [10**12, 30],
    [10**400, 30],
    ["1", 30],
    [1.0, 30],
    [True, 30],
    [None, 30],
    [[1], [30]],
    None,
    "1,30",
    {"0": 1},
    3,
)
HOSTILE_DATATYPES: tuple[Any, ...] = (
    "BYTES",
    "BOOL",
    "fp32",
    "FP32 ",
    "FP8",
    "INT8",
    "UINT64",
    "",
    None,
    5,
    [],
)


@st.composite
def mutated_v2(draw: st.DrawFn) -> Any:
    payload = draw(valid_v2(2))
    inputs: list[dict[str, Any]] = payload["inputs"]
    for _ in range(draw(st.integers(1, 2))):
        roll = draw(st.integers(0, 13))
        tensor = inputs[draw(st.integers(0, len(inputs) - 1))] if inputs else {}
        if roll == 0:
            tensor["name"] = draw(hostile_values())
        elif roll == 1:
            tensor["shape"] = draw(st.sampled_from(HOSTILE_SHAPES))
        elif roll == 2:
            tensor["datatype"] = draw(st.sampled_from(HOSTILE_DATATYPES))
        elif roll == 3:
            tensor["data"] = draw(hostile_values())
        elif roll == 4 and tensor.get("data"):  # one element of the data
            data = tensor["data"]
            target = data[0] if isinstance(data[0], list) else data
            target[draw(st.integers(0, len(target) - 1))] = draw(hostile_values())
        elif roll == 5:
            tensor.pop(draw(st.sampled_from(["name", "shape", "datatype", "data"])), None)
        elif roll == 6:
            tensor["parameters"] = draw(
                st.one_of(
                    hostile_values(),
                    st.fixed_dictionaries({"binary_data_size": hostile_scalars()}),
                )
            )
        elif roll == 7:
            payload["inputs"] = draw(st.one_of(hostile_values(), st.just([])))
        elif roll == 8 and inputs:
            inputs.append(dict(inputs[0]))  # a duplicate name
        elif roll == 9 and len(inputs) > 1:
            inputs.pop(draw(st.integers(0, len(inputs) - 1)))  # a missing feature
        elif roll == 10:
            payload["outputs"] = draw(
                st.one_of(
                    hostile_values(),
                    st.lists(st.fixed_dictionaries({"name": hostile_scalars()}), max_size=3),
                    st.just([{"name": "nosuch"}]),
                    st.just([{"name": "probability"}, {"name": "label"}]),
                )
            )
        elif roll == 11:
            payload["id"] = draw(hostile_values())
        elif roll == 12:
            payload["parameters"] = draw(hostile_values())
        else:
            payload.pop("inputs", None)
            payload.update(draw(records_payload(2)))  # the named-JSON shape sent to v2
    return payload


@st.composite
def transformer_infer(draw: st.DrawFn) -> FuzzRequest:
    """`POST /v2/models/<project>/infer` on the transformer (named v2 inputs, validated)."""
    body = draw(body_of_kind(valid_v2(), mutated_v2()))
    template = draw(
        st.sampled_from(
            ["/v2/models/{model}/infer"] * 4
            + [f"/v2/models/{{model}}/versions/{v}/infer" for v in ("1", "999")]
        )
    )
    path = draw(model_path(template))
    return with_headers("transformer", path, body, draw(serving_headers()))


# --- the explainer ---------------------------------------------------------------------

EXPLAIN_OPTIONS = {
    "method": st.sampled_from(["shap", "shap", "anchors"]),
    "top_k": st.integers(1, len(FEATURES)),
    "permutations": st.sampled_from([2, 4]),
    "chart": st.sampled_from([False, False, True]),
    "threshold": st.floats(0.5, 1.0),
}


@st.composite
def explain_options(draw: st.DrawFn, hostile: bool) -> dict[str, Any]:
    keys = draw(st.sets(st.sampled_from(sorted(EXPLAIN_OPTIONS)), max_size=3))
    # A valid request that renders a chart or runs anchors costs a lot; cheap by default.
    options: dict[str, Any] = {"chart": False, "permutations": 2}
    for key in keys:
        options[key] = draw(EXPLAIN_OPTIONS[key])
    if hostile:
        options[draw(st.sampled_from([*EXPLAIN_OPTIONS, "extra"]))] = draw(hostile_values())
    return options


@st.composite
def explain_valid(draw: st.DrawFn) -> dict[str, Any]:
    return {**draw(records_payload(2)), **draw(explain_options(False))}


@st.composite
def explain_mutated(draw: st.DrawFn) -> Any:
    if draw(st.booleans()):
        return {**draw(records_payload(2)), **draw(explain_options(True))}
    body = draw(mutated_records_payload(EXPLAIN_MAX_INSTANCES))
    if isinstance(body, dict):
        body.update(draw(explain_options(False)))
    return body


@st.composite
def explain_v2_valid(draw: st.DrawFn) -> dict[str, Any]:
    return {**draw(valid_v2(2)), "parameters": draw(explain_options(False))}


@st.composite
def explain_v2_mutated(draw: st.DrawFn) -> Any:
    body = draw(mutated_v2())
    if isinstance(body, dict) and "parameters" not in body:
        body["parameters"] = draw(explain_options(draw(st.booleans())))
    return body


@st.composite
def explainer_explain(draw: st.DrawFn) -> FuzzRequest:
    """`POST /v1/models/<project>:explain` (mostly) and `/v2/models/<project>/explain`."""
    if draw(st.integers(0, 4)):
        body = draw(body_of_kind(explain_valid(), explain_mutated()))
        path = draw(model_path("/v1/models/{model}:explain"))
    else:
        body = draw(body_of_kind(explain_v2_valid(), explain_v2_mutated()))
        path = draw(model_path("/v2/models/{model}/explain"))
    return with_headers("explainer", path, body, draw(serving_headers()))


# --- the predictor: v2 infer (JSON and the binary tensor extension), and the load API ----

LITTLE_ENDIAN = {"FP32": "<f4", "FP64": "<f8", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2"}
BAD_LENGTHS = ("abc", "-1", "", " 12", "1.5", "99999999999999999999", "²", "1²", "١٢", "0x10")


def _binary_tensor(tensor: dict[str, Any]) -> bytes | None:
    """Move `data` into the binary tail; None if it is not numbers of a known type."""
    dtype = LITTLE_ENDIAN.get(tensor.get("datatype"))  # type: ignore[arg-type]
    if "data" not in tensor:
        return None
    try:
        values = np.asarray(tensor.get("data"), dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    if dtype is None:
        return None
    with np.errstate(all="ignore"):
        raw = values.astype(dtype).tobytes()
    del tensor["data"]
    tensor["parameters"] = {"binary_data_size": len(raw)}
    return raw


@st.composite
def binary_body(draw: st.DrawFn) -> tuple[str, bytes, dict[str, bytes]]:
    """The binary tensor extension: a JSON header, then raw little-endian tensor bytes."""
    valid = draw(st.booleans())
    payload = draw(valid_v2()) if valid else draw(mutated_v2())
    tail = b""
    if isinstance(payload, dict) and isinstance(payload.get("inputs"), list):
        for tensor in payload["inputs"]:
            if isinstance(tensor, dict) and draw(st.booleans()):
                tail += _binary_tensor(tensor) or b""
    header = encode(payload)
    headers = {BINARY_HEADER: str(len(header)).encode()}
    roll = draw(st.integers(0, 9))
    if roll == 0:
        headers[BINARY_HEADER] = draw(st.sampled_from(BAD_LENGTHS)).encode()
        valid = False
    elif roll == 1:
        headers[BINARY_HEADER] = str(len(header) + draw(st.integers(-5, 64))).encode()
        valid = False
    elif roll == 2 and tail:
        tail = tail[: draw(st.integers(0, len(tail) - 1))]  # short of what binary_data_size says
        valid = False
    elif roll == 3:
        tail += draw(st.binary(min_size=1, max_size=16))
    media = "application/octet-stream" if draw(st.integers(0, 3)) else draw(content_type())
    if media is not None:
        headers["content-type"] = media.encode()
    return ("valid" if valid else "mutated"), header + tail, headers


@st.composite
def predictor_infer(draw: st.DrawFn) -> FuzzRequest:
    """`POST /v2/models/<project>/infer`: v2 JSON, or the binary tensor extension."""
    template = draw(
        st.sampled_from(
            ["/v2/models/{model}/infer"] * 6
            + [f"/v2/models/{{model}}/versions/{v}/infer" for v in VERSIONS[:3]]
        )
    )
    path = draw(model_path(template))
    if draw(st.integers(0, 2)):
        body = draw(body_of_kind(valid_v2(), mutated_v2()))
        return with_headers("predictor", path, body, draw(serving_headers()))
    kind, raw, headers = draw(binary_body())
    return FuzzRequest("predictor", path, raw, {**draw(extra_headers()), **headers}, kind)


def version_values() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(VERSIONS),
        st.sampled_from([1, 2, 999, 0, -1, 1.0, 1.5]),
        st.sampled_from(HUGE_INTS),
        st.sampled_from(NASTY_STRINGS),
        st.text(max_size=20),
        hostile_values(),
    )


@st.composite
def load_valid(draw: st.DrawFn) -> Any:
    version = draw(st.sampled_from(["1", "2", "champion", "challenger", 1, 2]))
    if draw(st.booleans()):
        return {"parameters": {"version": version}}
    return {"version": version}


@st.composite
def load_mutated(draw: st.DrawFn) -> Any:
    version = draw(version_values())
    roll = draw(st.integers(0, 4))
    if roll == 0:
        return {"parameters": {"version": version}}
    if roll == 1:
        return {"version": version}
    if roll == 2:
        return {"parameters": version}
    if roll == 3:
        return {"parameters": {"version": draw(version_values())}, "version": version}
    return {"parameters": {draw(st.text(max_size=10)): version}}


@st.composite
def predictor_load(draw: st.DrawFn) -> FuzzRequest:
    """`POST /v2/repository/models/<project>/load` (the model repository extension)."""
    if draw(st.integers(0, 9)) == 0:
        kind_body = ("valid", b"")  # no body: the server's default version
    else:
        kind_body = draw(body_of_kind(load_valid(), load_mutated()))
    path = draw(model_path("/v2/repository/models/{model}/load"))
    return with_headers("predictor", path, kind_body, draw(serving_headers()))
