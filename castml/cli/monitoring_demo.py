"""The monitoring half of `castml demo`: traffic -> collector -> drift job -> retrain policy.

A real collector starts first; then a predictor and a transformer (the caller's
`serve`: monitoring never imports serving) with their payload logger pointed at it,
as KServe's logger sidecar is in a cluster. Normal shots, then shots from the
generator's `sensor_degradation` scenario, go to the transformer's public endpoint,
one shot per request; the predictor logs each one. Once the collector has written every
row, the delayed labels follow on `/v1/feedback`, keyed by the `request_id`s the
transformer answered (the ids the predictor logged under). The drift job then compares
the predictor's rows in the window with the champion's reference and files the retrain
request itself, with its result as the evidence; the policy, with the launcher the CLI
passes in, decides it. A started run registers a new @challenger whose
`castml.retrain_reason` is `drift`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from castml import registry
from castml.cli.local_processes import free_port
from castml.data.diecast import generate
from castml.data.provenance import TAG_PREFIX
from castml.spec import load_spec
from monitoring.drift import DriftResult
from monitoring.drift_job import run_drift
from monitoring.policy import PipelineLauncher, RetrainPolicy
from monitoring.retrain_filing import InProcessFiler
from monitoring.settings import DriftSettings
from monitoring.training_set import LoggedTrainingData, describe

SCENARIO = "sensor_degradation"
NORMAL_ROWS, DRIFTED_ROWS = 300, 900  # drifted rows dominate the one-day window
LABELED_SHARE = 0.6  # labels that "came back from inspection" before the drift job ran
CONCURRENCY = 8  # requests in flight at once against the transformer


@dataclass(frozen=True)
class LoggedServing:
    """Serving that logs to the demo's collector: where to send traffic, whom to ask."""

    transformer_url: str  # the public endpoint
    loggers: dict[str, str]  # component -> base URL; /metrics counts its payload events


# (collector ingest URL, its token) -> a running predictor + transformer logging there.
ServeWithLogger = Callable[[str, str], AbstractContextManager[LoggedServing]]


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
    """`castml collector run` on loopback with a fresh token; waits for /healthz."""
    port, token = free_port(), secrets.token_urlsafe(24)
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
        [sys.executable, "-m", "castml.cli.main", "collector", "run", "--port", str(port)],
        cwd=Path(__file__).resolve().parents[2],
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


@dataclass
class Traffic:
    truth: dict[str, int]  # request id the transformer answered -> the shot's true label
    versions: Counter[str]  # model_version answered -> requests


async def _post_all(url: str, path: str, bodies: list[bytes]) -> list[dict[str, Any]]:
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(body: bytes) -> dict[str, Any]:
            async with gate:
                answer = await client.post(
                    path, content=body, headers={"content-type": "application/json"}
                )
            if answer.status_code != 200:
                raise RuntimeError(f"the transformer answered {answer.status_code}: {answer.text}")
            result: dict[str, Any] = answer.json()
            return result

        return await asyncio.gather(*(one(b) for b in bodies))


def send_traffic(
    transformer_url: str, project: str, rows: int, seed: int, scenario: str
) -> Traffic:
    """`rows` shots to the transformer, one per request (a label then belongs to one row)."""
    spec = load_spec(project)
    frame = generate(rows, seed, scenario, severity=2.0)
    x = frame[spec.feature_names].to_numpy(dtype=np.float64)
    # The body a quality engineer's client sends: {"features": {name: value, ...}}.
    bodies = [
        orjson.dumps({"features": dict(zip(spec.feature_names, r, strict=True))})
        for r in x.tolist()
    ]
    answers = asyncio.run(_post_all(transformer_url, f"/v1/models/{project}:predict", bodies))
    labels = frame[spec.target].astype(int).tolist()
    return Traffic(
        truth={a["request_id"]: y for a, y in zip(answers, labels, strict=True)},
        versions=Counter(a["model_version"] for a in answers),
    )


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
    """Until the collector's /metrics shows `rows` inference rows and `labels` labels written."""
    deadline = time.monotonic() + timeout_s
    written = "castml_collector_rows_written_total"
    while time.monotonic() < deadline:
        if (
            collector.metric(written, kind="inference") >= rows
            and collector.metric(written, kind="feedback") >= labels
        ):
            return
        time.sleep(0.2)
    raise RuntimeError(
        f"the collector did not write {rows} rows and {labels} labels within {timeout_s:.0f} s"
    )


