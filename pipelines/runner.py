"""Run the training pipeline: locally through kfp.local, or on a KFP API (submit, schedule).

Every run starts from the checked-in compiled package (`pipelines/compiled/training.yaml`,
`castml pipeline compile` writes it and CI diffs it), passed as a path: nothing compiles
at run time, so the callers in read-only containers (the collector's retrain endpoint,
the recurring-run hook Job) only read it, and kfp.local runs the very YAML a cluster runs.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from castml.errors import CastmlError

COMPILED_DIR = Path(__file__).parent / "compiled"
TRAINING_PACKAGE = COMPILED_DIR / "training.yaml"
KNOWLEDGE_PACKAGE = COMPILED_DIR / "knowledge.yaml"
TASKS = ("validate", "split", "train", "evaluate", "register")
KNOWLEDGE_TASKS = ("parse", "chunk", "index", "evaluate", "register")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
TASK_DONE = re.compile(r"Task '([\w-]+)' finished with status (\w+)")
EPOCH = re.compile(r"\bepoch (\d+)/(\d+) loss")
# castml.errors.* and the rooms' own, e.g. castml.knowledge.kb_errors.CorpusError
USER_ERROR = re.compile(r"castml\.(?:\w+\.)*\w*errors\.\w+: (.*)")


class PipelineError(CastmlError):
    """A pipeline task failed; the message names the task and the cause."""


@dataclass(frozen=True)
class LocalRun:
    version: int
    run_dir: Path
    log_file: Path


# (event, detail) with event in {"task", "epoch"}: the CLI draws progress from these.
ProgressCallback = Callable[[str, dict[str, Any]], None]


class LogTap(io.TextIOBase):
    """A stdout/stderr stand-in: writes kfp.local's output to a log, watching for progress."""

    def __init__(self, log: io.TextIOBase, on_progress: ProgressCallback | None) -> None:
        self.log = log
        self.on_progress = on_progress
        self.buffer_ = ""
        self.failed_task: str | None = None
        self.user_error: str | None = None

    def write(self, text: str) -> int:
        self.log.write(text)
        self.buffer_ += text
        *lines, self.buffer_ = self.buffer_.split("\n")
        for line in lines:
            self._watch(ANSI.sub("", line))
        return len(text)

    def _watch(self, line: str) -> None:
        if found := TASK_DONE.search(line):
            task, status = found.groups()
            if status != "SUCCESS":
                self.failed_task = self.failed_task or task
            if self.on_progress:
                self.on_progress("task", {"task": task, "status": status})
        elif found := EPOCH.search(line):
            if self.on_progress:
                self.on_progress("epoch", {"epoch": int(found[1]), "epochs": int(found[2])})
        elif found := USER_ERROR.search(line):
            self.user_error = found[1]

    def flush(self) -> None:
        self.log.flush()


def package_path(package: Path) -> Path:
    """The compiled pipeline at `package`, or an error that says how to make it."""
    if not package.is_file():
        raise CastmlError(f"no compiled pipeline at {package}: run `castml pipeline compile`")
    return package


def _run_package(
    package: Path,
    tracking_uri: str,
    pipeline_root: Path,
    arguments: dict[str, Any],
    on_progress: ProgressCallback | None,
) -> tuple[Any, Path]:
    """Run a compiled pipeline once through kfp.local; (its output, the log file)."""
    import logging

    from kfp import components, local

    from castml import registry

    pipeline = components.load_component_from_file(str(package_path(package)))
    registry.ensure_reachable(tracking_uri)
    pipeline_root.mkdir(parents=True, exist_ok=True)
    log_file = pipeline_root / "last-run.log"
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        raise_on_error=True,
    )
    with log_file.open("w") as log:
        tap = LogTap(log, on_progress)
        handler = logging.StreamHandler(tap)
        try:
            with contextlib.redirect_stdout(tap), contextlib.redirect_stderr(tap):
                # kfp.local swaps the root logger's handlers for its own stderr handler
                logging.getLogger().addHandler(handler)
                task = pipeline(**arguments)
        except RuntimeError as exc:
            where = f"task '{tap.failed_task}'" if tap.failed_task else "a task"
            cause = tap.user_error or str(exc)
            raise PipelineError(
                f"pipeline failed at {where}: {cause} (full log: {log_file})"
            ) from exc
        finally:
            logging.getLogger().removeHandler(handler)
    return task.output, log_file


def _latest_run_dir(pipeline_root: Path, pipeline_name: str) -> Path:
    runs = sorted(pipeline_root.glob(f"{pipeline_name}-*"), key=lambda p: p.stat().st_mtime)
    return runs[-1] if runs else pipeline_root


