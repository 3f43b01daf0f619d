"""A regression project's response carries `prediction`; the collector keeps it as the score."""

import pytest

from monitoring.event_ingest import UnusablePayloadError, response_outputs


def _response(name: str) -> dict[str, object]:
    return {
        "model_name": "diabetes",
        "model_version": "2",
        "outputs": [{"name": name, "shape": [2], "datatype": "FP32", "data": [151.0, 75.5]}],
    }


def test_prediction_output_is_the_score_of_a_regression_project() -> None:
    score, label, name, version = response_outputs(_response("prediction"))
    assert score == [151.0, 75.5] and label == [] and (name, version) == ("diabetes", "2")


def test_a_response_without_any_score_is_refused_by_name() -> None:
    with pytest.raises(UnusablePayloadError, match="'probability' or 'prediction'"):
        response_outputs(_response("latent"))
