"""Start and stop local processes on 127.0.0.1: the serving roles (demo, benchmark, tests)
and the detached parts of `castml up`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from castml.child_process import stop_child

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # where `python -m serving` resolves


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    role: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    grpc_port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_child(self.process)


def start_server(
    role: str,
    env: dict[str, str],
    log_dir: Path,
    *,
    project: str = "diecast",
    grpc: bool = False,
    predictor: ServerProcess | None = None,
    timeout_s: float = 90.0,
    cwd: Path | None = None,
    workers: int = 1,
    predictor_protocol: str = "v2",
    python: Path | None = None,
    port: int | None = None,
    grpc_port: int | None = None,
    detach: bool = False,
    predictor_port: int | None = None,
) -> ServerProcess:
    """`python -m serving <role>` on free loopback ports; returns once it answers.

    `predictor_protocol="grpc-v2"`: the role calls `predictor` on its gRPC port.
    `python`: another venv's interpreter (e.g. `.venv-alibi`); nothing of this
    process's environment that points at its own venv reaches it. `port`/`grpc_port`:
    these ports rather than free ones. `detach`: its own session and a stable log name,
    so it outlives this process (`castml up`). `predictor_port`: a predictor this
    process did not start (REST).
    """
    port = port or free_port()
    grpc_port = (grpc_port or free_port()) if grpc else None
    child_env = {**os.environ, **env}
    if python is not None:
        for leak in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
            child_env.pop(leak, None)
    args = [
        str(python or sys.executable),
        "-m",
        "serving",
        role,
        "--http_port",
        str(port),
        "--model_name",
        project,
    ]
    if grpc_port:
        args += ["--grpc_port", str(grpc_port)]
    if workers > 1:
        args += ["--workers", str(workers)]
    if predictor and predictor_protocol == "grpc-v2":
        if not predictor.grpc_port:
            raise ValueError("grpc-v2 needs a predictor started with grpc=True")
        args += ["--predictor_host", f"127.0.0.1:{predictor.grpc_port}"]
        args += ["--predictor_protocol", predictor_protocol]
    elif predictor or predictor_port:
        args += ["--predictor_host", f"127.0.0.1:{predictor.port if predictor else predictor_port}"]
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / (f"{role}.log" if detach else f"{role}-{port}.log")
    process = spawn(args, child_env, log, cwd=cwd or SOURCE_ROOT, detach=detach)
    server = ServerProcess(role, port, process, log, grpc_port)
    probe = "/v2/health/ready" if role == "predictor" else "/v2/health/live"
    try:
        wait_ready(role, process, server.url + probe, log, timeout_s)
    except RuntimeError:
        server.stop()
        raise
    return server


def spawn(
    args: list[str], env: dict[str, str], log: Path, *, cwd: Path | None = None, detach: bool
) -> subprocess.Popen[bytes]:
    """Start `args` with stdout and stderr to `log` (appended when detached: a restart
    keeps the history)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab" if detach else "wb") as out:
        return subprocess.Popen(
            args,
            cwd=cwd or SOURCE_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=detach,
        )


def wait_ready(
    name: str, process: subprocess.Popen[bytes], probe_url: str, log: Path, timeout_s: float
) -> None:
    """Until `probe_url` answers 200; RuntimeError with the log's tail if it exits or stalls."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{name} exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            if httpx.get(probe_url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{name} not ready after {timeout_s}s:\n{log.read_text()[-3000:]}")