def run_local(
    project: str,
    tracking_uri: str,
    pipeline_root: Path,
    *,
    package: Path = TRAINING_PACKAGE,
    reason: str = "manual",
    profile: str = "",
    params_override: str = "",
    data_path: str = "",
    mlflow_run_id: str = "",
    on_progress: ProgressCallback | None = None,
) -> LocalRun:
    """One kfp.local run (SubprocessRunner, this environment, offline); returns the version.

    `mlflow_run_id`: an MLflow run made beforehand (the studio answers its id at once):
    training logs each epoch into it and registration reuses it."""
    arguments = {
        "project": project,
        "mlflow_uri": tracking_uri,
        "retrain_reason": reason,
        "profile": profile,
        "params_override": params_override,
        "data_path": data_path,
        "mlflow_run_id": mlflow_run_id,
    }
    output, log_file = _run_package(package, tracking_uri, pipeline_root, arguments, on_progress)
    return LocalRun(
        version=int(output),
        run_dir=_latest_run_dir(pipeline_root, "castml-training"),
        log_file=log_file,
    )


def run_knowledge_local(
    project: str,
    tracking_uri: str,
    pipeline_root: Path,
    *,
    package: Path = KNOWLEDGE_PACKAGE,
    corpus_dir: str = "",
    reason: str = "manual",
    embedding_model: str = "",
    chunk_max_chars: int = 0,
    chunk_overlap: int = 0,
    on_progress: ProgressCallback | None = None,
) -> LocalRun:
    """One kfp.local run of the knowledge pipeline; returns the `<project>-kb` version.

    `corpus_dir` empty: the packaged corpus; the knobs empty/0: the spec's `knowledge:`.
    """
    arguments = {
        "project": project,
        "mlflow_uri": tracking_uri,
        "corpus_dir": corpus_dir,
        "retrain_reason": reason,
        "embedding_model": embedding_model,
        "chunk_max_chars": chunk_max_chars,
        "chunk_overlap": chunk_overlap,
    }
    output, log_file = _run_package(package, tracking_uri, pipeline_root, arguments, on_progress)
    return LocalRun(
        version=int(output),
        run_dir=_latest_run_dir(pipeline_root, "castml-knowledge"),
        log_file=log_file,
    )


def compile_all(out_dir: Path = COMPILED_DIR) -> list[Path]:
    """Write the compiled pipelines' YAML (checked in; a test recompiles and diffs it)."""
    from kfp import compiler

    from pipelines.knowledge import knowledge_pipeline
    from pipelines.training import training_pipeline

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for pipeline, name in ((training_pipeline, "training"), (knowledge_pipeline, "knowledge")):
        target = out_dir / f"{name}.yaml"
        compiler.Compiler().compile(pipeline, str(target))
        written.append(target)
    return written


def kfp_client(host: str) -> Any:
    """A KFP API client, after a health check: unreachable is one clear error."""
    import kfp

    try:
        client = kfp.Client(host=host)
        client.get_kfp_healthz()
    except Exception as exc:
        raise CastmlError(f"KFP API at {host} is unreachable: {type(exc).__name__}: {exc}") from exc
    return client


def submit(
    host: str,
    project: str,
    mlflow_uri: str,
    reason: str = "manual",
    profile: str = "",
    data_path: str = "",
    *,
    package: Path = TRAINING_PACKAGE,
    mlflow_run_id: str = "",
    params_override: str = "",
    project_name: str = "",
) -> str:
    """Start one run on a KFP cluster from the compiled package; returns the run id.

    `data_path` must be readable from the pipeline's pods: a `runs:/` URI in MLflow's
    artifact store (what a retrain on logged traffic passes), or a path in the image.
    So must `project`: a bundled name, or a spec's `runs:/` URI (a studio upload).
    """
    package = package_path(package)
    client = kfp_client(host)
    name = project_name or project
    run = client.create_run_from_pipeline_package(
        str(package),
        arguments={
            "project": project,
            "mlflow_uri": mlflow_uri,
            "retrain_reason": reason,
            "profile": profile,
            "data_path": data_path,
            "mlflow_run_id": mlflow_run_id,
            "params_override": params_override,
        },
        experiment_name=f"castml-{name}",
        run_name=f"{name}-{reason}",
    )
    return str(run.run_id)


def schedule(
    host: str, project: str, mlflow_uri: str, cron: str, *, package: Path = TRAINING_PACKAGE
) -> str:
    """Register the recurring retrain (KFP 6-field cron, e.g. monthly `0 0 2 1 * *`)."""
    if len(cron.split()) != 6:
        raise CastmlError(f"cron '{cron}' must have 6 fields (seconds first), e.g. '0 0 2 1 * *'")
    package = package_path(package)
    client = kfp_client(host)
    experiment = client.create_experiment(f"castml-{project}")
    job = client.create_recurring_run(
        experiment_id=experiment.experiment_id,
        job_name=f"{project}-monthly-retrain",
        cron_expression=cron,
        pipeline_package_path=str(package),
        params={"project": project, "mlflow_uri": mlflow_uri, "retrain_reason": "schedule"},
        max_concurrency=1,
        no_catchup=True,
    )
    return str(job.recurring_run_id)
