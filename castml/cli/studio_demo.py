"""`castml demo ctr`: the studio driven exactly as its frontend drives it.

1. MLflow (the embedded server unless CASTML_MLFLOW_URI names one) and the studio
   (`castml studio` on a free loopback port, with a one-off token);
2. the real Open Bandit sample written as the CSV a user would upload
   (`castml.data.open_bandit`), sent through `POST /api/upload`;
3. `POST /api/train` (a real kfp.local pipeline run, the `lstm_seq` family), its epochs and
   progress lines streamed to the terminal from `WS /ws/training/{run_id}`;
4. the AI report's summary and the PDF's path. On this data the honest answer is
   "no usable signal": the demo shows the platform saying so.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from typing import Any

import httpx

from castml.child_process import stop_child
from castml.cli.console import console
from castml.cli.local_processes import free_port, wait_ready
from castml.errors import CastmlError
from castml.settings import PipelineSettings

DEMO_CONFIG = {
    "epochs": 3,
    "batch_size": 256,
    "learning_rate": 3e-3,
    "lstm_hidden": 16,
    "mlp_hidden": 32,
    "dropout": 0.1,
}


def _check(answer: httpx.Response) -> dict[str, Any]:
    if answer.status_code >= 400:
        raise CastmlError(f"the studio answered {answer.status_code}: {answer.text[:500]}")
    body: dict[str, Any] = answer.json()
    return body


def _stream_training(ws_url: str) -> dict[str, Any]:
    """Print each message of the training socket until `training_complete`; returns it."""
    from websockets.sync.client import connect

    with connect(ws_url, open_timeout=30) as socket:
        while True:
            message = json.loads(socket.recv(timeout=3600))
            if message["type"] == "epoch_update":
                m = message["metrics"]  # train/val pairs; gbm reports train_loss only
                shown = "  ".join(
                    f"{name} {m.get('train_' + name, float('nan')):.4f}"
                    f"/{m.get('val_' + name, float('nan')):.4f}"
                    for name in ("loss", "accuracy")
                )
                console.print(
                    f"  epoch {message['epoch']}/{message['total_epochs']}  {shown}  (train/val)"
                )
            elif message["type"] == "log":
                console.print(f"  [dim]{message['message']}[/]")
            elif message["type"] == "training_complete":
                return dict(message)


def run_ctr_demo(settings: PipelineSettings) -> None:
    from castml.cli.mlflow_cmd import ensure_up
    from castml.data.open_bandit import write_upload

    uri = ensure_up(settings)
    home = settings.home.resolve()
    csv = write_upload(home / "demo" / "open_bandit_random_all.csv")
    port, token = free_port(), secrets.token_urlsafe(16)
    log = home / "demo" / "studio.log"
    env = {**os.environ, "CASTML_MLFLOW_URI": uri, "CASTML_STUDIO_TOKEN": token}
    console.rule("[bold]1. the studio[/] (castml studio, loopback, bearer token)")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "castml.cli.main", "studio", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
    try:
        wait_ready("studio", process, f"{url}/api/health", log, 120)
        console.print(f"studio on {url} (log {log})")
        console.rule("[bold]2. upload[/] (the Open Bandit sample, as a user's CSV)")
        with csv.open("rb") as data:
            uploaded = _check(
                httpx.post(
                    f"{url}/api/upload",
                    files={"file": (csv.name, data, "text/csv")},
                    headers=auth,
                    timeout=300,
                )
            )
        info = uploaded["info"]
        console.print(
            f"file {uploaded['file_id']}: {info['totalRows']} rows, {info['clickedOne']} clicks "
            f"(CTR {info['ctr']:.2%}); target '{uploaded['target']}'; "
            f"warnings: {'; '.join(uploaded['validation']['warnings']) or 'none'}"
        )
        console.rule("[bold]3. train[/] (a kfp.local pipeline run; epochs from MLflow)")
        started = time.monotonic()
        run = _check(
            httpx.post(
                f"{url}/api/train",
                json={"file_id": uploaded["file_id"], "config": DEMO_CONFIG},
                headers=auth,
                timeout=120,
            )
        )
        console.print(f"run_id {run['run_id']} (the MLflow run id)")
        done = _stream_training(f"ws://127.0.0.1:{port}/ws/training/{run['run_id']}")
        console.print(
            f"training {done['status']} in {time.monotonic() - started:.0f} s"
            + (f": {done['reason']}" if done.get("reason") else "")
        )
        if done["status"] != "completed":
            raise CastmlError(f"the training failed: {done.get('reason')}")
        console.rule("[bold]4. report[/]")
        report = _check(httpx.get(f"{url}/api/report/ai/{run['run_id']}", timeout=600))
        console.print(report["summary"])
        for line in report["actionPlan"]:
            console.print(f"  - {line}")
        _check(
            httpx.post(
                f"{url}/api/report/generate-pdf/{run['run_id']}",
                json={},
                headers=auth,
                timeout=600,
            )
        )
        from studio.settings import StudioSettings

        pdf = StudioSettings().data_dir / "runs" / run["run_id"] / "report.pdf"
        console.print(f"PDF: {pdf}  (also {url}/api/report/pdf/{run['run_id']})")
    finally:
        stop_child(process, grace_s=30)
