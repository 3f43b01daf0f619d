"""The peer for the serving benchmark: MLServer 1.7.1 + mlserver-mlflow serving our pyfunc.

- `ensure_venv()` builds `.venv-mlserver` once (a stamp names the pins), apart from
  `.venv`: MLServer pins its own fastapi/starlette, and KServe runs it in its own image.
  The model's `pip_requirements` (mlflow, numpy, pandas, lightgbm) go in at the versions
  of constraints.txt; with mlserver 1.7.1 they resolve without a conflict.
- `register_and_download()` logs the model version exactly as `castml.registration`
  does (same runtime bundle, signature and requirements) into a throw-away local
  registry, registers it, and downloads `models:/diecast/1` back: the directory MLServer
  serves is the registered version's, and `model/` inside it is what our predictor loads.
- `start_mlserver()` serves it with `mlserver_mlflow.MLflowRuntime` on 127.0.0.1.
  `parallel_workers: 0` runs inference in the server process: for a model this small
  that is MLServer's fastest set-up (no IPC hop) and one process to weigh for RSS.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from castml.cli.local_processes import free_port

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-mlserver"
MODEL_REQUIREMENTS = ("mlflow", "numpy", "pandas", "lightgbm")
PEER_PINS = ("mlserver==1.7.1", "mlserver-mlflow==1.7.1", "uvloop==0.21.0")


def pins() -> list[str]:
    """The peer's pins plus the model's requirements at constraints.txt's versions."""
    wanted = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, _, version = line.strip().partition("==")
        if name.lower() in MODEL_REQUIREMENTS and version:
            wanted[name.lower()] = f"{name}=={version}"
    return [*PEER_PINS, *(wanted[n] for n in MODEL_REQUIREMENTS if n in wanted)]


def ensure_venv() -> Path:
    """`.venv-mlserver/bin/mlserver`, installing it first if the pins changed (~1 min)."""
    wanted = pins()
    stamp = VENV / f".installed-{hashlib.sha256(' '.join(wanted).encode()).hexdigest()[:12]}"
    if not stamp.is_file():
        print(f"==> creating {VENV.name}: {' '.join(wanted)}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, *wanted], check=True)
        stamp.touch()
    return VENV / "bin" / "mlserver"


def register_and_download(model_dir: Path, work: Path, project: str = "diecast") -> Path:
    """Register `model_dir` as version 1 of `project` in a local registry; download it."""
    import mlflow

    from castml.registration import bundle_runtime, pip_requirements, signature
    from castml.runtime.ae_gbm import AeGbmModel

    work.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{work / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment(f"castml/{project}-bench")
    model = AeGbmModel.load(model_dir)
    with mlflow.start_run(), tempfile.TemporaryDirectory() as tmp:
        code = bundle_runtime(Path(tmp) / "code")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(code / "runtime" / "model_code.py"),
            artifacts={"model": str(model_dir)},
            code_paths=[str(code)],
            signature=signature(model),
            pip_requirements=pip_requirements(),
        )
    version = mlflow.register_model(info.model_uri, project).version
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{project}/{version}", dst_path=str(work / "download")
    )
    return Path(local)


def start_mlserver(
    pyfunc_dir: Path, work: Path, project: str = "diecast"
) -> tuple[subprocess.Popen[bytes], int]:
    """`mlserver start` on 127.0.0.1; returns once the model is ready."""
    executable = ensure_venv()
    repository = work / "mlserver"
    (repository / project).mkdir(parents=True, exist_ok=True)
    port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    (repository / "settings.json").write_text(
        json.dumps(
            {
                "debug": False,
                "host": "127.0.0.1",
                "http_port": port,
                "grpc_port": grpc_port,
                "metrics_port": metrics_port,
                "parallel_workers": 0,
            }
        )
    )
    (repository / project / "model-settings.json").write_text(
        json.dumps(
            {
                "name": project,
                "implementation": "mlserver_mlflow.MLflowRuntime",
                "parameters": {"uri": str(pyfunc_dir), "version": "1"},
            }
        )
    )
    log = (work / "mlserver.log").open("wb")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    process = subprocess.Popen(
        [str(executable), "start", str(repository)],
        cwd=repository,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    ready = f"http://127.0.0.1:{port}/v2/models/{project}/ready"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlserver exited: {(work / 'mlserver.log').read_text()[-3000:]}")
        try:
            if httpx.get(ready, timeout=1.0).status_code == 200:
                return process, port
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop(process)
    raise RuntimeError(f"mlserver not ready: {(work / 'mlserver.log').read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants (MLServer may fork workers)."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
        todo += [int(c) for c in children]
    return total


if __name__ == "__main__":  # smoke: python -m bench._mlserver <model_dir>
    with tempfile.TemporaryDirectory() as tmp:
        pyfunc = register_and_download(Path(sys.argv[1]), Path(tmp))
        proc, port = start_mlserver(pyfunc, Path(tmp))
        print(port, tree_rss_mb(proc.pid))
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
