"""v2 tensor decoding: both layouts, and every malformed tensor refused with a 400."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from castml.protocol.v2_tensors import (
    features_matrix,
    output_json,
    requested_outputs,
    tensor_from_json,
    tensors_from_json,
)
from castml.spec import ProjectSpec
from serving.errors import BadRequestError


def matrix_request(x: np.ndarray, datatype: str = "FP32") -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "features",
                "datatype": datatype,
                "shape": list(x.shape),
                "data": x.reshape(-1).tolist(),
            }
        ]
    }


def per_feature_request(spec: ProjectSpec, x: np.ndarray) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": n, "datatype": "FP32", "shape": [len(x)], "data": x[:, j].tolist()}
            for j, n in enumerate(spec.feature_names)
        ]
    }


def decode(spec: ProjectSpec, payload: Any, binary: memoryview | None = None) -> np.ndarray:
    return features_matrix(tensors_from_json(payload, binary), spec.feature_names, 64)


def test_both_layouts_give_the_same_matrix(spec: ProjectSpec) -> None:
    x = np.random.default_rng(0).random((3, 30), dtype=np.float32) * 10
    a = decode(spec, matrix_request(x))
    b = decode(spec, per_feature_request(spec, x))
    assert a.dtype == np.float32 and a.shape == (3, 30)
    np.testing.assert_array_equal(a, x)
    np.testing.assert_array_equal(b, x)


def test_per_feature_order_does_not_matter(spec: ProjectSpec) -> None:
    x = np.arange(60, dtype=np.float32).reshape(2, 30)
    payload = per_feature_request(spec, x)
    payload["inputs"].reverse()
    np.testing.assert_array_equal(decode(spec, payload), x)


def test_binary_extension(spec: ProjectSpec) -> None:
    x = np.arange(30, dtype=np.float32).reshape(1, 30)
    raw = x.astype("<f4").tobytes()
    payload = {
        "inputs": [
            {
                "name": "x",
                "datatype": "FP32",
                "shape": [1, 30],
                "parameters": {"binary_data_size": len(raw)},
            }
        ]
    }
    np.testing.assert_array_equal(decode(spec, payload, memoryview(raw)), x)


BAD: list[tuple[str, Any, str]] = [
    ("not an object", [1, 2], "JSON object"),
    ("no inputs", {"inputs": []}, "non-empty"),
    ("input not an object", {"inputs": [3]}, "each entry"),
    (
        "no name",
        {"inputs": [{"shape": [1, 30], "datatype": "FP32", "data": [0] * 30}]},
        "no 'name'",
    ),
    (
        "bytes datatype",
        {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "BYTES", "data": ["a"] * 30}]},
        "not supported",
    ),
    (
        "bad shape",
        {"inputs": [{"name": "x", "shape": "1,30", "datatype": "FP32", "data": [0] * 30}]},
        "'shape'",
    ),
    (
        "negative dim",
        {"inputs": [{"name": "x", "shape": [-1, 30], "datatype": "FP32", "data": [0] * 30}]},
        "'shape'",
    ),
    (
        "length mismatch",
        {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP32", "data": [0] * 29}]},
        "needs 30 values",
    ),
    (
        "string in data",
        {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP32", "data": [0] * 29 + ["1"]}]},
        "numbers only",
    ),
    (
        "null in data",
        {
            "inputs": [
                {"name": "x", "shape": [1, 30], "datatype": "FP32", "data": [0] * 29 + [None]}
            ]
        },
        "numbers only",
    ),
    (
        "bool data",
        {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP32", "data": [True] * 30}]},
        "numbers only",
    ),
    (
        "ragged",
        {
            "inputs": [
                {"name": "x", "shape": [2, 30], "datatype": "FP32", "data": [[0] * 30, [0] * 29]}
            ]
        },
        "ragged",
    ),
    (
        "wrong width",
        {"inputs": [{"name": "x", "shape": [1, 29], "datatype": "FP32", "data": [0] * 29}]},
        "30 columns",
    ),
    ("no data", {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP32"}]}, "no 'data'"),
    (
        "zero rows",
        {"inputs": [{"name": "x", "shape": [0, 30], "datatype": "FP32", "data": []}]},
        "no rows",
    ),
    (
        "too many rows",
        {"inputs": [{"name": "x", "shape": [65, 30], "datatype": "FP32", "data": [0] * 65 * 30}]},
        "limit",
    ),
    (
        "huge float is inf",
        {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP32", "data": [1e39] * 30}]},
        "finite",
    ),
    (
        "unknown per-feature",
        {"inputs": [{"name": "nope", "shape": [1], "datatype": "FP32", "data": [0]}]},
        "unknown input",
    ),
]


@pytest.mark.parametrize(("case", "payload", "message"), BAD, ids=[c[0] for c in BAD])
def test_malformed_tensors_are_400(
    spec: ProjectSpec, case: str, payload: Any, message: str
) -> None:
    with pytest.raises(BadRequestError, match=message) as info:
        decode(spec, payload)
    assert info.value.status_code == 400


def test_per_feature_length_mismatch(spec: ProjectSpec) -> None:
    payload = per_feature_request(spec, np.zeros((2, 30), np.float32))
    payload["inputs"][5]["data"] = [1.0]
    payload["inputs"][5]["shape"] = [1]
    with pytest.raises(BadRequestError, match="same N"):
        decode(spec, payload)


def test_requested_outputs() -> None:
    known = ["probability", "label", "latent"]
    assert requested_outputs({}, known) == known
    assert requested_outputs({"outputs": [{"name": "label"}]}, known) == ["label"]
    with pytest.raises(BadRequestError, match="unknown output"):
        requested_outputs({"outputs": [{"name": "nope"}]}, known)


def test_output_json_is_flat_with_shape() -> None:
    out = output_json("latent", np.ones((2, 12), np.float32))
    assert out["datatype"] == "FP32" and out["shape"] == [2, 12] and out["data"].shape == (24,)
    assert output_json("label", np.ones(2, np.int64))["datatype"] == "INT64"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=40,
)
tensor_like = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["x", "features", "Process_Pressure", ""]) | json_values,
        "datatype": st.sampled_from(["FP32", "FP64", "INT64", "BYTES", "BOOL", "fp32"])
        | json_values,
        "shape": st.lists(st.integers(-2, 40), max_size=3) | json_values,
        "data": st.lists(st.floats(allow_nan=False, width=32) | st.integers(-5, 5), max_size=70)
        | json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(
    payload=st.one_of(
        json_values, st.fixed_dictionaries({"inputs": st.lists(tensor_like, max_size=3)})
    )
)
def test_fuzzed_payloads_decode_or_raise_a_typed_400(spec: ProjectSpec, payload: Any) -> None:
    try:
        x = decode(spec, payload)
    except BadRequestError:
        return
    assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == 30 and np.isfinite(x).all()


def test_non_finite_values_are_named_by_feature(spec: ProjectSpec) -> None:
    """NaN/Infinity (read from the JSON tokens) are 400s naming the feature, per layout."""
    from castml.web.errors import InvalidFieldsError

    names = spec.feature_names
    rows = np.zeros((2, 30))
    rows[1, 3] = np.nan
    rows[0, 7] = np.inf
    matrix = {"inputs": [{"name": "x", "shape": [2, 30], "datatype": "FP64", "data": rows}]}
    with pytest.raises(InvalidFieldsError) as info:
        decode(spec, matrix)
    found = [p.as_dict() for p in info.value.problems]
    assert [(p["field"], p["instance"]) for p in found] == [(names[7], 0), (names[3], 1)]
    assert "input 'x'" in found[0]["problem"] and "NaN" in found[1]["problem"]
    assert info.value.status_code == 400 and names[3] in str(info.value)
    per_feature = {
        "inputs": [
            {"name": n, "shape": [1], "datatype": "FP32", "data": [np.nan if j == 5 else 0.0]}
            for j, n in enumerate(names)
        ]
    }
    with pytest.raises(InvalidFieldsError) as info:
        decode(spec, per_feature)
    assert [p.as_dict() for p in info.value.problems] == [
        {"field": names[5], "problem": "NaN is not a number"}
    ]


@pytest.mark.parametrize(
    ("datatype", "value", "expected"),
    [("FP32", 0.5, np.float32(0.5)), ("FP64", 7, np.float64(7.0)), ("FP32", -3, np.float32(-3))],
)
def test_a_lone_number_decodes_to_its_datatype(datatype: str, value: Any, expected: Any) -> None:
    """The one-value fast path (a per-feature tensor of one row) keeps the declared type."""
    tensor, _ = tensor_from_json(
        {"name": "x", "shape": [1], "datatype": datatype, "data": [value]}, None, 0
    )
    assert tensor.values.dtype == expected.dtype and tensor.values.tolist() == [expected]


@pytest.mark.parametrize("value", [True, None, "1.0"])
def test_a_lone_value_that_is_no_plain_number_is_still_refused(value: Any) -> None:
    with pytest.raises(BadRequestError, match="input 'x'"):
        tensor_from_json({"name": "x", "shape": [1], "datatype": "FP32", "data": [value]}, None, 0)


def test_a_lone_overflow_or_nan_still_reaches_the_finite_check() -> None:
    """Past FP32's range (inf) and NaN take the general path, refused later by name."""
    for value, expected in ((1e39, np.inf), (float("nan"), np.nan)):
        tensor, _ = tensor_from_json(
            {"name": "x", "shape": [1], "datatype": "FP32", "data": [value]}, None, 0
        )
        np.testing.assert_array_equal(tensor.values, np.array([expected], np.float32))


@pytest.mark.parametrize(
    ("datatype", "data", "words"),
    [
        ("INT32", [2**31], "outside INT32's range"),
        ("INT64", [2**63], "outside INT64's range"),
        ("UINT8", [3, -1], "outside UINT8's range"),
        ("INT64", [1.5], "whole numbers"),
    ],
)
def test_an_integer_that_a_cast_would_wrap_or_truncate_is_refused(
    datatype: str, data: list[Any], words: str
) -> None:
    """Cast silently, 2**31 would reach the model as -2**31 and 1.5 as 1."""
    with pytest.raises(BadRequestError, match=words):
        tensor_from_json(
            {"name": "x", "shape": [len(data)], "datatype": datatype, "data": data}, None, 0
        )


@pytest.mark.parametrize(
    ("datatype", "value"), [("INT64", 2**63 - 1), ("INT32", -(2**31)), ("BYTES", "slot 3")]
)
def test_a_lone_value_at_its_types_edge_decodes_exactly(datatype: str, value: Any) -> None:
    tensor, _ = tensor_from_json(
        {"name": "x", "shape": [1], "datatype": datatype, "data": [value]}, None, 0
    )
    assert tensor.values.tolist() == [value] and tensor.datatype == datatype
