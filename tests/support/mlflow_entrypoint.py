"""MLflow started the way the chart starts it: `mlflow/entrypoint.sh` with the chart's environment.

    from tests.support.mlflow_entrypoint import EntrypointServer

    with EntrypointServer.start(pg.uri, tmp / "artifacts", log_file=tmp / "mlflow.log") as mlflow:
        mlflow.url      # http://127.0.0.1:<port>, answering /health

The environment is the MLflow container's, read from the chart's checked-in render
(`tests/fixtures/chart_golden/minimal.yaml`, which `tests/unit/test_chart.py` keeps equal to
`helm template`): allowed hosts, webhook schemes and private IPs, job execution off, workers.
Only what names a place changes: the backend store URI (the test's PostgreSQL, in the chart's
`postgresql://user:password@host:port/db` form), the artifacts folder, the port and HOME.
The script binds 0.0.0.0; a trailing `--host 127.0.0.1` (extra arguments go on to
`mlflow server`, and the last `--host` wins) keeps it on loopback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from castml.errors import MlflowUnavailableError
from castml.mlflow_server import is_healthy, stop_process
from tests.support.ports import free_port

__all__ = ["EntrypointServer", "chart_mlflow_env"]

REPO_ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO_ROOT / "mlflow" / "entrypoint.sh"
CHART_RENDER = REPO_ROOT / "tests" / "fixtures" / "chart_golden" / "minimal.yaml"
HOST = "127.0.0.1"
LOG_TAIL_CHARS = 3000
DATABASE_RETRY = "SQLAlchemy engine could not be created"  # MLflow's own warning


@cache
def chart_mlflow_env() -> dict[str, str]:
    """The MLflow container's literal env values in the chart (secret references left out)."""
    for doc in yaml.safe_load_all(CHART_RENDER.read_text()):
        if not _is_mlflow_deployment(doc):
            continue
        containers = doc["spec"]["template"]["spec"]["containers"]
        container = next(c for c in containers if c["name"] == "mlflow")
        return {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}
    raise LookupError(f"no MLflow Deployment in {CHART_RENDER}")


def _is_mlflow_deployment(doc: Any) -> bool:
    if not isinstance(doc, dict) or doc.get("kind") != "Deployment":
        return False
    labels = doc["metadata"].get("labels", {})
    return bool(labels.get("app.kubernetes.io/component") == "mlflow")


@dataclass
class EntrypointServer:
    """One `mlflow/entrypoint.sh` process; build it with `EntrypointServer.start()`."""

    url: str
    process: subprocess.Popen[bytes]
    log_file: Path
    artifacts: Path  # MLFLOW_ARTIFACTS_DESTINATION: where the proxy stores what clients log

    @classmethod
    def start(
        cls,
        backend_store_uri: str,
        artifacts: Path,
        *,
        log_file: Path,
        port: int | None = None,
        wait_s: float = 180.0,
    ) -> EntrypointServer:
        """Start the script and wait for `/health`; raises `MlflowUnavailableError` with the
        log tail if the server exits or does not answer in time."""
        port = port or free_port()
        url = f"http://{HOST}:{port}"
        chart_uri = chart_mlflow_env()["MLFLOW_BACKEND_STORE_URI"]
        if backend_store_uri.split("://")[0] != chart_uri.split("://")[0]:
            raise ValueError(f"the chart's backend is {chart_uri}; got {backend_store_uri}")
        home = log_file.parent / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **chart_mlflow_env(),
            "MLFLOW_BACKEND_STORE_URI": backend_store_uri,
            "MLFLOW_ARTIFACTS_DESTINATION": str(artifacts),
            "MLFLOW_PORT": str(port),
            "HOME": str(home),  # the chart's HOME is its own emptyDir at /tmp
            # The image puts `mlflow` on PATH; here it is the venv's.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        with log_file.open("ab") as log:
            process = subprocess.Popen(
                ["sh", str(ENTRYPOINT), "--host", HOST],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # stop_process signals the whole group (its workers)
            )
        server = cls(url, process, log_file, artifacts)
        try:
            server._wait_healthy(wait_s)
        except BaseException:
            server.stop()
            raise
        return server

    def stop(self) -> None:
        stop_process(self.process)

    def log_tail(self) -> str:
        return self.log_file.read_text(errors="replace")[-LOG_TAIL_CHARS:]

    def __enter__(self) -> EntrypointServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_healthy(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise MlflowUnavailableError(
                    self.url,
                    f"mlflow/entrypoint.sh exited with {self.process.returncode}; "
                    f"log tail:\n{self.log_tail()}",
                )
            if is_healthy(self.url):
                return
            if DATABASE_RETRY in self.log_tail():
                # MLflow retries its first connection for ~100 s, for a database still starting;
                # the tests' database is up before MLflow starts, so a refusal is final.
                self.stop()
                raise MlflowUnavailableError(
                    self.url, f"MLflow cannot use its backend store; log tail:\n{self.log_tail()}"
                )
            time.sleep(0.3)
        raise MlflowUnavailableError(
            self.url,
            f"no /health answer within {wait_s:.0f}s; log tail:\n{self.log_tail()}",
        )
