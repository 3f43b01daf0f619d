"""Transformer -> predictor over the wire: the public answer, and its validation."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from castml.runtime.ae_gbm import AeGbmModel
from castml.spec import ProjectSpec
from serving.transformer import confidence
from tests.integration.serving.conftest import Stack
from tests.unit.serving.support import valid_record

pytestmark = pytest.mark.integration


def predict(stack: Stack, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{stack.transformer.url}/v1/models/diecast:predict", json=body, **kwargs)


def test_one_record(stack: Stack, spec: ProjectSpec, model_store: Any) -> None:
    record = valid_record(spec, 5)
    response = predict(stack, {"features": record}, headers={"x-request-id": "abc"})
    assert response.status_code == 200, response.text
    body = response.json()
    model = AeGbmModel.load(model_store / "1" / "model")
    x = np.asarray([[record[n] for n in spec.feature_names]], dtype=np.float32)
    expected = model.predict(x)
    assert set(body) == {
        "prediction",
        "latent_features",
        "processing_time_ms",
        "model_version",
        "request_id",
    }
    assert body["model_version"] == "diecast/1" and body["request_id"] == "abc"
    assert body["prediction"]["class"] == ("defect" if expected["label"][0] else "ok")
    assert body["prediction"]["probability"] == pytest.approx(
        float(expected["probability"][0]), abs=1e-6
    )
    assert body["prediction"]["confidence"] in {"high", "medium", "low"}
    assert len(body["latent_features"]) == 12 and body["processing_time_ms"] > 0


def test_batch_gets_one_object_per_instance(stack: Stack, spec: ProjectSpec) -> None:
    records = [valid_record(spec, s) for s in range(4)]
    body = predict(stack, {"instances": records}).json()
    assert len(body["predictions"]) == 4 and body["model_version"] == "diecast/1"
    assert all(p["model_version"] == "diecast/1" for p in body["predictions"])
    single = [predict(stack, {"features": r}).json()["prediction"]["probability"] for r in records]
    assert [p["prediction"]["probability"] for p in body["predictions"]] == pytest.approx(
        single, abs=1e-6
    )


def test_v2_named_inputs(stack: Stack, spec: ProjectSpec) -> None:
    record = valid_record(spec, 6)
    inputs = [{"name": n, "datatype": "FP32", "shape": [1], "data": [v]} for n, v in record.items()]
    response = httpx.post(
        f"{stack.transformer.url}/v2/models/diecast/infer", json={"inputs": inputs}
    )
    assert response.status_code == 200, response.text
    out = {o["name"]: o for o in response.json()["outputs"]}
    assert set(out) == {"probability", "label", "latent", "class", "confidence"}
    assert out["class"]["data"][0] in {"ok", "defect"} and out["latent"]["shape"] == [1, 12]
    bad = [dict(i) for i in inputs]
    bad[0]["data"] = [10_000.0]
    response = httpx.post(f"{stack.transformer.url}/v2/models/diecast/infer", json={"inputs": bad})
    assert response.status_code == 400 and spec.feature_names[0] in response.json()["error"]


def test_validation_names_every_field(stack: Stack, spec: ProjectSpec) -> None:
    record: dict[str, Any] = valid_record(spec)
    del record["Process_Pressure"]
    record["Sensor_Vibration"] = "loud"
    record["Process_Temperature"] = 9999
    record["Bogus"] = 1
    response = predict(stack, {"features": record})
    assert response.status_code == 400
    problems = {p["field"]: p["problem"] for p in response.json()["details"]}
    assert problems["Process_Pressure"] == "missing"
    assert "unknown" in problems["Bogus"]
    assert "must be a number" in problems["Sensor_Vibration"]
    # bounds are checked once the record is complete and numeric
    record = valid_record(spec)
    record["Process_Temperature"] = 9999
    problems = {
        p["field"]: p["problem"] for p in predict(stack, {"features": record}).json()["details"]
    }
    assert "outside the physical bounds" in problems["Process_Temperature"]


def test_confidence_bands_are_symmetric_in_margin() -> None:
    p = np.asarray([0.0, 0.1, 0.19, 0.2, 0.25, 0.5, 0.9, 1.0])
    assert confidence(p, 0.2, 0.5, 0.2) == [
        "high",
        "high",
        "low",
        "low",
        "low",
        "medium",
        "high",
        "high",
    ]
