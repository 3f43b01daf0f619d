"""`GET /api/performance/{run_id}`: the holdout metrics and the served model's response time.

`response_time` is measured on the served model: the run's registered version is started
once with the platform's predictor (`python -m serving predictor`, pinned to that version,
on a free loopback port; kept for later calls, stopped with the studio) and timed over
`studio_latency_probes` v2 infer calls of one row, end to end over HTTP; the median is
reported, in ms. The row: for each input the predictor's metadata names, the value of the
upload's first row when the upload has that column, else a missing value (BYTES "") or 0
(e.g. the lag columns of an `lstm_seq` window: a stream's first impression).
With `studio_serve_models` false, the version's pyfunc is timed in process instead, and
`response_time_source` says which.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from castml.child_process import stop_child
from castml.errors import CastmlError
from studio.reports.service import Reports
from studio.settings import StudioSettings

SOURCE_ROOT = Path(__file__).resolve().parents[1]


class ServingFailedError(CastmlError):
    status_code = 502


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    project: str
    version: str
    url: str
    process: subprocess.Popen[bytes]
    request: dict[str, Any]


@dataclass
class ServedModels:
    settings: StudioSettings
    served: dict[tuple[str, str], Served] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, project: str, version: str, first_row: dict[str, Any]) -> Served:
        with self.lock:
            key = (project, version)
            served = self.served.get(key)
            if served is None or served.process.poll() is not None:
                served = self._start(project, version, first_row)
                self.served[key] = served
            return served

    def _start(self, project: str, version: str, first_row: dict[str, Any]) -> Served:
        port = _free_port()
        logs = self.settings.data_dir / "serving"
        logs.mkdir(parents=True, exist_ok=True)
        log = logs / f"predictor-{project}-{version}.log"
        env = {
            **os.environ,
            "CASTML_PROJECT": project,
            "CASTML_MODEL_VERSION": version,
            "CASTML_MLFLOW_URI": self.settings.tracking_uri,
            "CASTML_HOME": str(self.settings.home.resolve()),
        }
        args = [sys.executable, "-m", "serving", "predictor", "--http_port", str(port)]
        args += ["--model_name", project]
        with log.open("wb") as out:
            process = subprocess.Popen(
                args, cwd=SOURCE_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServingFailedError(
                    f"the predictor for {project} v{version} exited: "
                    f"{log.read_text(errors='replace')[-600:]}"
                )
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            process.terminate()
            raise ServingFailedError(f"the predictor for {project} v{version} never got ready")
        metadata = httpx.get(f"{url}/v2/models/{project}", timeout=10.0).json()
        return Served(project, version, url, process, one_row_request(metadata, first_row))

    def stop_all(self) -> None:
        with self.lock:
            for served in self.served.values():
                stop_child(served.process)
            self.served.clear()


def one_row_request(metadata: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """A v2 infer body of one row, one tensor per input the model's metadata names."""
    inputs = []
    for tensor in metadata.get("inputs", []):
        name, datatype = str(tensor["name"]), str(tensor["datatype"])
        value = row.get(name)
        shape = [1] if len(tensor.get("shape", [-1])) <= 1 else [1, 1]
        if datatype == "BYTES":
            data: list[Any] = ["" if value is None else str(value)]
        elif datatype == "BOOL":
            data = [bool(value)]
        else:
            number = float(value) if isinstance(value, int | float) else 0.0
            data = [int(number) if datatype.startswith(("INT", "UINT")) else number]
        inputs.append({"name": name, "datatype": datatype, "shape": shape, "data": data})
    return {"inputs": inputs}


def time_served(served: Served, probes: int) -> float:
    """Median ms of `probes` one-row infer calls (after one warm-up call)."""
    url = f"{served.url}/v2/models/{served.project}/infer"
    timings = []
    with httpx.Client(timeout=30.0) as client:
        for attempt in range(probes + 1):
            started = time.perf_counter()
            answer = client.post(url, json=served.request)
            elapsed = (time.perf_counter() - started) * 1000
            if answer.status_code != 200:
                raise ServingFailedError(
                    f"the served {served.project} v{served.version} refused the probe row: "
                    f"{answer.status_code} {answer.text[:300]}"
                )
            if attempt:
                timings.append(elapsed)
    return float(np.median(timings))


def time_pyfunc(settings: StudioSettings, project: str, version: str, row: dict[str, Any]) -> float:
    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model(f"models:/{project}/{version}")
    frame = pd.DataFrame([row])
    timings = []
    for attempt in range(settings.studio_latency_probes + 1):
        started = time.perf_counter()
        model.predict(frame)
        if attempt:
            timings.append((time.perf_counter() - started) * 1000)
    return float(np.median(timings))


def performance(
    reports: Reports, models: ServedModels, run_id: str, settings: StudioSettings
) -> dict[str, Any]:
    metrics, _ = reports.evaluation(run_id)
    status = reports.runs.status(run_id)
    record = reports.runs.record(run_id)
    version = str(status.get("model_version") or "")
    if not version:
        raise ServingFailedError(f"run {run_id} registered no model version")
    first_row = reports.uploads.answer(record["file_id"])["preview"][0]
    if settings.studio_serve_models:
        served = models.get(record["project"], version, first_row)
        response_ms = time_served(served, settings.studio_latency_probes)
        source = f"served predictor (v2 REST, {served.url}), median of one-row calls"
    else:
        response_ms = time_pyfunc(settings, record["project"], version, first_row)
        source = "the version's pyfunc in the studio process, median of one-row calls"
    return {
        "run_id": run_id,
        "model_version": version,
        "accuracy": metrics.get("accuracy"),
        "precision": metrics.get("precision"),
        "recall": metrics.get("recall"),
        "f1_score": metrics.get("f1"),
        "roc_auc": metrics.get("roc_auc"),
        "response_time": round(response_ms, 3),
        "response_time_source": source,
    }