def logger_counts(url: str) -> dict[str, int]:
    """A server's payload-logger counters (castml_logger_events_*_total) from its /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    prefix, suffix = "castml_logger_events_", "_total"
    counts: dict[str, int] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name.startswith(prefix) and sample.name.endswith(suffix):
                name = sample.name.removeprefix(prefix).removesuffix(suffix)
                counts[name] = counts.get(name, 0) + int(sample.value)
    return counts


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
    versions = registry.list_versions(client, project)
    newest = versions[-1] if versions else None
    if newest is not None and not newest.aliases:
        # The retrain registered a version, and its gate kept @challenger where it was.
        console.print(
            f"[yellow]version {newest.version} did not become @challenger[/]: "
            f"gate {newest.gate or '?'}"
        )
        return
    found = registry.alias_version(client, project, registry.CHALLENGER)
    if found is None:
        console.print("[yellow]no @challenger yet[/]")
        return
    tags = found.tags or {}
    reason = tags.get(registry.TAG_RETRAIN_REASON, "?")
    console.print(
        f"new [bold]@challenger[/]: {project} version {found.version}, "
        f"castml.retrain_reason = [bold]{reason}[/]; move @champion in the MLflow UI to serve it"
    )
    champion = registry.alias_version(client, project, registry.CHAMPION)
    before = ((champion.tags or {}) if champion else {}).get(registry.TAG_DATA_HASH, "?")
    source = tags.get(f"{TAG_PREFIX}source", "?")
    logged = tags.get(f"{TAG_PREFIX}logged_rows", "0")
    partitions = tags.get(f"{TAG_PREFIX}partitions", "-")
    console.print(
        f"trained on {source} ({logged} logged rows from {partitions}); "
        f"data hash {tags.get(registry.TAG_DATA_HASH, '?')[:12]} vs the champion's {before[:12]}"
    )


def run_monitoring_demo(
    tracking_uri: str,
    project: str,
    home: Path,
    serve: ServeWithLogger,
    launcher: PipelineLauncher,
    console: Console | None = None,
) -> None:
    """Normal then drifted traffic through serving, labels, drift job, policy, retrain."""
    console = console or Console()
    home = home.resolve()
    console.rule("[bold]monitoring")
    collector = start_collector(home, tracking_uri)
    try:
        with serve(f"{collector.url}/", collector.token) as serving:
            console.print(
                f"collector on {collector.url}; traffic to the transformer at "
                f"{serving.transformer_url}; {' and '.join(serving.loggers)} log to the collector"
            )
            traffic = send_traffic(serving.transformer_url, project, NORMAL_ROWS, 101, "none")
            console.print(f"sent {NORMAL_ROWS} normal shots")
            drifted = send_traffic(serving.transformer_url, project, DRIFTED_ROWS, 202, SCENARIO)
            console.print(f"sent {DRIFTED_ROWS} shots from the '{SCENARIO}' scenario")
            truth = traffic.truth | drifted.truth
            served = ", ".join(
                f"{v} ({n})" for v, n in (traffic.versions + drifted.versions).items()
            )
            console.print(f"answered by {served}")
            # Every request is logged once by each logging server: wait for all of it.
            wait_written(collector, len(serving.loggers) * len(truth), 0)
            for component, url in serving.loggers.items():
                counts = logger_counts(url)
                console.print(
                    f"{component} payload events: sent {counts.get('sent', 0)}, "
                    f"refused {counts.get('refused', 0)}, rejected {counts.get('rejected', 0)}"
                )
        labels = post_labels(collector, truth, LABELED_SHARE, 303)
        console.print(f"posted {labels} delayed labels to /v1/feedback (the transformer's ids)")
        wait_written(collector, len(serving.loggers) * len(truth), labels)
    finally:
        collector.stop()

    settings = DriftSettings.model_validate({"home": home, "mlflow_uri": tracking_uri})
    # The retrain learns from what serving saw: the labelled rows just logged join the
    # spec's source (monitoring/training_set.py).
    training_data = LoggedTrainingData(settings.logs_dir, tracking_uri)
    policy = RetrainPolicy(load_spec, launcher, home / "retrain", training_data=training_data)
    attach = getattr(launcher, "attach", None)
    if callable(attach):
        attach(policy)  # the background launcher reports the run's end to the policy

    # The drift job files the retrain request itself (as in a cluster, where it posts to
    # the collector's /v1/retrain); here the policy answers in this process.
    console.print("running the drift job (Evidently) over the last day ...")
    result = run_drift(project, "1d", settings, filer=InProcessFiler(policy))
    show_drift(console, result, tracking_uri)
    answer = result.retrain
    if answer is None:
        console.print("policy: no drift, no retrain")
        return
    color = {"started": "green", "skipped": "yellow"}.get(answer["outcome"], "red")
    console.print(
        f"policy: [{color}]{answer['outcome']}[/] ({answer['reason']}): {answer['detail']}"
    )
    if answer["outcome"] != "started":
        return
    [decision] = [d for d in policy.history(project) if d["id"] == answer["decision_id"]]
    console.print(describe(decision["evidence"].get("training_data")))
    wait = getattr(launcher, "wait", None)
    if callable(wait):
        console.print("retraining (kfp.local) ...")
        wait()
        console.print(f"run: {policy.history(project)[-1]['detail']}")
        show_challenger(console, tracking_uri, project)
