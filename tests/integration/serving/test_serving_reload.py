"""Version switches through the repository load API: under load with zero failures, and
refusal of versions that fail to load or to predict, while the old one keeps serving."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from castml.cli.local_processes import start_server
from castml.spec import ProjectSpec
from serving.version_store import smoke_rows
from tests.integration.serving.conftest import Server
from tests.unit.serving.support import BROKEN_VERSION, WRONG_FEATURES_VERSION

pytestmark = pytest.mark.integration


def infer_body(spec: ProjectSpec) -> dict[str, object]:
    return {
        "inputs": [
            {
                "name": "x",
                "datatype": "FP32",
                "shape": [2, 30],
                "data": smoke_rows(spec).ravel().tolist(),
            }
        ]
    }


def load(server: Server, version: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v2/repository/models/diecast/load",
        json={"parameters": {"version": version}},
        timeout=60,
    )


def test_switch_under_concurrent_load_has_zero_failures(
    own_predictor: Server, spec: ProjectSpec
) -> None:
    body = infer_body(spec)
    statuses: Counter[int] = Counter()
    versions: Counter[str] = Counter()
    stop = threading.Event()
    lock = threading.Lock()

    def hammer() -> None:
        with httpx.Client(base_url=own_predictor.url, timeout=30) as client:
            while not stop.is_set():
                response = client.post("/v2/models/diecast/infer", json=body)
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code == 200:
                        versions[response.json()["model_version"]] += 1
                        assert (
                            response.headers["x-model-version"] == response.json()["model_version"]
                        )

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        switched = load(own_predictor, "2")
        assert switched.status_code == 200, switched.text
        assert switched.json()["version"] == "2" and switched.json()["previous_version"] == "1"
        time.sleep(0.5)
        back = load(own_predictor, "champion")  # an alias resolves to a number when loaded
        assert back.json()["version"] == "1"
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert set(statuses) == {200}, statuses
    assert versions["1"] > 0 and versions["2"] > 0


@pytest.mark.parametrize(
    ("version", "reason"),
    [(BROKEN_VERSION, "failed to load"), (WRONG_FEATURES_VERSION, "other features")],
)
def test_bad_version_is_refused_and_the_old_keeps_serving(
    own_predictor: Server, spec: ProjectSpec, version: str, reason: str
) -> None:
    refused = load(own_predictor, version)
    assert refused.status_code == 422 and reason in refused.json()["error"]
    response = httpx.post(f"{own_predictor.url}/v2/models/diecast/infer", json=infer_body(spec))
    assert response.status_code == 200 and response.json()["model_version"] == "1"
    index = httpx.post(f"{own_predictor.url}/v2/repository/index").json()
    assert index == [{"name": "diecast", "version": "1", "state": "READY"}]


def test_same_version_is_a_no_op(own_predictor: Server) -> None:
    response = load(own_predictor, "1")
    assert response.status_code == 200 and response.json()["switched"] is False


def test_a_load_reaches_every_worker_process(
    store_env: dict[str, str], spec: ProjectSpec, tmp_path: Path
) -> None:
    """With `--workers 2` the load call lands in one process; both must switch."""
    server = start_server("predictor", store_env, tmp_path, workers=2)
    body = infer_body(spec)
    try:
        switched = load(server, "2")
        assert switched.status_code == 200, switched.text
        # Each worker reports the version it serves after its own load; this is the check
        # that fails without the shared pin (the kernel tends to hand every new connection
        # to the same worker, so the traffic below alone would not tell).
        assert switched.json()["workers"] == {"serving": 2, "of": 2}
        served: Counter[str] = Counter()
        for _ in range(40):  # a fresh connection each time, so both workers are asked
            with httpx.Client(base_url=server.url, timeout=30) as client:
                response = client.post("/v2/models/diecast/infer", json=body)
            assert response.status_code == 200, response.text
            served[response.json()["model_version"]] += 1
        assert served == {"2": 40}
    finally:
        server.stop()
