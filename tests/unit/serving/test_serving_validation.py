"""Spec validation of named records: every problem named, with its field and instance."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from castml.spec import ProjectSpec
from serving.errors import BadRequestError, InvalidFeaturesError
from serving.validation import FeatureValidator
from tests.unit.serving.support import valid_record


@pytest.fixture(scope="module")
def validator(spec: ProjectSpec) -> FeatureValidator:
    return FeatureValidator(spec, max_rows=8)


def problems(
    validator: FeatureValidator, records: list[Any], batch: bool = False
) -> list[dict[str, Any]]:
    with pytest.raises(InvalidFeaturesError) as info:
        validator.records(records, batch)
    assert info.value.status_code == 400
    return [p.as_dict() for p in info.value.problems]


def test_valid_record_gives_float32_row(spec: ProjectSpec, validator: FeatureValidator) -> None:
    record = valid_record(spec)
    x = validator.records([record], batch=False)
    assert x.dtype == np.float32 and x.shape == (1, 30)
    assert x[0, 0] == np.float32(record[spec.feature_names[0]])


def test_list_record_in_spec_order(spec: ProjectSpec, validator: FeatureValidator) -> None:
    record = valid_record(spec)
    x = validator.records([[record[n] for n in spec.feature_names]], batch=True)
    assert x.shape == (1, 30)


def test_every_kind_of_problem_is_named(spec: ProjectSpec, validator: FeatureValidator) -> None:
    record: dict[str, Any] = valid_record(spec)
    names = spec.feature_names
    del record[names[0]]
    record["Colour"] = 3
    record[names[1]] = "high"
    record[names[2]] = None
    record[names[3]] = True
    found = problems(validator, [record])
    by_field = {p["field"]: p["problem"] for p in found}
    assert by_field[names[0]] == "missing"
    assert "unknown field" in by_field["Colour"]
    assert "string 'high'" in by_field[names[1]]
    assert "null" in by_field[names[2]]
    assert "boolean" in by_field[names[3]]
    assert all("instance" not in p for p in found)


def test_out_of_bounds_and_non_finite(spec: ProjectSpec, validator: FeatureValidator) -> None:
    a, b = valid_record(spec, 1), valid_record(spec, 2)
    temperature = spec.features[0]
    a[temperature.name] = temperature.bounds[1] + 1
    b["Process_Pressure"] = -5.0
    found = problems(validator, [a, b], batch=True)
    assert {(p["instance"], p["field"]) for p in found} == {
        (0, temperature.name),
        (1, "Process_Pressure"),
    }
    assert "outside the physical bounds [550, 800]" in found[0]["problem"]
    x = np.zeros((1, 30))
    x[0, 4] = math.inf
    with pytest.raises(InvalidFeaturesError, match="not a finite number"):
        validator.check_values(x, batch=False)


def test_structural_errors(validator: FeatureValidator, spec: ProjectSpec) -> None:
    with pytest.raises(BadRequestError, match="empty"):
        validator.records([], batch=True)
    with pytest.raises(BadRequestError, match="limit is 8"):
        validator.records([valid_record(spec)] * 9, batch=True)
    assert "object keyed by feature name" in problems(validator, ["x"])[0]["problem"]
    assert "needs 30 values" in problems(validator, [[1.0, 2.0]])[0]["problem"]


@settings(max_examples=200, deadline=None)
@given(
    changes=st.dictionaries(
        st.sampled_from(["Process_Temperature", "Sensor_Vibration", "Sensor_MeltLevel", "Extra"]),
        st.none()
        | st.booleans()
        | st.text(max_size=3)
        | st.floats()
        | st.integers(-(10**6), 10**6)
        | st.lists(st.integers(), max_size=2),
    ),
    drop=st.sets(st.sampled_from(["Process_Pressure", "Sensor_AmbientHumidity"])),
)
def test_fuzzed_records_pass_or_name_their_problems(
    spec: ProjectSpec, validator: FeatureValidator, changes: dict[str, Any], drop: set[str]
) -> None:
    record: dict[str, Any] = {**valid_record(spec), **changes}
    for name in drop:
        del record[name]
    try:
        x = validator.records([record], batch=False)
    except InvalidFeaturesError as exc:
        fields = {p.field for p in exc.problems}
        assert fields and fields <= set(changes) | drop
        return
    assert np.isfinite(x).all() and not drop and "Extra" not in changes
