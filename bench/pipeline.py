"""Pipeline overhead: the kfp.local pipeline vs the same steps called directly.

Both register into one fresh MLflow server, on the same data, with the same
profile (CASTML_BENCH_PROFILE, default: the full spec). Target: ratio <= 1.15.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from castml.mlflow_server import ServerLayout, start, stop_process

TARGET = 1.15


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    from mlflow import MlflowClient

    from castml.evaluation import Evaluation, ablation_rows
    from castml.workflow import run_direct
    from pipelines.runner import run_local

    project = os.environ.get("CASTML_BENCH_PROJECT", "diecast")
    profile = os.environ.get("CASTML_BENCH_PROFILE", "")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        port = _free_port()
        server = start(ServerLayout(root / "mlflow"), "127.0.0.1", port)
        uri = f"http://127.0.0.1:{port}"
        try:
            began = time.perf_counter()
            direct = run_direct(
                project, uri, root / "direct", profile=profile, run_id="bench-direct"
            )
            direct_s = time.perf_counter() - began
            began = time.perf_counter()
            run_local(project, uri, root / "kfp", profile=profile)
            pipeline_s = time.perf_counter() - began
            client = MlflowClient(uri)
            run_id = client.get_model_version(project, str(direct.version)).run_id
            evaluation = Evaluation.from_json(
                json.loads(
                    Path(
                        client.download_artifacts(run_id, "evaluation/evaluation.json", str(root))
                    ).read_text()
                )
            )
        finally:
            stop_process(server)
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
