"""`method: "anchors"` for real: the explainer runs from `.venv-alibi` (alibi 0.9.6, numpy<2).

The session builds `.venv-alibi` with scripts/alibi_venv.sh when it is missing or stale (about
1.5 to 3 min on 2 cores; a no-op afterwards), then starts a predictor from the default venv
and the explainer from `.venv-alibi`, both on the MLflow registry of `registered_diecast`.
The default venv's explainer answers 422 for anchors (test_serving_bad_input).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from castml.cli.local_processes import SOURCE_ROOT, ServerProcess, start_server
from castml.spec import ProjectSpec
from tests.unit.serving.support import feature_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ALIBI_VENV = SOURCE_ROOT / ".venv-alibi"
NUMBER = r"-?\d+(?:\.\d+)?"


@pytest.fixture(scope="session")
def alibi_python() -> Path:
    """`.venv-alibi/bin/python`, built (or checked: a no-op) by the idempotent script."""
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "scripts/alibi_venv.sh"],
        cwd=SOURCE_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"scripts/alibi_venv.sh failed:\n{done.stdout}\n{done.stderr}"
    if "ready in" in done.stdout:
        print(f"built .venv-alibi in {time.monotonic() - started:.0f}s")
    return ALIBI_VENV / "bin" / "python"


@dataclass
class AnchorsStack:
    predictor: ServerProcess
    explainer: ServerProcess
    version: str


@pytest.fixture(scope="module")
def anchors_stack(
    alibi_python: Path, registered_diecast: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AnchorsStack]:
    work = tmp_path_factory.mktemp("anchors")
    env = {"CASTML_MLFLOW_URI": registered_diecast.uri, "CASTML_MODEL_VERSION": "champion"}
    servers: list[ServerProcess] = []
    try:
        predictor = start_server(
            "predictor", {**env, "CASTML_HOME": str(work / "predictor")}, work / "logs"
        )
        servers.append(predictor)
        # Its own home: it downloads the version through mlflow-skinny in .venv-alibi.
        explainer = start_server(
            "explainer",
            {**env, "CASTML_HOME": str(work / "explainer")},
            work / "logs",
            predictor=predictor,
            python=alibi_python,
        )
        servers.append(explainer)
        version = str(httpx.get(f"{predictor.url}/v2/models/diecast").json()["versions"][0])
        yield AnchorsStack(predictor, explainer, version)
    finally:
        for server in reversed(servers):
            server.stop()


def predicted_labels(predictor: ServerProcess, x: np.ndarray) -> np.ndarray:
    body = {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}
        ]
    }
    response = httpx.post(f"{predictor.url}/v2/models/diecast/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    out = {o["name"]: o["data"] for o in response.json()["outputs"]}
    return np.asarray(out["label"], dtype=np.int64)


def holds(condition: str, feature: str, value: float) -> bool:
    """alibi's conditions: `f <= q`, `f > q`, `q1 < f <= q2` (quartiles, 2 decimals)."""
    name = re.escape(feature)
    tolerance = 0.005  # the bounds are printed rounded to 2 decimals
    if m := re.fullmatch(rf"({NUMBER}) < {name} <= ({NUMBER})", condition):
        return float(m[1]) - tolerance < value <= float(m[2]) + tolerance
    if m := re.fullmatch(rf"{name} <= ({NUMBER})", condition):
        return value <= float(m[1]) + tolerance
    if m := re.fullmatch(rf"{name} > ({NUMBER})", condition):
        return value > float(m[1]) - tolerance
    raise AssertionError(f"unexpected condition {condition!r} for {feature}")


def test_anchors_from_the_alibi_venv(anchors_stack: AnchorsStack, spec: ProjectSpec) -> None:
    x = feature_rows(spec, 60, 21)
    labels = predicted_labels(anchors_stack.predictor, x)
    assert 0 < labels.sum() < len(labels), "the sample needs both classes"
    rows = [int(np.flatnonzero(labels == 0)[0]), int(np.flatnonzero(labels == 1)[0])]
    threshold = 0.9
    records = [
        {name: float(v) for name, v in zip(spec.feature_names, x[i], strict=True)} for i in rows
    ]
    started = time.perf_counter()
    response = httpx.post(
        f"{anchors_stack.explainer.url}/v1/models/diecast:explain",
        json={"instances": records, "method": "anchors", "threshold": threshold},
        timeout=300,
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    assert response.headers["x-model-version"] == anchors_stack.version
    body = response.json()
    assert body["model_version"] == f"diecast/{anchors_stack.version}"
    print(f"anchors for 2 rows in {elapsed:.1f}s: {body['explanations']}")
    for i, record, found in zip(rows, records, body["explanations"], strict=True):
        assert found["method"] == "anchors" and found["threshold"] == threshold
        anchor, features = found["anchor"], found["features"]
        # A non-empty rule of conditions on real spec features, one condition per feature,
        # each true of the explained row itself.
        assert anchor and len(anchor) == len(features) == len(set(features))
        assert set(features) <= set(spec.feature_names)
        for condition, feature in zip(anchor, features, strict=True):
            assert holds(condition, feature, record[feature]), (condition, record[feature])
        assert found["meets_threshold"] is True
        assert threshold <= found["precision"] <= 1.0
        assert 0.0 <= found["coverage"] <= 1.0
        # The explained class is the predictor's label for that row.
        assert found["prediction"]["label"] == labels[i]
        assert found["prediction"]["class"] == ("defect" if labels[i] == 1 else "ok")
        assert found["background_rows"] == spec.monitoring.background_rows


def test_anchors_are_reproducible_and_validated(
    anchors_stack: AnchorsStack, spec: ProjectSpec
) -> None:
    x = feature_rows(spec, 1, 22)
    record = {name: float(v) for name, v in zip(spec.feature_names, x[0], strict=True)}
    url = f"{anchors_stack.explainer.url}/v1/models/diecast:explain"
    answers = [
        httpx.post(url, json={"features": record, "method": "anchors"}, timeout=120).json()
        for _ in range(2)
    ]
    assert answers[0]["threshold"] == 0.95  # the default
    keep = ("anchor", "precision", "coverage", "prediction")
    assert [{k: a[k] for k in keep} for a in answers] == [{k: answers[0][k] for k in keep}] * 2
    for bad in (1.5, 0.2, "high", True):
        response = httpx.post(
            url, json={"features": record, "method": "anchors", "threshold": bad}, timeout=30
        )
        assert response.status_code == 400 and "threshold" in response.json()["error"]


def test_shap_still_works_under_numpy_1(anchors_stack: AnchorsStack, spec: ProjectSpec) -> None:
    """The whole explainer runs on numpy 1.26 in .venv-alibi: SHAP stays locally accurate."""
    x = feature_rows(spec, 1, 23)
    record = {name: float(v) for name, v in zip(spec.feature_names, x[0], strict=True)}
    response = httpx.post(
        f"{anchors_stack.explainer.url}/v1/models/diecast:explain",
        json={"features": record, "permutations": 2, "chart": True},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["method"].startswith("shap") and body["local_accuracy_error"] < 1e-6
    assert body["chart_png_base64"]
