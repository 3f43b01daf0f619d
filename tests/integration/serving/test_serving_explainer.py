"""The explainer over the wire: local accuracy, top features, chart, v1 and v2 routes."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import numpy as np
import pytest

from castml.runtime.ae_gbm import AeGbmModel
from castml.spec import ProjectSpec
from tests.integration.serving.conftest import Stack
from tests.unit.serving.support import valid_record

pytestmark = pytest.mark.integration


def test_v1_explanation_is_locally_accurate(
    stack: Stack, spec: ProjectSpec, model_store: Any
) -> None:
    record = valid_record(spec, 9)
    response = httpx.post(
        f"{stack.explainer.url}/v1/models/diecast:explain",
        json={"features": record, "top_k": 5},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    model = AeGbmModel.load(model_store / "1" / "model")
    background = np.load(model_store / "1" / "background.npy")
    x = np.asarray([[record[n] for n in spec.feature_names]], dtype=np.float32)
    fx, base = float(model.score(x)[0]), float(model.score(background).mean())
    phi = np.asarray([body["attributions"][n] for n in spec.feature_names])
    assert abs(phi.sum() - (fx - base)) < 1e-6
    assert body["prediction"] == pytest.approx(fx, abs=1e-9)
    assert body["base_value"] == pytest.approx(base, abs=1e-9)
    assert body["model_version"] == "diecast/1" and body["method"].startswith("shap")
    top = body["top_features"]
    assert len(top) == 5
    assert [abs(t["attribution"]) for t in top] == sorted(
        (abs(t["attribution"]) for t in top), reverse=True
    )
    assert all(t["value"] == pytest.approx(record[t["feature"]], rel=1e-6) for t in top)
    assert base64.b64decode(body["chart_png_base64"]).startswith(b"\x89PNG\r\n\x1a\n")


def test_v2_explain_route(stack: Stack, spec: ProjectSpec) -> None:
    record = valid_record(spec, 10)
    inputs = [{"name": n, "datatype": "FP32", "shape": [1], "data": [v]} for n, v in record.items()]
    response = httpx.post(
        f"{stack.explainer.url}/v2/models/diecast/explain",
        json={"inputs": inputs, "parameters": {"chart": False, "permutations": 2}},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "chart_png_base64" not in body and body["local_accuracy_error"] < 1e-6
    assert len(body["attributions"]) == 30


def test_explainer_validates_like_the_transformer(stack: Stack, spec: ProjectSpec) -> None:
    record = valid_record(spec)
    record["Process_Temperature"] = -1
    response = httpx.post(
        f"{stack.explainer.url}/v1/models/diecast:explain", json={"features": record}
    )
    assert (
        response.status_code == 400
        and response.json()["details"][0]["field"] == "Process_Temperature"
    )
    response = httpx.post(
        f"{stack.explainer.url}/v1/models/diecast:explain",
        json={"features": valid_record(spec), "permutations": 10_000},
    )
    assert response.status_code == 400 and "permutations" in response.json()["error"]
