"""Typed v2 tensors (BYTES, BOOL, nulls) and the typed record validator, on real arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from castml.protocol.v2_tensors import column_tensors, feature_columns, tensors_from_json
from castml.spec import ProjectSpec
from castml.web.errors import BadRequestError
from serving.errors import InvalidFeaturesError
from serving.validation import TypedValidator, is_typed

FEATURES = ["city", "rooms", "warm"]


def typed_spec() -> ProjectSpec:
    return ProjectSpec.model_validate(
        {
            "name": "flats",
            "task": "regression",
            "target": "rent",
            "source": {"kind": "csv", "path": "flats.csv"},
            "features": [
                {"name": "city", "dtype": "categorical", "missing": "impute"},
                {"name": "rooms", "dtype": "int", "bounds": [0, 20]},
                {"name": "warm", "dtype": "bool"},
            ],
            "model": {"family": "gbm", "params": {"gbm": {}}},
        }
    )


def tensor(name: str, datatype: str, data: list[Any]) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": [len(data)], "data": data}


def test_bytes_bool_and_numbers_become_columns_by_feature() -> None:
    payload = {
        "inputs": [
            tensor("warm", "BOOL", [True, False]),
            tensor("city", "BYTES", ["Seoul", None]),
            tensor("rooms", "INT64", [2, 3]),
        ]
    }
    columns = feature_columns(tensors_from_json(payload), FEATURES, 64)
    assert list(columns) == FEATURES  # spec order, whatever the request's
    assert columns["city"].tolist() == ["Seoul", None]
    assert columns["rooms"].dtype.kind == "i" and columns["warm"].dtype == bool


@pytest.mark.parametrize(
    ("payload", "said"),
    [
        ({"inputs": [tensor("city", "BYTES", ["a", 1])]}, r"strings \(or null\) only"),
        ({"inputs": [tensor("warm", "BOOL", [1])]}, "true/false only"),
        ({"inputs": [tensor("rooms", "FP64", [1.0, None])]}, "numbers only"),
    ],
    ids=["number-in-bytes", "number-in-bool", "null-refused-without-nulls"],
)
def test_malformed_typed_tensors_are_400(payload: Any, said: str) -> None:
    with pytest.raises(BadRequestError, match=said):
        tensors_from_json(payload)


def test_a_null_number_is_nan_only_where_allowed() -> None:
    [decoded] = tensors_from_json({"inputs": [tensor("rooms", "FP64", [1.0, None])]}, nulls=True)
    assert np.isnan(decoded.values[1]) and decoded.values[0] == 1.0
    with pytest.raises(BadRequestError, match="numbers only"):
        tensors_from_json({"inputs": [tensor("rooms", "FP64", ["1", None])]}, nulls=True)


def test_column_tensors_round_trip_through_the_decoder() -> None:
    columns = {
        "city": np.asarray(["Seoul", None], dtype=object),
        "rooms": np.asarray([2.0, np.nan]),
        "warm": np.asarray([True, False]),
    }
    sent = column_tensors(columns)
    assert [t["datatype"] for t in sent] == ["BYTES", "FP64", "BOOL"]
    back = feature_columns(tensors_from_json({"inputs": sent}, nulls=True), FEATURES, 64)
    assert back["city"].tolist() == ["Seoul", None]
    assert np.isnan(back["rooms"][1]) and back["warm"].tolist() == [True, False]


def test_typed_validator_names_every_bad_field() -> None:
    spec = typed_spec()
    assert is_typed(spec)
    validator = TypedValidator(spec, 64)
    good = validator.records([{"city": None, "rooms": 2, "warm": True}], batch=False)
    assert good["city"].tolist() == [None] and good["rooms"].dtype == np.int64
    with pytest.raises(InvalidFeaturesError) as info:
        validator.records([{"city": 3, "rooms": 2.5, "warm": "yes", "extra": 1}], batch=True)
    said = {p.field: p.problem for p in info.value.problems}
    assert "must be a string" in said["city"] and "whole number" in said["rooms"]
    assert "true or false" in said["warm"] and "unknown field" in said["extra"]
    with pytest.raises(InvalidFeaturesError, match="outside the physical bounds"):
        validator.records([{"city": "a", "rooms": 99, "warm": False}], batch=False)
    with pytest.raises(InvalidFeaturesError, match="rooms: missing"):
        validator.records([{"city": "a", "rooms": None, "warm": False}], batch=False)
