"""End to end against a real cluster (`bash scripts/kind.sh up|images|deploy|e2e`).

Skipped when no cluster is reachable; never faked. Talks to the cluster only through
kubectl (port-forwards and `kubectl create job`), so it needs no Kubernetes client.
Environment: CASTML_E2E_NAMESPACE (default castml), CASTML_E2E_RELEASE (default castml),
CASTML_E2E_PROJECT (default diecast).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from castml import isvc
from tests.support.ports import free_port
from tests.support.retrain_answer import outcomes

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = os.environ.get("CASTML_E2E_NAMESPACE", "castml")
RELEASE = os.environ.get("CASTML_E2E_RELEASE", "castml")
PROJECT = os.environ.get("CASTML_E2E_PROJECT", "diecast")
FIXTURES = REPO / "tests" / "fixtures"


def _kubectl_path() -> str | None:
    found = shutil.which("kubectl")
    local = REPO / ".tools" / "bin" / "kubectl"
    return found or (str(local) if local.is_file() else None)


KUBECTL = _kubectl_path()


def _cluster_reachable() -> bool:
    if KUBECTL is None:
        return False
    try:
        result = subprocess.run(
            [KUBECTL, "version", "--request-timeout=5s", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and "serverVersion" in result.stdout


if not _cluster_reachable():
    pytest.skip("no Kubernetes cluster reachable through kubectl", allow_module_level=True)


def kubectl(*args: str, timeout: float = 120) -> str:
    assert KUBECTL is not None
    result = subprocess.run(
        [KUBECTL, "-n", NAMESPACE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


@contextmanager
def port_forward(target: str, remote_port: int) -> Iterator[str]:
    assert KUBECTL is not None
    local = free_port()
    process = subprocess.Popen(
        [KUBECTL, "-n", NAMESPACE, "port-forward", target, f"{local}:{remote_port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{local}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", local), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def isvc_object() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(kubectl("get", "isvc", PROJECT, "-o", "json"))
    return loaded


def wait_ready(timeout_s: float = 900) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        obj = isvc_object()
        conditions = obj.get("status", {}).get("conditions", [])
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return obj
        if time.monotonic() > deadline:
            pytest.fail(
                f"InferenceService {PROJECT} not Ready after {timeout_s}s: {conditions}. "
                f"Is version {isvc.pinned_version(obj)} registered in MLflow? "
                "Train once first (see docs/operations.md)."
            )
        time.sleep(10)


def die_casting_request() -> dict[str, Any]:
    for name in ("diecast_request.json", "diecast/request.json"):
        path = FIXTURES / name
        if path.is_file():
            loaded: dict[str, Any] = json.loads(path.read_text())
            return loaded
    from castml.spec import load_spec  # the spec's normal operating range: a valid shot

    spec: Any = load_spec(PROJECT)
    return {"features": {f.name: (f.normal[0] + f.normal[1]) / 2 for f in spec.features}}


def test_inference_service_is_pinned_and_ready() -> None:
    obj = wait_ready()
    annotations = obj["metadata"]["annotations"]
    assert annotations[isvc.DEPLOYMENT_MODE_ANNOTATION] == isvc.DEPLOYMENT_MODE
    version = isvc.pinned_version(obj)
    assert version is not None
    assert annotations[isvc.MODEL_URI_ANNOTATION] == isvc.model_uri(PROJECT, version)


def test_predict_through_the_transformer() -> None:
    obj = wait_ready()
    with port_forward(f"svc/{PROJECT}-transformer", isvc.SERVICE_PORT) as base:
        response = httpx.post(
            f"{base}/v1/models/{PROJECT}:predict", json=die_casting_request(), timeout=30
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["prediction"]["class"] in {"defect", "ok"}
    assert 0.0 <= body["prediction"]["probability"] <= 1.0
    assert body["model_version"] == f"{PROJECT}/{isvc.pinned_version(obj)}"


def test_explain() -> None:
    wait_ready()
    with port_forward(f"svc/{PROJECT}-explainer", isvc.SERVICE_PORT) as base:
        response = httpx.post(
            f"{base}/v1/models/{PROJECT}:explain", json=die_casting_request(), timeout=120
        )
    assert response.status_code == 200, response.text
    assert response.json()["top_features"]


def test_bad_request_is_rejected_with_a_reason() -> None:
    wait_ready()
    with port_forward(f"svc/{PROJECT}-transformer", isvc.SERVICE_PORT) as base:
        response = httpx.post(
            f"{base}/v1/models/{PROJECT}:predict", json={"features": {}}, timeout=30
        )
    assert response.status_code == 400


def test_drift_job_runs_by_hand() -> None:
    job = f"e2e-drift-{int(time.time())}"
    kubectl("create", "job", f"--from=cronjob/{RELEASE}-drift-{PROJECT}", job)
    try:
        kubectl("wait", "--for=condition=complete", f"job/{job}", "--timeout=900s", timeout=960)
    finally:
        kubectl("delete", "job", job, "--wait=false")


def test_manual_retrain_is_answered() -> None:
    secret = json.loads(kubectl("get", "secret", f"{RELEASE}-collector-token", "-o", "json"))
    import base64

    token = base64.b64decode(secret["data"]["token"]).decode()
    with port_forward(f"svc/{RELEASE}-collector", 8080) as base:
        response = httpx.post(
            f"{base}/v1/retrain",
            json={"project": PROJECT, "reason": "manual"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
    assert response.status_code in (200, 202), response.text
    # The answer holds one decision per request (tests/support/retrain_answer.py).
    assert outcomes(response.json()) in (["started"], ["skipped"]), response.text
