"""The canonical payloads in tests/fixtures/serving_*.json stay valid against the live servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.serving.conftest import Stack

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.parametrize(
    ("server", "path", "fixture", "status"),
    [
        ("transformer", "/v1/models/diecast:predict", "serving_predict_features.json", 200),
        ("transformer", "/v1/models/diecast:predict", "serving_predict_instances.json", 200),
        ("transformer", "/v1/models/diecast:predict", "serving_predict_invalid.json", 400),
        ("transformer", "/v2/models/diecast/infer", "serving_v2_infer_named.json", 200),
        ("predictor", "/v2/models/diecast/infer", "serving_v2_infer_matrix.json", 200),
        ("predictor", "/v2/models/diecast/infer", "serving_v2_infer_named.json", 200),
        ("explainer", "/v1/models/diecast:explain", "serving_explain.json", 200),
    ],
)
def test_fixture(stack: Stack, server: str, path: str, fixture: str, status: int) -> None:
    response = httpx.post(getattr(stack, server).url + path, json=load(fixture), timeout=60)
    assert response.status_code == status, response.text
    if status == 400:
        fields = {p["field"] for p in response.json()["details"]}
        assert fields == {"Process_Pressure", "Sensor_Vibration", "Colour"}
