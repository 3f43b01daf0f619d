"""The studio for real: `castml studio` (uvicorn) on a free loopback port, the session's
MLflow server, Open Bandit uploads through /api/upload, one small pipeline run.

The studio is started with a token (write endpoints need it), the response-time alert
threshold lowered to 0.001 ms (so the served model's real latency passes it) and fast
polling. `trained` runs one training of the Open Bandit upload (epochs 3) while a
WebSocket client listens from the start, a second training request for the same file is
sent at once, and a third client drops after its first message; after the run, a late
client connects.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.support.ports import free_port

TOKEN = "studio-test-token"
EPOCHS = 3
OBD_ROWS = 5000
# lstm_seq: the family; the draft names it for an upload with streams.
FAMILY = os.environ.get("CASTML_TEST_STUDIO_FAMILY", "lstm_seq")
RUN_TIMEOUT_S = 900


@dataclass
class Studio:
    url: str
    home: Path
    log: Path

    @property
    def ws(self) -> str:
        return self.url.replace("http://", "ws://")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    def upload(self, name: str, content: bytes, **kwargs: Any) -> httpx.Response:
        return httpx.post(
            f"{self.url}/api/upload",
            files={"file": (name, content, "text/csv")},
            headers=kwargs.pop("headers", self.auth),
            timeout=120,
            **kwargs,
        )


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the studio exited {process.returncode}: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the studio never answered: {log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def studio(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    home = tmp_path_factory.mktemp("studio-home")
    port = free_port()
    env = {
        **os.environ,
        "CASTML_HOME": str(home),
        "CASTML_MLFLOW_URI": mlflow_server,
        "CASTML_STUDIO_TOKEN": TOKEN,
        "CASTML_STUDIO_FAMILY": FAMILY,
        "CASTML_STUDIO_POLL_S": "0.2",
        "CASTML_STUDIO_MAX_UPLOAD_BYTES": str(3_000_000),
        "CASTML_STUDIO_RESPONSE_ALERT_MS": "0.001",
        "CASTML_STUDIO_METRICS_INTERVAL_S": "0.3",
        "CASTML_STUDIO_LATENCY_PROBES": "3",
    }
    with launch_studio(home, port, env) as studio:
        yield studio


@contextlib.contextmanager
def launch_studio(home: Path, port: int, env: dict[str, str]) -> Iterator[Studio]:
    """`castml studio` on `port` with `env`, until the block ends."""
    log = home / "studio.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "castml.cli.main", "studio", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield Studio(url, home, log)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="session")
def open_bandit_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Open Bandit 'random / men' sample as a user uploads it, its first
    `OBD_ROWS` impressions (in time order as shipped): the fewest whose time-ordered
    train, validation and test parts each hold clicks, to keep the pipeline run short."""
    from castml.data.open_bandit import write_upload

    path = write_upload(
        tmp_path_factory.mktemp("obd") / "open_bandit_men.csv", (("random", "men"),)
    )
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[: OBD_ROWS + 1]))
    return path


@pytest.fixture(scope="session")
def open_bandit_upload(studio: Studio, open_bandit_csv: Path) -> dict[str, Any]:
    answer = studio.upload(open_bandit_csv.name, open_bandit_csv.read_bytes())
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["validation"]["isValid"], body["validation"]
    return body


def listen(url: str, into: list[dict[str, Any]], stop_after: int | None = None) -> None:
    """Collect a WebSocket's messages until `training_complete` (or `stop_after` of them)."""
    with connect(url, open_timeout=30, close_timeout=5) as socket:
        while True:
            message = json.loads(socket.recv(timeout=RUN_TIMEOUT_S))
            into.append(message)
            if message["type"] == "training_complete":
                return
            if stop_after is not None and len(into) >= stop_after:
                return  # leaving mid-stream: the socket closes here


@dataclass
class Trained:
    run_id: str
    file_id: str
    second: httpx.Response
    early: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    late: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="session")
def trained(studio: Studio, open_bandit_upload: dict[str, Any]) -> Trained:
    file_id = open_bandit_upload["file_id"]
    body = {
        "file_id": file_id,
        "config": {"epochs": EPOCHS, "batch_size": 512, "lstm_hidden": 8, "mlp_hidden": 8},
    }
    first = httpx.post(f"{studio.url}/api/train", json=body, headers=studio.auth, timeout=60)
    assert first.status_code == 200, first.text
    run_id = first.json()["run_id"]
    second = httpx.post(f"{studio.url}/api/train", json=body, headers=studio.auth, timeout=60)
    trained = Trained(run_id, file_id, second)
    socket_url = f"{studio.ws}/ws/training/{run_id}"
    early = threading.Thread(target=listen, args=(socket_url, trained.early))
    early.start()
    listen(socket_url, trained.dropped, stop_after=1)
    early.join(RUN_TIMEOUT_S)
    assert not early.is_alive(), "the training never completed"
    listen(socket_url, trained.late)
    return trained
