"""Version switches through the repository load API: under load with zero failures (from a
local store, and from the registry on each backend store as @champion moves), and refusal of
versions that fail to load or to predict, while the old one keeps serving."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from castml import registry
from castml.cli.local_processes import start_server
from castml.protocol.mlflow_names import CHAMPION
from castml.spec import ProjectSpec
from serving.version_store import smoke_rows
from tests.conftest import RegisteredProject
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


@dataclass
class Traffic:
    """What the clients of `steady_traffic` got back."""

    statuses: Counter[int] = field(default_factory=Counter)  # 0: a dropped connection
    versions: Counter[str] = field(default_factory=Counter)  # model_version of each 200
    header_mismatches: int = 0  # x-model-version differing from the body's model_version
    changed: threading.Condition = field(default_factory=threading.Condition)

    def record(self, response: httpx.Response | None) -> None:
        with self.changed:
            self.statuses[response.status_code if response is not None else 0] += 1
            if response is not None and response.status_code == 200:
                version = response.json()["model_version"]
                self.versions[version] += 1
                self.header_mismatches += response.headers["x-model-version"] != version
            self.changed.notify_all()

    def wait_answers(self, count: int, timeout_s: float = 60.0) -> None:
        """Block until `count` more answers come back, so that traffic spans each step."""
        with self.changed:
            target = self.statuses.total() + count
            if not self.changed.wait_for(lambda: self.statuses.total() >= target, timeout_s):
                raise AssertionError(f"the predictor stopped answering: {self.statuses}")


@contextmanager
def steady_traffic(url: str, body: dict[str, object], clients: int = 4) -> Iterator[Traffic]:
    """`clients` threads posting `body` to the predictor back to back until the block ends."""
    traffic = Traffic()
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                try:
                    traffic.record(client.post("/v2/models/diecast/infer", json=body))
                except httpx.TransportError:
                    traffic.record(None)

    threads = [threading.Thread(target=hammer) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield traffic
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def test_switch_under_concurrent_load_has_zero_failures(
    own_predictor: Server, spec: ProjectSpec
) -> None:
    with steady_traffic(own_predictor.url, infer_body(spec)) as traffic:
        traffic.wait_answers(50)
        switched = load(own_predictor, "2")
        assert switched.status_code == 200, switched.text
        assert switched.json()["version"] == "2" and switched.json()["previous_version"] == "1"
        traffic.wait_answers(50)
        back = load(own_predictor, "champion")  # an alias resolves to a number when loaded
        assert back.json()["version"] == "1"
        traffic.wait_answers(50)
    assert set(traffic.statuses) == {200}, traffic.statuses
    assert traffic.versions["1"] > 0 and traffic.versions["2"] > 0
    assert traffic.header_mismatches == 0


def test_champion_alias_move_is_served_live_under_traffic(
    registered_on_each_backend: RegisteredProject, spec: ProjectSpec, tmp_path: Path
) -> None:
    """A predictor serving @champion from the registry follows the alias as it moves and back,
    with every request answered, on SQLite and on PostgreSQL."""
    project = registered_on_each_backend
    first, second = (str(v) for v in project.versions)
    client = registry.client(project.uri)
    env = {
        "CASTML_MLFLOW_URI": project.uri,
        "CASTML_HOME": str(tmp_path),
        "CASTML_MODEL_VERSION": CHAMPION,
    }
    server = start_server("predictor", env, tmp_path / "logs")
    try:
        with steady_traffic(server.url, infer_body(spec)) as traffic:
            traffic.wait_answers(50)
            for before, after in ((first, second), (second, first)):
                client.set_registered_model_alias(project.project, CHAMPION, after)
                moved = load(server, CHAMPION)
                assert moved.status_code == 200, moved.text
                assert (moved.json()["version"], moved.json()["previous_version"]) == (
                    after,
                    before,
                )
                answer = httpx.post(f"{server.url}/v2/models/diecast/infer", json=infer_body(spec))
                assert answer.json()["model_version"] == after
                traffic.wait_answers(50)
    finally:
        client.set_registered_model_alias(project.project, CHAMPION, first)
        server.stop()
    assert set(traffic.statuses) == {200}, traffic.statuses
    assert traffic.versions[first] > 0 and traffic.versions[second] > 0
    assert traffic.header_mismatches == 0


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
