"""Pipeline overhead: the kfp.local pipeline vs the same steps called directly.

Both register into one fresh MLflow server, on the same data, with the same
profile (CASTML_BENCH_PROFILE, default: the full spec). Target: ratio <= 1.15.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from castml.evaluation import Evaluation
from castml.mlflow_server import ServerLayout, start, stop_process

TARGET = 1.15


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def main() -> None:
    from castml.evaluation import ablation_rows
    from castml.workflow import run_direct
    from pipelines.runner import run_local

    project = os.environ.get("CASTML_BENCH_PROJECT", "diecast")
    profile = os.environ.get("CASTML_BENCH_PROFILE", "")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # Each side registers into a fresh MLflow server, so both register a first
        # version (no champion to download and score): the same work on both sides.
        with _mlflow(root / "mlflow-direct") as uri:
            began = time.perf_counter()
            direct = run_direct(project, uri, root / "direct", profile=profile, run_id="bench")
            direct_s = time.perf_counter() - began
            evaluation = _evaluation(uri, project, direct.version, root)
        with _mlflow(root / "mlflow-kfp") as uri:
            began = time.perf_counter()
            run_local(project, uri, root / "kfp", profile=profile)
            pipeline_s = time.perf_counter() - began
    ratio = pipeline_s / direct_s
    verdict = "meets" if ratio <= TARGET else "MISSES"
    print(f"project {project}, profile {profile or 'full'}")
    print(f"{'direct (same steps, one process)':40s} {direct_s:8.1f} s")
    print(f"{'kfp.local pipeline (5 subprocesses)':40s} {pipeline_s:8.1f} s")
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
