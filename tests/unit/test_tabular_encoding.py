"""The numpy encoder training and serving share: per type and policy, learned state as JSON,
every problem in one error, and the same matrix from a frame and from raw numpy columns."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from castml.data.loaders import load_dataset
from castml.data.tabular_encoding import (
    EncodingError,
    EncodingState,
    FeatureEncoding,
    encode,
    encode_frame,
    fit,
)
from castml.data.validation import validated
from castml.spec import ProjectSpec, load_spec

ADULT = Path("castml/projects/drafts/adult.yaml")


def _spec(features: list[dict[str, Any]]) -> ProjectSpec:
    return ProjectSpec.model_validate(
        {
            "name": "enc",
            "task": "regression",
            "target": "y",
            "source": {"kind": "csv", "path": "x.csv"},
            "features": features,
            "model": {"params": {"gbm": {}}},
        }
    )


SPEC = _spec(
    [
        {"name": "f", "bounds": [0, 100], "missing": "impute"},
        {"name": "i", "dtype": "int", "bounds": [0, 100], "missing": "impute"},
        {"name": "b", "dtype": "bool", "missing": "impute"},
        {"name": "c", "dtype": "categorical", "missing": "impute", "unknown": "other"},
        {"name": "d", "dtype": "datetime", "missing": "impute"},
        {"name": "k", "dtype": "categorical", "categories": ["z", "y", "x"]},
    ]
)
TRAIN = pd.DataFrame(
    {
        "f": [1.0, 2.0, 4.0, np.nan],
        "i": [1.0, 3.0, 3.0, 10.0],
        "b": [1.0, 0.0, 1.0, 1.0],
        "c": ["red", "blue", "red", None],
        "d": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-04", "2024-01-03"]),
        "k": ["x", "y", "z", "x"],
    }
)
DAY = 86_400.0
JAN1 = 1_704_067_200.0  # 2024-01-01T00:00:00Z in seconds since the epoch


@pytest.fixture
def state() -> EncodingState:
    return fit(TRAIN, SPEC)


def test_fit_learns_vocabularies_and_fill_values(state: EncodingState) -> None:
    by_name = {f.name: f for f in state.features}
    assert by_name["f"].impute == 2.0  # the median of what is present
    assert by_name["i"].impute == 3.0
    assert by_name["b"].impute == 1.0  # the most frequent
    assert by_name["c"].vocabulary == ("blue", "red") and by_name["c"].impute == "red"
    assert by_name["d"].impute == JAN1 + 1.5 * DAY
    assert by_name["k"].vocabulary == ("z", "y", "x")  # declared: in the spec's order
    assert by_name["k"].impute is None and by_name["k"].missing == "refuse"
    assert state.names == ["f", "i", "b", "c", "d", "k"]
    assert state.categorical_columns == [3, 5]


def test_state_round_trips_through_json(state: EncodingState) -> None:
    text = json.dumps(state.to_json())
    again = EncodingState.from_json(json.loads(text))
    assert again == state
    columns = {n: TRAIN[n].to_numpy() for n in ("f", "i", "b", "d")} | {
        "c": np.array(["red", "blue", "red", "red"]),
        "k": np.array(["x", "y", "z", "x"]),
    }
    np.testing.assert_array_equal(again.encode(columns), state.encode(columns))


def test_every_type_encodes_to_one_numeric_column(state: EncodingState) -> None:
    matrix = state.encode(
        {
            "f": np.array([1.5, np.nan]),
            "i": np.array([7, 8]),
            "b": np.array([True, False]),
            "c": np.array(["blue", "purple"]),
            "d": np.array(["2024-01-02T06:00:00", None], dtype=object),
            "k": np.array(["z", "x"]),
        }
    )
    assert matrix.dtype == np.float64 and matrix.shape == (2, 6)
    np.testing.assert_array_equal(
        matrix,
        [
            [1.5, 7, 1, 0, JAN1 + 1.25 * DAY, 0],
            [2.0, 8, 0, 2, JAN1 + 1.5 * DAY, 2],  # NaN imputed, "purple" is "other" (code 2)
        ],
    )
    assert encode(state, {n: np.asarray(v) for n, v in _row().items()}, np.float32).dtype == (
        np.float32
    )


def _row(**changes: Any) -> dict[str, Any]:
    return {
        "f": [1.0],
        "i": [2],
        "b": [0],
        "c": ["red"],
        "d": ["2024-02-01"],
        "k": ["y"],
    } | changes


def _problems(state: EncodingState, columns: dict[str, Any]) -> list[str]:
    with pytest.raises(EncodingError) as caught:
        state.encode({n: np.asarray(v) for n, v in columns.items()})
    assert caught.value.status_code == 400
    return [str(p) for p in caught.value.problems]


def test_refused_values_are_named_all_at_once(state: EncodingState) -> None:
    problems = _problems(
        state,
        _row(
            i=np.array(["abc"], dtype=object),
            b=["maybe"],
            d=["yesterday"],
            k=["w"],
            f=[np.inf],
        ),
    )
    assert problems == [
        "f: 1 value(s) that are not a valid float: inf",
        "i: 1 value(s) that are not a valid int: 'abc'",
        "b: 1 value(s) that are not a valid bool: 'maybe'",
        "d: 1 value(s) that are not a valid datetime: 'yesterday'",
        "k: unknown category 'w'",
    ]


def test_missing_is_refused_where_the_spec_says_so(state: EncodingState) -> None:
    for missing in (None, "", np.nan):
        column = np.array([missing], dtype=object)
        assert _problems(state, _row(k=column)) == ["k: 1 missing value(s) (refused)"]


def test_an_int_feature_refuses_fractions_and_accepts_whole_floats(state: EncodingState) -> None:
    assert _problems(state, _row(i=[2.5])) == ["i: 1 value(s) that are not a valid int: 2.5"]
    assert state.encode({n: np.asarray(v) for n, v in _row(i=[4.0]).items()})[0, 1] == 4.0


def test_text_arrives_as_str_object_or_utf8_bytes(state: EncodingState) -> None:
    expected = state.encode({n: np.asarray(v) for n, v in _row().items()})
    for categorical in (
        np.array(["red"], dtype=object),
        np.array([b"red"]),
        np.array(["red"], dtype="<U10"),
    ):
        columns = {n: np.asarray(v) for n, v in _row().items()} | {"c": categorical}
        np.testing.assert_array_equal(state.encode(columns), expected)
    numbers_as_text = {n: np.asarray(v) for n, v in _row(f=["1.0"], i=["2"]).items()}
    np.testing.assert_array_equal(state.encode(numbers_as_text), expected)


def test_declared_fill_values_win_over_learned_ones() -> None:
    spec = _spec(
        [
            {"name": "x", "bounds": [0, 10], "missing": "impute", "impute": 9},
            {"name": "c", "dtype": "categorical", "missing": "impute", "impute": "none"},
            {"name": "d", "dtype": "datetime", "missing": "impute", "impute": "2024-01-01"},
        ]
    )
    frame = pd.DataFrame({"x": [1.0, np.nan], "c": ["a", None], "d": ["2024-05-01", None]})
    state = fit(frame, spec)
    assert [f.impute for f in state.features] == [9, "none", JAN1]
    assert state.features[1].vocabulary == ("a", "none")  # the fill joins a learned vocabulary
    np.testing.assert_array_equal(encode_frame(state, frame)[1], [9.0, 1.0, JAN1])


def test_a_learned_fill_needs_training_values() -> None:
    spec = _spec([{"name": "x", "bounds": [0, 10], "missing": "impute"}])
    with pytest.raises(Exception, match="x: no value in the training data"):
        fit(pd.DataFrame({"x": [np.nan, np.nan]}), spec)


def test_absent_features_and_ragged_columns_are_named(state: EncodingState) -> None:
    columns = {n: np.asarray(v) for n, v in _row().items()}
    del columns["k"]
    assert _problems(state, columns) == ["k: missing from the input"]
    ragged = {n: np.asarray(v) for n, v in _row(f=[1.0, 2.0]).items()}
    assert "differ in length" in _problems(state, ragged)[0]


def test_codes_are_found_by_lookup_for_any_vocabulary_size() -> None:
    rng = np.random.default_rng(0)
    vocabulary = tuple(f"v{n}" for n in rng.permutation(500))
    feature = FeatureEncoding("c", "categorical", vocabulary=vocabulary, unknown="other")
    values = np.asarray([vocabulary[i] for i in rng.integers(0, 500, 1000)] + ["zzz", "a", ""])
    codes, known = feature.codes(values)
    expected = [vocabulary.index(v) for v in values[:1000]]
    np.testing.assert_array_equal(codes[:1000], expected)
    assert known[:1000].all() and not known[1000:].any()


def test_training_frame_and_raw_columns_encode_identically() -> None:
    """The Adult data: the frame path (training) and raw text columns (serving) agree."""
    spec = load_spec(ADULT)
    frame = validated(load_dataset(spec), spec)
    state = fit(frame, spec)
    from_frame = encode_frame(state, frame)
    raw: dict[str, np.ndarray] = {}
    for feature in spec.features:
        column = frame[feature.name]
        if feature.dtype == "categorical":
            raw[feature.name] = np.where(column.isna(), "", column.astype(str)).astype(str)
        else:
            raw[feature.name] = column.to_numpy().astype(str)  # numbers as they arrive in JSON
    np.testing.assert_array_equal(state.encode(raw), from_frame)
    assert from_frame.shape == (32_561, 12) and not np.isnan(from_frame).any()
    native = state.features[spec.feature_names.index("native_country")]
    assert native.impute == "United-States"


def test_the_encoder_module_does_not_import_pandas() -> None:
    code = "import sys, castml.data.tabular_encoding; print('pandas' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


# --- derived calendar features: one function for training and serving -------------------------

CALENDAR_SPEC = ProjectSpec.model_validate(
    {
        "name": "cal",
        "task": "regression",
        "target": "y",
        "time_column": "at",
        "source": {"kind": "csv", "path": "x.csv"},
        "features": [
            {"name": "at", "dtype": "datetime", "missing": "impute"},
            {"name": "load", "bounds": [0, 10]},
        ],
        "derived": [
            {"name": "hour", "source": "at", "part": "hour"},
            {"name": "weekday", "source": "at", "part": "day_of_week"},
            {"name": "month", "source": "at", "part": "month"},
            {"name": "holiday", "source": "at", "part": "holiday", "country": "US"},
        ],
        "model": {"params": {"gbm": {}}},
    }
)


def test_calendar_parts_agree_with_pandas_own_calendar() -> None:
    from castml.data.calendar_features import CalendarPart, calendar_part

    rng = np.random.default_rng(3)
    stamps = pd.to_datetime(rng.integers(-2 * 10**9, 3 * 10**9, 5000), unit="s")
    seconds = stamps.astype("int64").to_numpy() / 1e9
    for part, expected in (
        ("hour", stamps.hour),
        ("day_of_week", stamps.dayofweek),
        ("month", stamps.month),
    ):
        got = calendar_part(seconds, CalendarPart(part, "at", part))  # type: ignore[arg-type]
        np.testing.assert_array_equal(got, expected.to_numpy(dtype=np.float64), err_msg=part)


def test_holidays_come_from_the_configured_country() -> None:
    from castml.data.calendar_features import CalendarPart, calendar_part
    from castml.errors import SpecError

    days = pd.to_datetime(
        ["2024-07-04 12:00", "2024-07-05 12:00", "2023-12-25 00:00", "2024-05-01 08:00"]
    )
    seconds = days.astype("int64").to_numpy() / 1e9
    us = calendar_part(seconds, CalendarPart("h", "at", "holiday", "US"))
    np.testing.assert_array_equal(us, [1, 0, 1, 0])
    germany = calendar_part(seconds, CalendarPart("h", "at", "holiday", "DE"))
    np.testing.assert_array_equal(germany, [0, 0, 1, 1])  # 1 May is Labour Day there
    missing = calendar_part(
        np.array([np.nan, seconds[0]]), CalendarPart("h", "at", "holiday", "US")
    )
    assert np.isnan(missing[0]) and missing[1] == 1
    with pytest.raises(SpecError, match="no calendar for country 'ZZ'"):
        calendar_part(seconds, CalendarPart("h", "at", "holiday", "ZZ"))


def test_derived_features_are_computed_alike_from_a_frame_and_from_raw_text() -> None:
    """Train/serve parity: the training frame and the JSON-like raw columns, bit for bit."""
    rng = np.random.default_rng(4)
    stamps = pd.Timestamp("2023-12-20") + pd.to_timedelta(rng.integers(0, 40 * 24, 300), unit="h")
    text = stamps.strftime("%Y-%m-%dT%H:%M:%S").to_numpy().astype(object)
    text[5] = None  # imputed, then its calendar parts are the imputed time's
    frame = validated(
        pd.DataFrame({"at": text, "load": rng.uniform(0, 10, 300), "y": rng.normal(size=300)}),
        CALENDAR_SPEC.model_copy(
            update={"validation": CALENDAR_SPEC.validation.model_copy(update={"min_rows": 1})}
        ),
    )
    state = fit(frame, CALENDAR_SPEC)
    assert state.columns == ["at", "load", "hour", "weekday", "month", "holiday"]
    from_frame = encode_frame(state, frame)
    served = EncodingState.from_json(json.loads(json.dumps(state.to_json())))
    from_raw = served.encode({"at": text, "load": frame["load"].to_numpy().astype(str)})
    np.testing.assert_array_equal(from_raw, from_frame)
    assert from_frame.shape == (300, 6) and not np.isnan(from_frame).any()
    christmas = np.flatnonzero(stamps.strftime("%m-%d") == "12-25")
    assert christmas.size and (from_frame[christmas, 5] == 1).all()
    imputed = state.features[0].impute
    assert from_frame[5, 0] == imputed and from_frame[5, 2] == (imputed % 86_400) // 3600


def test_derived_features_are_checked_in_the_spec() -> None:
    raw = CALENDAR_SPEC.model_dump()
    raw["derived"] = [{"name": "h", "source": "load", "part": "hour"}]
    with pytest.raises(ValueError, match="source 'load' must be a datetime feature"):
        ProjectSpec.model_validate(raw)
    raw["derived"] = [{"name": "h", "source": "at", "part": "holiday"}]
    with pytest.raises(ValueError, match="a country goes with part holiday"):
        ProjectSpec.model_validate(raw)
    raw["derived"] = [{"name": "load", "source": "at", "part": "hour"}]
    with pytest.raises(ValueError, match="derived features reuse names: load"):
        ProjectSpec.model_validate(raw)
    assert CALENDAR_SPEC.model_input_names == ["at", "load", "hour", "weekday", "month", "holiday"]


def test_a_log1p_target_round_trips_and_none_is_the_identity() -> None:
    from castml.data.target_transform import forward, inverse

    counts = np.array([0.0, 1.0, 9.0, 1e6])
    np.testing.assert_allclose(forward("log1p", counts), np.log1p(counts))
    np.testing.assert_allclose(inverse("log1p", forward("log1p", counts)), counts)
    np.testing.assert_array_equal(inverse("none", forward("none", counts)), counts)


def test_utf8_text_is_one_category_however_it_arrives() -> None:
    feature = FeatureEncoding("c", "categorical", vocabulary=("café", "tea"))
    state = EncodingState((feature,))
    for column in (
        np.array(["café", "tea"]),
        np.array(["café".encode(), b"tea"]),
        np.array(["café".encode(), "tea"], dtype=object),
    ):
        np.testing.assert_array_equal(state.encode({"c": column}), [[0.0], [1.0]])
