"""The transformer's logged bodies flatten to the same rows and scores as the predictor's."""

from __future__ import annotations

from typing import Any

import pytest

from castml.cli.logger_cloudevents import binary_event
from castml.spec import load_spec
from monitoring import events
from monitoring.collector_app import event_record

FEATURES = load_spec("diecast").feature_names


def _answer(p: float, cls: str) -> dict[str, Any]:
    return {
        "prediction": {"class": cls, "probability": p, "confidence": "high"},
        "latent_features": [0.0] * 12,
        "model_version": "diecast/3",
        "request_id": "r-1",
        "processing_time_ms": 1.5,
    }


def test_named_and_list_records_give_rows_in_spec_order() -> None:
    record = {name: float(i) for i, name in enumerate(reversed(FEATURES))}
    expected = [record[name] for name in FEATURES]
    assert events.request_rows({"features": record}, FEATURES) == [expected]
    assert events.request_rows({"features": expected}, FEATURES) == [expected]
    rows = events.request_rows({"instances": [record, expected]}, FEATURES)
    assert rows == [expected, expected]
    with pytest.raises(events.UnusablePayloadError, match=r"instances\[1\]: a list record"):
        events.request_rows({"instances": [record, expected[:3]]}, FEATURES)


def test_one_answer_and_a_batch_give_score_label_and_version() -> None:
    score, label, name, version = events.response_outputs(_answer(0.8, "defect"), "diecast")
    assert (score, label, name, version) == ([0.8], [1], "diecast", "3")
    batch = {
        "predictions": [_answer(0.8, "defect"), _answer(0.1, "ok")],
        "model_version": "diecast/3",
        "request_id": "r-1",
    }
    assert events.response_outputs(batch, "diecast") == ([0.8, 0.1], [1, 0], "diecast", "3")


def test_a_regression_answer_is_its_value_without_label() -> None:
    answer = {"prediction": {"value": 151.5}, "model_version": "diabetes/2"}
    assert events.response_outputs(answer, "diabetes") == ([151.5], [], "diabetes", "2")


def test_an_unknown_class_is_refused_by_name() -> None:
    with pytest.raises(events.UnusablePayloadError, match="one of ok, defect"):
        events.response_outputs(_answer(0.8, "broken"), "diecast")


def test_the_transformer_events_are_keyed_apart_from_the_predictor_ones() -> None:
    records = []
    for component in ("predictor", "transformer"):
        headers, body = binary_event(
            "request", "same-id", "diecast", {"features": dict.fromkeys(FEATURES, 1.0)},
            component=component,
        )  # fmt: skip
        attrs, data = events.parse(headers, body)
        records.append(event_record(events.to_event(attrs, data, lambda _: FEATURES)))
    predictor, transformer = records
    assert predictor["id"] == transformer["id"] == "same-id"  # the id feedback names
    assert predictor["key"] == "request:same-id" and "j" not in predictor
    assert transformer["key"] == "transformer:request:same-id"
    assert transformer["j"] == "transformer:same-id"
