"""Pipeline overhead: the kfp.local pipeline vs the same steps called directly.

Both register into one fresh MLflow server, on the same data, with the same
profile (CASTML_BENCH_PROFILE, default: the full spec). Target: ratio <= 1.15.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from castml.cli.local_processes import free_port as _free_port
from castml.evaluation import Evaluation
from castml.mlflow_server import ServerLayout, start, stop_process

TARGET = 1.15


@contextlib.contextmanager
def _mlflow(root: Path) -> Iterator[str]:
    port = _free_port()
    server = start(ServerLayout(root), "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(server)


def _evaluation(uri: str, project: str, version: int, scratch: Path) -> Evaluation:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    run_id = client.get_model_version(project, str(version)).run_id
    local = client.download_artifacts(run_id, "evaluation/evaluation.json", str(scratch))
    return Evaluation.from_json(json.loads(Path(local).read_text()))


def _seconds(times: list[float]) -> str:
    return ", ".join(f"{t:.1f}" for t in times)


def main() -> None:
    from castml.evaluation import ablation_rows
    from castml.workflow import run_direct
    from pipelines.runner import run_local

    project = os.environ.get("CASTML_BENCH_PROJECT", "diecast")
    profile = os.environ.get("CASTML_BENCH_PROFILE", "")
    rounds = int(os.environ.get("CASTML_BENCH_ROUNDS", "2"))
    direct_times: list[float] = []
    pipeline_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # Each run registers into a fresh MLflow server, so every run registers a first
        # version (no champion to download and score): the same work on both sides.
        # Rounds alternate the two sides; the median damps this shared machine's noise.
        for n in range(rounds):
            with _mlflow(root / f"mlflow-direct-{n}") as uri:
                began = time.perf_counter()
                direct = run_direct(
                    project, uri, root / f"direct-{n}", profile=profile, run_id="bench"
                )
                direct_times.append(time.perf_counter() - began)
                evaluation = _evaluation(uri, project, direct.version, root)
            with _mlflow(root / f"mlflow-kfp-{n}") as uri:
                began = time.perf_counter()
                run_local(project, uri, root / f"kfp-{n}", profile=profile)
                pipeline_times.append(time.perf_counter() - began)
    direct_s, pipeline_s = statistics.median(direct_times), statistics.median(pipeline_times)
    ratio = pipeline_s / direct_s
    verdict = "meets" if ratio <= TARGET else "MISSES"
    print(f"project {project}, profile {profile or 'full'}")
    print(
        f"{'direct (same steps, one process)':40s} {direct_s:8.1f} s  runs {_seconds(direct_times)}"
    )
    print(
        f"{'kfp.local pipeline (5 subprocesses)':40s} {pipeline_s:8.1f} s"
        f"  runs {_seconds(pipeline_times)}"
    )
    print(f"{'ratio pipeline / direct':40s} {ratio:8.3f}   target <= {TARGET} ({verdict})")
    print("\nablation on the holdout (AutoEncoder + GBM vs GBM on the raw features):")
    for name, full, base, _ in ablation_rows(evaluation):
        print(f"  {name:10s} {full:.4f}  vs  {base:.4f}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "pipeline.json").write_text(
        json.dumps(
            {
                "project": project,
                "profile": profile or "full",
                "direct_s": direct_s,
                "pipeline_s": pipeline_s,
                "ratio": ratio,
                "target": TARGET,
                "candidate": evaluation.candidate,
                "baseline": evaluation.baseline,
            },
            indent=2,
        )
    )
