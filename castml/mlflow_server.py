"""The embedded MLflow server: SQLite backend, local artifacts, loopback only.

Started as a detached process that outlives the CLI call (`castml mlflow up`),
with its PID and log under `$CASTML_HOME/mlflow/`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from castml.errors import CastmlError, MlflowUnavailableError


@dataclass(frozen=True)
class ServerLayout:
    """Where one embedded MLflow server keeps its state."""

    root: Path

    @property
    def database(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def pid_file(self) -> Path:
        return self.root / "server.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"


def server_command(layout: ServerLayout, host: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{layout.database}",
        "--artifacts-destination", str(layout.artifacts),
        "--serve-artifacts",
        "--host", host, "--port", str(port), "--workers", "1",
    ]  # fmt: skip


# What the chart's MLflow sets too (charts/castml/templates/mlflow.yaml): the rollout
# reconciler's webhook is a plain-http URL on loopback (a private IP in a cluster), which
# MLflow refuses by default ("Allowed schemes are: https"). Job execution spawns Huey
# workers: 2.4 GB -> 0.5 GB without them.
SERVER_ENV = {
    "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
    "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


def server_env() -> dict[str, str]:
    return {**os.environ, **SERVER_ENV}


def is_healthy(uri: str, timeout_s: float = 2.0) -> bool:
    try:
        return httpx.get(f"{uri}/health", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


def start(
    layout: ServerLayout, host: str, port: int, wait_s: float = 120.0
) -> subprocess.Popen[bytes]:
    """Start a server and wait for `/health`; the caller owns the process."""
    uri = f"http://{host}:{port}"
    if port_in_use(host, port):
        raise CastmlError(
            f"port {port} on {host} is taken by another process (set CASTML_MLFLOW_PORT)"
        )
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.artifacts.mkdir(exist_ok=True)
    with layout.log_file.open("ab") as log:
        process = subprocess.Popen(
            server_command(layout, host, port),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_env(),
            start_new_session=True,
        )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = layout.log_file.read_text(errors="replace")[-600:]
            raise MlflowUnavailableError(
                uri, f"server exited with {process.returncode}; log tail: {tail}"
            )
        if is_healthy(uri):
            layout.pid_file.write_text(str(process.pid))
            return process
        time.sleep(0.3)
    stop_process(process)
    raise MlflowUnavailableError(
        uri, f"no /health answer within {wait_s:.0f}s (log: {layout.log_file})"
    )


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def stop_recorded(layout: ServerLayout) -> bool:
    """Stop the server recorded in the PID file; False if none was running."""
    if not layout.pid_file.exists():
        return False
    pid = int(layout.pid_file.read_text().strip() or 0)
    layout.pid_file.unlink()
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)
    return True
