"""The encoder's grouped reading (one look-up per shared vocabulary, numbers as one block)
gives exactly the per-column reading's matrix and refusals, and the v2 one-row shortcut
(`lone_columns`) exactly `feature_columns(tensors_from_json(...))`'s columns.

Lists instead of arrays make `encode` read column by column, so each case is checked
against the general path it replaces.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from castml.data.tabular_encoding import EncodingError, EncodingState, FeatureEncoding
from castml.protocol.v2_tensors import feature_columns, lone_columns, tensors_from_json

VOCABULARY = ("a", "b", "c")


def _state() -> EncodingState:
    """A window's shape: one categorical and its lags (one vocabulary), numbers, a bool."""
    return EncodingState(
        (
            FeatureEncoding("cat", "categorical", vocabulary=VOCABULARY, unknown="other"),
            FeatureEncoding("cat__lag1", "categorical", "impute", "b", VOCABULARY, "other"),
            FeatureEncoding("cat__lag2", "categorical", "impute", "b", VOCABULARY, "refuse"),
            FeatureEncoding("other_cat", "categorical", vocabulary=("x", "y")),
            FeatureEncoding("n", "float"),
            FeatureEncoding("k", "int"),
            FeatureEncoding("k__lag1", "int", "impute", 3.0),
            FeatureEncoding("flag", "bool"),
        )
    )


CLEAN: dict[str, Any] = {
    "cat": ["c", "a"],
    "cat__lag1": ["a", "a"],
    "cat__lag2": ["b", "c"],
    "other_cat": ["y", "x"],
    "n": [0.5, -1.25],
    "k": [2, 7],
    "k__lag1": [1, 4],
    "flag": [True, False],
}

CHANGES: list[dict[str, Any]] = [
    {},
    {"cat": ["zz", "a"]},  # unknown: the "other" code
    {"cat__lag2": ["zz", "a"]},  # unknown: refused
    {"cat__lag1": np.array([None, "c"], dtype=object)},  # missing: imputed
    {"cat": [1.5, 2.0]},  # a number among the text
    {"n": [np.nan, 1.0]},
    {"k": [1.5, 2.0]},  # not whole
    {"k__lag1": np.array([None, 2], dtype=object)},  # missing: imputed
    {"n": [True, False]},  # a bool among the numbers
    {"n": ["0.5", "1"]},  # text among the numbers
]


def _arrays(columns: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, np.ndarray) else np.asarray(v) for k, v in columns.items()}


def _outcome(state: EncodingState, columns: dict[str, Any]) -> Any:
    try:
        return state.encode(columns, np.float32)
    except EncodingError as exc:
        return [(p.feature, p.message, p.rows) for p in exc.problems]


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: ",".join(c) or "clean")
def test_grouped_reading_is_the_per_column_one(change: dict[str, Any]) -> None:
    state = _state()
    columns = CLEAN | change
    grouped = _outcome(state, _arrays(columns))
    by_column = _outcome(state, {k: list(v) for k, v in columns.items()})
    if isinstance(by_column, list):
        assert grouped == by_column
    else:
        assert isinstance(grouped, np.ndarray)
        np.testing.assert_array_equal(grouped, by_column)


def test_shared_vocabulary_codes_and_refusals() -> None:
    state = _state()
    x = state.encode(_arrays(CLEAN))
    assert x[:, :4].tolist() == [[2, 0, 1, 1], [0, 0, 2, 0]]
    assert x[:, 4:].tolist() == [[0.5, 2, 1, 1], [-1.25, 7, 4, 0]]
    with pytest.raises(EncodingError, match="cat__lag2: unknown category 'zz'"):
        state.encode(_arrays(CLEAN | {"cat__lag2": ["zz", "a"]}))


@pytest.mark.parametrize(
    "columns",
    [
        CLEAN | {"n": [1.0]},  # lengths differ
        {k: v for k, v in CLEAN.items() if k != "k"},  # a feature missing
    ],
    ids=["lengths", "missing"],
)
def test_unequal_or_missing_columns_are_named(columns: dict[str, Any]) -> None:
    with pytest.raises(EncodingError) as caught:
        _state().encode(_arrays(columns))
    assert caught.value.problems[0].feature in {"*", "k"}


FEATURES = ["cat", "n", "k"]
ROW = [
    {"name": "cat", "datatype": "BYTES", "shape": [1], "data": ["a"]},
    {"name": "n", "datatype": "FP64", "shape": [1], "data": [0.5]},
    {"name": "k", "datatype": "INT64", "shape": [1], "data": [3]},
]


def test_lone_columns_are_the_decoded_columns() -> None:
    payload = {"inputs": ROW}
    columns = lone_columns(payload, FEATURES, 10)
    assert columns is not None
    expected = feature_columns(tensors_from_json(payload, None, True), FEATURES, 10)
    assert columns.keys() == expected.keys()
    for name, values in expected.items():
        assert columns[name].dtype == values.dtype
        assert columns[name].tolist() == values.tolist()


@pytest.mark.parametrize(
    "inputs",
    [
        [ROW[0], ROW[1], ROW[1]],  # a name twice (and one missing)
        [ROW[0], ROW[1], {**ROW[2], "name": "zz"}],  # not a feature
        [ROW[0], ROW[1]],  # one missing
        [ROW[0], ROW[1], {**ROW[2], "data": [None]}],  # a null
        [ROW[0], ROW[1], {**ROW[2], "data": [1.5]}],  # a float for INT64
        [ROW[0], ROW[1], {**ROW[2], "shape": [2]}],
        [ROW[0], ROW[1], {**ROW[2], "shape": [True]}],
        [ROW[0], ROW[1], {**ROW[2], "data": [3, 4], "shape": [2]}],  # two rows
    ],
)
def test_anything_else_is_left_to_the_general_decoder(inputs: list[dict[str, Any]]) -> None:
    assert lone_columns({"inputs": inputs}, FEATURES, 10) is None
