"""The serving part of `castml demo`: three servers on loopback, one prediction, one
explanation, and a switch of @champion under traffic with zero failed requests.

`castml demo` calls `run_serving_demo(tracking_uri, project, home)` after the pipeline
has registered at least two versions. The monitoring part runs its traffic through
`logged_stack`: a predictor and a transformer that post their payloads to its collector.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from castml.cli.local_processes import ServerProcess, start_server
from castml.spec import load_spec
from serving.rollout import EmbeddedTarget, Reconciler
from serving.settings import rollout_settings
from serving.version_store import smoke_rows


@dataclass
class Stack:
    predictor: ServerProcess
    transformer: ServerProcess
    explainer: ServerProcess


def _env(tracking_uri: str, project: str, home: Path, version: str) -> dict[str, str]:
    return {
        "CASTML_MLFLOW_URI": tracking_uri,
        "CASTML_HOME": str(home),
        "CASTML_PROJECT": project,
        "CASTML_MODEL_VERSION": version,
    }


@contextmanager
def serving_stack(
    tracking_uri: str, project: str, home: Path, version: str = "champion"
) -> Iterator[Stack]:
    """Predictor (REST + gRPC), transformer and explainer on 127.0.0.1; stopped on exit."""
    env = _env(tracking_uri, project, home, version)
    logs = Path(home) / "logs" / "serving"
    started: list[ServerProcess] = []
    try:
        predictor = start_server("predictor", env, logs, project=project, grpc=True)
        started.append(predictor)
        started.append(start_server("transformer", env, logs, project=project, predictor=predictor))
        started.append(start_server("explainer", env, logs, project=project, predictor=predictor))
        yield Stack(*started)
    finally:
        for server in reversed(started):
            server.stop()


@contextmanager
def logged_stack(
    tracking_uri: str,
    project: str,
    home: Path,
    logger_url: str,
    logger_token: str | None,
    version: str = "champion",
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """(predictor, transformer) on 127.0.0.1, the predictor's payload logger on.

    The predictor posts every request it serves to the collector at `logger_url`, under
    the request id the client saw, as KServe's logger sidecar does in a cluster. Stopped
    on exit; the predictor gives its queued events up to 3 s to reach the collector first.
    """
    env = {
        **_env(tracking_uri, project, home, version),
        "CASTML_LOGGER_URL": logger_url,
        **({"CASTML_LOGGER_TOKEN": logger_token} if logger_token else {}),
    }
    logs = Path(home) / "logs" / "serving"
    started: list[ServerProcess] = []
    try:
        predictor = start_server("predictor", env, logs, project=project)
        started.append(predictor)
        transformer = start_server("transformer", env, logs, project=project, predictor=predictor)
        started.append(transformer)
        yield predictor, transformer
    finally:
        for server in reversed(started):
            server.stop()


def _record(project: str) -> dict[str, float]:
    spec = load_spec(project)
    row = smoke_rows(spec)[0]
    return {name: float(v) for name, v in zip(spec.feature_names, row, strict=True)}


def run_serving_demo(tracking_uri: str, project: str, home: Path) -> None:
    from castml import registry

    with serving_stack(tracking_uri, project, home) as stack:
        record = _record(project)
        print(f"predictor   {stack.predictor.url} (gRPC :{stack.predictor.grpc_port})")
        print(f"transformer {stack.transformer.url}   explainer {stack.explainer.url}")
        answer = httpx.post(
            f"{stack.transformer.url}/v1/models/{project}:predict", json={"features": record}
        ).json()
        print(
            "prediction:",
            {k: answer[k] for k in ("prediction", "model_version", "processing_time_ms")},
        )
        explained = httpx.post(
            f"{stack.explainer.url}/v1/models/{project}:explain",
            json={"features": record, "top_k": 5, "chart": False},
            timeout=120,
        ).json()
        print(
            f"explanation: base {explained['base_value']:.4f} "
            f"-> prediction {explained['prediction']:.4f}"
        )
        for top in explained["top_features"]:
            print(f"  {top['feature']:<34} = {top['value']:<10.4g} SHAP {top['attribution']:+.4f}")

        client = registry.client(tracking_uri)
        champion = registry.resolve_version(client, project, registry.CHAMPION).version
        candidate = registry.promotion_candidate(client, project)
        if candidate is None:
            print("no other version passed its gate: no switch to show")
            return
        target = str(candidate.version)
        counts, stop = _traffic(stack.transformer.url, project, record)
        time.sleep(1.0)
        print(f"moving @champion {champion} -> {target} under traffic")
        client.set_registered_model_alias(project, registry.CHAMPION, target)
        settings = rollout_settings(
            mlflow_uri=tracking_uri, home=home, project=project, predictor_url=stack.predictor.url
        )
        outcome = asyncio.run(
            Reconciler(settings, EmbeddedTarget(stack.predictor.url, project)).reconcile("demo")
        )
        print(
            f"reconciler: {outcome.action} (served {outcome.served_before} -> {outcome.champion})"
        )
        time.sleep(1.0)
        stop.set()
        time.sleep(0.2)
        print(
            "requests by status:", dict(counts["status"]), " by version:", dict(counts["version"])
        )
        failed = sum(n for s, n in counts["status"].items() if s != "200")
        print(f"failed requests during the switch: {failed}")


def _traffic(
    url: str, project: str, record: dict[str, float]
) -> tuple[dict[str, Counter[str]], threading.Event]:
    counts: dict[str, Counter[str]] = {"status": Counter(), "version": Counter()}
    stop = threading.Event()

    def loop() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set():
                try:
                    response = client.post(
                        f"/v1/models/{project}:predict", json={"features": record}
                    )
                except httpx.HTTPError as exc:
                    counts["status"][type(exc).__name__] += 1
                    continue
                counts["status"][str(response.status_code)] += 1
                if response.status_code == 200:
                    counts["version"][response.json()["model_version"]] += 1

    for _ in range(4):
        threading.Thread(target=loop, daemon=True).start()
    return counts, stop
