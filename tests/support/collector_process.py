"""A real collector in a subprocess on 127.0.0.1, and the client side the tests use."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from castml.cli.logger_cloudevents import binary_event, structured_event, v2_request, v2_response
from castml.data.diecast import generate
from castml.spec import load_spec
from tests.support.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token"
FEATURES = load_spec("diecast").feature_names


def limit_file_size(max_bytes: int) -> Callable[[], None]:
    """preexec_fn: a full disk for this process (writes past `max_bytes` fail with EFBIG)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return apply


class CollectorProcess:
    def __init__(self, home: Path, **env: str) -> None:
        self.home = home
        self.port = free_port()
        self.env = {
            **os.environ,
            "CASTML_HOME": str(home),
            "CASTML_COLLECTOR_TOKEN": TOKEN,
            "CASTML_COLLECTOR_FLUSH_S": "0.2",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )

    def start(self, preexec: Callable[[], None] | None = None) -> CollectorProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "castml.cli.main", "collector", "run", "--port", str(self.port)],
            cwd=REPO_ROOT,
            env=self.env,
            preexec_fn=preexec,
        )
        deadline = time.monotonic() + 90  # a loaded 2-core machine: the CLI imports take seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"collector exited with {self.process.returncode}")
            try:
                if self.client.get("/healthz").status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.kill()  # never leave a half-started collector behind
        raise RuntimeError("collector did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def post(self, headers: dict[str, str], body: bytes, path: str = "/") -> httpx.Response:
        return self.client.post(path, headers=headers, content=body)

    def metric(self, name: str) -> float:
        total = 0.0
        for line in self.client.get("/metrics").text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                head, value = line.rsplit(" ", 1)
                if head == name or head.startswith(name + "{"):
                    total += float(value)
        return total

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            time.sleep(0.1)


def shots(n: int, seed: int = 0) -> np.ndarray:
    return generate(n, seed)[FEATURES].to_numpy()


def pair(
    event_id: str, rows: int = 1, seed: int = 0, version: str = "1", structured: bool = False
) -> tuple[tuple[dict[str, str], bytes], tuple[dict[str, str], bytes]]:
    """(request event, response event) for `rows` generated shots."""
    make = structured_event if structured else binary_event
    values = shots(rows, seed)
    probability = np.linspace(0.05, 0.95, rows)
    request = make("request", event_id, "diecast", v2_request(values, FEATURES))
    response = make(
        "response", event_id, "diecast", v2_response(probability, "diecast", version, event_id)
    )
    return request, response


def read_logs(home: Path, group: str = "1", project: str = "diecast") -> pd.DataFrame:
    """Every Parquet file of a partition group; reading each proves none is corrupt."""
    files = sorted((home / "logs" / project / group).glob("date=*/*.parquet"))
    if not files:
        return pd.DataFrame()
    return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)


def stray_files(home: Path) -> list[Any]:
    return [p for p in (home / "logs").rglob(".*.tmp")] if (home / "logs").exists() else []
