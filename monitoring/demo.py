"""The monitoring half of `castml demo`: traffic -> collector -> drift job -> retrain policy.

Normal shots, then shots from the generator's `sensor_degradation` scenario, are
scored by the version behind @champion and sent to a real collector process as the
KServe logger's CloudEvents (through `castml.events`, as the embedded serving side
does). Delayed labels follow on `/v1/feedback`. The drift job then compares the
window with the champion's reference, and the policy, with the launcher the CLI
passes in, decides the retrain; a started run registers a new @challenger whose
`castml.retrain_reason` is `drift`.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from castml import registry
from castml.data.diecast import generate
from castml.events import EventSender
from castml.runtime.ae_gbm import AeGbmModel
from castml.spec import load_spec
from monitoring.drift import DriftResult
from monitoring.drift_job import run_drift
from monitoring.policy import Decision, PipelineLauncher, RetrainPolicy, RetrainRequest
from monitoring.settings import DriftSettings

SCENARIO = "sensor_degradation"
NORMAL_ROWS, DRIFTED_ROWS = 300, 900  # drifted rows dominate the one-day window
LABELED_SHARE = 0.6  # labels that "came back from inspection" before the drift job ran


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class CollectorHandle:
    process: subprocess.Popen[bytes]
    url: str
    token: str

    def client(self) -> httpx.Client:
        auth = {"authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.url, headers=auth, timeout=30)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels`."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


def start_collector(home: Path, tracking_uri: str) -> CollectorHandle:
    """`python -m monitoring collector` on loopback with a fresh token; waits for /healthz."""
    port, token = _free_port(), secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "CASTML_HOME": str(home),
        "CASTML_MLFLOW_URI": tracking_uri,
        "CASTML_COLLECTOR_TOKEN": token,
        "CASTML_COLLECTOR_FLUSH_S": "0.5",
    }
    env.pop("CASTML_RETRAIN_TOKEN", None)  # the demo asks the policy itself
    home.mkdir(parents=True, exist_ok=True)
    log = (home / "collector.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "monitoring", "collector", "--port", str(port)],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        stdout=log,
        stderr=log,
    )
    handle = CollectorHandle(process, f"http://127.0.0.1:{port}", token)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"collector exited ({process.returncode}); see {home}/collector.log")
        try:
            if httpx.get(f"{handle.url}/healthz", timeout=2).status_code == 200:
                return handle
        except httpx.TransportError:
            time.sleep(0.1)
    handle.stop()
    raise RuntimeError("collector did not answer /healthz within 60 s")


def champion_model(tracking_uri: str, project: str, dest: Path) -> tuple[str, AeGbmModel]:
    client = registry.client(tracking_uri)
    version = registry.resolve_version(client, project, f"@{registry.CHAMPION}")
    directory = registry.download_model_dir(project, version.version, dest, tracking_uri)
    return str(version.version), AeGbmModel.load(directory)


def send_traffic(
    sender: EventSender,
    model: AeGbmModel,
    project: str,
    version: str,
    rows: int,
    seed: int,
    scenario: str,
) -> dict[str, int]:
    """One shot per request (a label then belongs to one row); returns {request id: defect}."""
    frame = generate(rows, seed, scenario, severity=2.0)
    x = frame[model.features].to_numpy(dtype=np.float32)
    out = model.predict(x)
    truth: dict[str, int] = {}
    for i in range(rows):
        request_id = f"{scenario}-{uuid.uuid4().hex[:12]}"
        request = {"inputs": [{"name": "input-0", "shape": [1, x.shape[1]],
                               "datatype": "FP32", "data": x[i].tolist()}]}  # fmt: skip
        response = {
            "model_name": project,
            "model_version": version,
            "id": request_id,
            "outputs": [
                {"name": "probability", "shape": [1], "datatype": "FP32",
                 "data": [float(out["probability"][i])]},
                {"name": "label", "shape": [1], "datatype": "INT64",
                 "data": [int(out["label"][i])]},
            ],
        }  # fmt: skip
        sender.emit_request(request_id, orjson.dumps(request))
        sender.emit_response(request_id, orjson.dumps(response))
        truth[request_id] = int(frame["defect"].iloc[i])
    return truth


def post_labels(collector: CollectorHandle, truth: dict[str, int], share: float, seed: int) -> int:
    """The delayed ground truth for a random `share` of the requests, in batches."""
    rng = np.random.default_rng(seed)
    chosen = [rid for rid in truth if rng.random() < share]
    with collector.client() as client:
        for start in range(0, len(chosen), 200):
            batch = [{"request_id": r, "label": truth[r]} for r in chosen[start : start + 200]]
            client.post("/v1/feedback", json=batch).raise_for_status()
    return len(chosen)


def wait_written(
    collector: CollectorHandle, rows: int, labels: int, timeout_s: float = 120
) -> None:
    deadline = time.monotonic() + timeout_s
    written = "castml_collector_rows_written_total"
    while time.monotonic() < deadline:
        if (
            collector.metric(written, kind="inference") >= rows
            and collector.metric(written, kind="feedback") >= labels
        ):
            return
        time.sleep(0.2)
    raise RuntimeError(f"the collector did not write {rows} rows within {timeout_s:.0f} s")


def decide_retrain(policy: RetrainPolicy, result: DriftResult) -> Decision | None:
    """A drift request with its evidence when the dataset drifted; None otherwise."""
    if not result.dataset_drift:
        return None
    evidence: dict[str, Any] = {
        "rows": result.rows["current"],
        "drift_share": result.drift_share,
        "drift_run_id": result.mlflow_run_id,
        "drifted": sorted(n for n, f in result.features.items() if f.drifted),
    }
    request = RetrainRequest(
        result.project, "drift", result.report_uri, evidence, requested_by="castml demo"
    )
    return policy.decide(request)


def show_drift(console: Console, result: DriftResult, tracking_uri: str) -> None:
    verdict = "[bold red]DRIFT[/]" if result.dataset_drift else "[green]no dataset drift[/]"
    console.print(
        f"{verdict}: {result.drift_share or 0:.0%} of features drifted over "
        f"{result.rows['current']} rows ({result.rows.get('labeled', 0)} labeled)"
    )
    table = Table("feature", "score (p-value)", "drifted", title="drifted features")
    for name, feature in sorted(result.features.items(), key=lambda kv: kv[1].score):
        if feature.drifted:
            table.add_row(name, f"{feature.score:.2e}", "yes")
    console.print(table)
    if result.performance:
        console.print(
            "realised: " + ", ".join(f"{k} {v:.3f}" for k, v in result.performance.items())
        )
    console.print(f"report: {result.report_uri}")
    console.print(f"MLflow: {tracking_uri}/#/runs/{result.mlflow_run_id}")


def show_challenger(console: Console, tracking_uri: str, project: str) -> None:
    client = registry.client(tracking_uri)
    found = registry.alias_version(client, project, registry.CHALLENGER)
    if found is None:
        console.print("[yellow]no @challenger yet[/]")
        return
    reason = (found.tags or {}).get(registry.TAG_RETRAIN_REASON, "?")
    console.print(
        f"new [bold]@challenger[/]: {project} version {found.version}, "
        f"castml.retrain_reason = [bold]{reason}[/]; move @champion in the MLflow UI to serve it"
    )


def run_monitoring_demo(
    tracking_uri: str,
    project: str,
    home: Path,
    transformer_url: str | None,
    launcher: PipelineLauncher,
    console: Console | None = None,
) -> None:
    """Normal then drifted traffic, labels, drift job, policy decision, retrain."""
    console = console or Console()
    home = home.resolve()
    console.rule("[bold]monitoring")
    if transformer_url:
        console.print(f"serving at {transformer_url}; the demo emits the logger's events itself")
    collector = start_collector(home, tracking_uri)
    try:
        with tempfile.TemporaryDirectory(prefix="castml-demo-") as tmp:
            version, model = champion_model(tracking_uri, project, Path(tmp))
        console.print(
            f"collector on {collector.url}; scoring with {project} v{version} (@champion)"
        )
        with EventSender(f"{collector.url}/", project, collector.token, workers=2) as sender:
            truth = send_traffic(sender, model, project, version, NORMAL_ROWS, 101, "none")
            console.print(f"sent {NORMAL_ROWS} normal shots")
            truth |= send_traffic(sender, model, project, version, DRIFTED_ROWS, 202, SCENARIO)
            console.print(f"sent {DRIFTED_ROWS} shots from the '{SCENARIO}' scenario")
            sender.flush(120)
            stats = sender.stats()
        console.print(
            f"events acknowledged {stats.sent}, refused {stats.refused}, rejected {stats.rejected}"
        )
        labels = post_labels(collector, truth, LABELED_SHARE, 303)
        console.print(f"posted {labels} delayed labels to /v1/feedback")
        wait_written(collector, len(truth), labels)
    finally:
        collector.stop()

    settings = DriftSettings.model_validate({"home": home, "mlflow_uri": tracking_uri})
    console.print("running the drift job (Evidently) over the last day ...")
    result = run_drift(project, "1d", settings)
    show_drift(console, result, tracking_uri)

    policy = RetrainPolicy(load_spec, launcher, home / "retrain")
    attach = getattr(launcher, "attach", None)
    if callable(attach):
        attach(policy)  # the background launcher reports the run's end to the policy
    decision = decide_retrain(policy, result)
    if decision is None:
        console.print("policy: no drift, no retrain")
        return
    color = {"started": "green", "skipped": "yellow"}.get(decision.outcome, "red")
    console.print(f"policy: [{color}]{decision.outcome}[/] ({decision.reason}): {decision.detail}")
    wait = getattr(launcher, "wait", None)
    if decision.outcome == "started" and callable(wait):
        console.print("retraining (kfp.local) ...")
        wait()
        console.print(f"run: {policy.history(project)[-1]['detail']}")
        show_challenger(console, tracking_uri, project)
