"""The transformer's public answer: what its fast path builds is exactly the pydantic model
and its published JSON schema (`castml.protocol.transformer_answer`)."""

from __future__ import annotations

from typing import Any

import jsonschema
import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from castml.protocol.transformer_answer import (
    ANSWER_ADAPTER,
    BatchAnswer,
    InstanceAnswer,
    answer_json_schema,
    batch_answer,
    instance_answers,
)
from castml.spec import load_spec
from serving.predictor_reply import InferReply
from serving.settings import ServingSettings
from serving.transformer import Call, Transformer

LATENT = [[0.123456] * 12, [-1.5] * 12]


def wire(answer: dict[str, Any]) -> Any:
    """As the client reads it: through orjson, as the transformer answers."""
    return orjson.loads(orjson.dumps(answer))


def built() -> list[dict[str, Any]]:
    classified = instance_answers(
        "diecast/1",
        "r-1",
        1.25,
        LATENT,
        classes=["ok", "defect"],
        probabilities=[0.01, 0.97],
        bands=["high", "medium"],
    )
    regressed = instance_answers("cast-yield/3", "r-2", 0.5, LATENT, values=[3.5, -2.0])
    return [classified[0], regressed[1], batch_answer(classified), batch_answer(regressed)]


@pytest.mark.parametrize("answer", built())
def test_built_answers_are_the_model_and_the_schema(answer: dict[str, Any]) -> None:
    body = wire(answer)
    jsonschema.validate(body, answer_json_schema())
    parsed = ANSWER_ADAPTER.validate_python(body)
    assert isinstance(parsed, BatchAnswer if "predictions" in body else InstanceAnswer)
    assert parsed.model_dump(by_alias=True) == body  # nothing dropped, nothing renamed


def test_the_schema_names_the_public_fields() -> None:
    schema = answer_json_schema()
    defs = schema["$defs"]
    assert set(defs["InstanceAnswer"]["properties"]) == {
        "prediction",
        "latent_features",
        "processing_time_ms",
        "model_version",
        "request_id",
    }
    assert set(defs["ClassPrediction"]["properties"]) == {"class", "probability", "confidence"}
    assert defs["ClassPrediction"]["properties"]["confidence"]["enum"] == ["low", "medium", "high"]


@pytest.mark.parametrize(
    "bad",
    [
        {"prediction": {"class": "ok", "probability": 1.5, "confidence": "high"}},
        {"prediction": {"class": "ok", "probability": 0.5, "confidence": "sure"}},
        {"model_version": "1"},
        {"extra": 1},
    ],
)
def test_the_model_refuses_what_the_contract_does_not_allow(bad: dict[str, Any]) -> None:
    answer = {**wire(built()[0]), **bad}
    with pytest.raises(ValidationError):
        InstanceAnswer.model_validate(answer)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(answer, answer_json_schema())


def test_the_transformers_postprocess_answers_in_the_contract() -> None:
    transformer = Transformer(ServingSettings(predictor_url="http://127.0.0.1:9"), "diecast")
    rng = np.random.default_rng(0)
    reply = InferReply(
        "7",
        {
            "probability": rng.random(3, dtype=np.float32),
            "label": np.asarray([0, 1, 1]),
            "latent": rng.random((3, 12), dtype=np.float32),
        },
        threshold=0.4,
    )
    for batch in (False, True):
        call = Call("req-9", 0.0, v2=False, batch=batch)
        answer = wire(transformer.postprocess(reply, call))
        jsonschema.validate(answer, answer_json_schema())
        first = answer["predictions"][0] if batch else answer
        assert first["model_version"] == f"{load_spec('diecast').name}/7"
        assert first["request_id"] == "req-9" and first["prediction"]["class"] == "ok"
