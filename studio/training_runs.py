"""Training runs: `POST /api/train` starts a real pipeline run; status is read from MLflow.

The MLflow run is created here first, so `run_id` (the MLflow run id) is answered at once;
the pipeline (`studio.training_job`, a child process) logs every epoch into it and
registers the model from it. A run's studio folder (`runs/<run_id>/`) keeps what MLflow
does not: which upload it trained on, its config, the pipeline's progress lines.

Two trainings of one upload at once: the second is refused (409) naming the first, so a
project never registers two versions from racing runs. More than `studio_max_trainings`
at once: 503 with Retry-After.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from castml import registry
from castml.errors import CastmlError
from castml.web.errors import NotFoundError, UnavailableError
from studio.cluster_training import (
    FAILED_STATES,
    ClusterTraining,
    KfpUnreachableError,
    follow,
    stage_inputs,
    submit_training,
)
from studio.lstm_params import params_override
from studio.settings import StudioSettings
from studio.training_job import EVENTS_FILE, FAILURE_TAG, VERSION_TAG, append_event
from studio.uploads import UploadStore

RUN_FILE = "run.json"
EPOCH_METRICS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")
STATUS = {"RUNNING": "training", "SCHEDULED": "training", "FINISHED": "completed"}
SOURCE_ROOT = Path(__file__).resolve().parents[1]


class TrainConfig(BaseModel):
    """The frontend's training config; every field bounded (out of range: 422 naming it)."""

    epochs: int = Field(3, ge=1, le=1000, description="Passes over the training split.")
    batch_size: int = Field(256, ge=1, le=65536, description="Rows per optimiser step.")
    learning_rate: float = Field(1e-3, gt=0, le=1, description="Adam's learning rate.")
    lstm_hidden: int = Field(32, ge=1, le=1024, description="LSTM hidden units.")
    mlp_hidden: int = Field(32, ge=1, le=4096, description="Units of the MLP head's layer.")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout between layers.")


class TrainRequest(BaseModel):
    file_id: str = Field(description="An upload's id (POST /api/upload).")
    config: TrainConfig = Field(default_factory=TrainConfig)


class TrainingConflictError(CastmlError):
    status_code = 409


@dataclass
class TrainingRuns:
    settings: StudioSettings
    uploads: UploadStore
    # A local run's child process, or a cluster run's watcher: both poll() and terminate().
    active: dict[str, subprocess.Popen[bytes] | ClusterTraining] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def root(self) -> Path:
        return self.settings.data_dir / "runs"

    def client(self) -> Any:
        return registry.client(self.settings.tracking_uri)

    def record(self, run_id: str) -> dict[str, Any]:
        """What the studio keeps about a run (404 for a run it did not start)."""
        path = self.root / run_id / RUN_FILE
        if not run_id.isalnum() or not path.is_file():
            raise NotFoundError(f"unknown run_id '{run_id}'")
        record: dict[str, Any] = json.loads(path.read_text())
        return record

    def run_dir(self, run_id: str) -> Path:
        self.record(run_id)
        return self.root / run_id

    def start(self, request: TrainRequest) -> dict[str, Any]:
        answer = self.uploads.answer(request.file_id)  # 404 for an unknown upload
        spec_path = self.uploads.spec_path(request.file_id)
        spec = self.uploads.spec(request.file_id)
        with self.lock:
            running = self._running_for(request.file_id)
            if running is not None:
                raise TrainingConflictError(
                    f"file {request.file_id} is already training in run {running}; "
                    "wait for it to finish (GET /api/train/status/{run_id})"
                )
            if len(self.active) >= self.settings.studio_max_trainings:
                raise UnavailableError(
                    f"{len(self.active)} trainings are running (the limit, "
                    "CASTML_STUDIO_MAX_TRAININGS); retry when one finishes",
                    retry_after_s=30,
                )
            run_id = self._create_run(spec["name"], request)
            run_dir = self.root / run_id
            run_dir.mkdir(parents=True)
            record = {
                "run_id": run_id,
                "file_id": request.file_id,
                "filename": answer["filename"],
                "project": spec["name"],
                "family": spec["model"]["family"],
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "total_epochs": request.config.epochs,
                "config": request.config.model_dump(),
            }
            (run_dir / RUN_FILE).write_text(json.dumps(record))
            if self.settings.studio_kfp_host:
                self.active[run_id] = self._submit(run_dir, run_id, spec_path, spec, request)
            else:
                self.active[run_id] = self._spawn(run_dir, run_id, spec_path, spec, request)
        return {"run_id": run_id, "status": "training"}

    def _running_for(self, file_id: str) -> str | None:
        for run_id in self.active:
            if self.record(run_id)["file_id"] == file_id:
                return run_id
        return None

    def _create_run(self, project: str, request: TrainRequest) -> str:
        client = self.client()
        name = registry.experiment_name(project)
        experiment = client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
        run = client.create_run(
            experiment_id,
            run_name=f"studio-{request.file_id}",
            tags={
                "castml.studio.file_id": request.file_id,
                "castml.studio.config": request.config.model_dump_json(),
            },
        )
        return str(run.info.run_id)

    def _spawn(
        self,
        run_dir: Path,
        run_id: str,
        spec_path: Path,
        spec: dict[str, Any],
        request: TrainRequest,
    ) -> subprocess.Popen[bytes]:
        args = [
            sys.executable,
            "-m",
            "studio.training_job",
            "--spec",
            str(spec_path),
            "--data",
            str(spec["source"]["path"]),
            "--run-id",
            run_id,
            "--run-dir",
            str(run_dir),
            "--tracking-uri",
            self.settings.tracking_uri,
            "--params-override",
            params_override(spec["model"]["family"], request.config.model_dump()),
        ]
        env = {**os.environ, "MLFLOW_TRACKING_URI": self.settings.tracking_uri}
        with (run_dir / "job.log").open("wb") as log:
            process = subprocess.Popen(
                args, cwd=SOURCE_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        threading.Thread(target=self._wait, args=(run_id, process), daemon=True).start()
        return process

    def _submit(
        self,
        run_dir: Path,
        run_id: str,
        spec_path: Path,
        spec: dict[str, Any],
        request: TrainRequest,
    ) -> ClusterTraining:
        """Stage the upload in MLflow, submit the pipeline to KFP, follow it in a thread."""
        host = str(self.settings.studio_kfp_host)
        client = self.client()
        try:
            inputs = stage_inputs(client, run_id, spec_path, Path(spec["source"]["path"]))
            training = submit_training(
                host,
                self.settings.tracking_uri,
                run_id,
                spec["name"],
                inputs,
                params_override(spec["model"]["family"], request.config.model_dump()),
            )
        except KfpUnreachableError as exc:
            # The run exists already: it ends FAILED with the reason, and the client is told.
            client.set_tag(run_id, FAILURE_TAG, str(exc))
            client.set_terminated(run_id, "FAILED")
            append_event(run_dir, f"training failed: {exc}")
            raise UnavailableError(f"training not started: {exc}", retry_after_s=30) from exc
        append_event(run_dir, f"pipeline submitted to KFP at {host}: run {training.kfp_run_id}")
        threading.Thread(target=self._follow, args=(run_id, training), daemon=True).start()
        return training

    def _follow(self, run_id: str, training: ClusterTraining) -> None:
        try:
            follow(str(self.settings.studio_kfp_host), training)
            if training.state in FAILED_STATES:
                self._mark_failed(run_id, f"the KFP run {training.kfp_run_id} {training.state}")
        finally:
            with self.lock:
                self.active.pop(run_id, None)

    def _wait(self, run_id: str, process: subprocess.Popen[bytes]) -> None:
        code = process.wait()
        try:
            self._mark_crashed(run_id, code)
        finally:
            with self.lock:
                self.active.pop(run_id, None)

    def _mark_crashed(self, run_id: str, code: int) -> None:
        """A job that died without ending its run (killed, out of memory) ends it FAILED."""
        tail = (self.root / run_id / "job.log").read_text(errors="replace")[-500:]
        self._mark_failed(run_id, f"the training process exited {code}: {tail}")

    def _mark_failed(self, run_id: str, reason: str) -> None:
        """A run nobody ended (a crashed job, a failed cluster pipeline) ends FAILED."""
        client = self.client()
        if client.get_run(run_id).info.status in ("RUNNING", "SCHEDULED"):
            client.set_tag(run_id, FAILURE_TAG, reason)
            client.set_terminated(run_id, "FAILED")

    def stop_all(self) -> None:
        for process in list(self.active.values()):
            if process.poll() is None:
                process.terminate()

    def epochs(self, run_id: str) -> list[dict[str, Any]]:
        """Every epoch logged so far: `{epoch, total_epochs, metrics}` in epoch order."""
        client = self.client()
        by_step: dict[int, dict[str, float]] = {}
        for name in EPOCH_METRICS:
            for point in client.get_metric_history(run_id, name):
                by_step.setdefault(int(point.step), {})[name] = float(point.value)
        total = int(self.record(run_id)["total_epochs"])
        return [
            {"epoch": step, "total_epochs": total, "metrics": by_step[step]}
            for step in sorted(by_step)
        ]

    def events(self, run_id: str, offset: int) -> tuple[list[dict[str, Any]], int]:
        """Progress lines written since byte `offset`, and the new offset."""
        path = self.root / run_id / EVENTS_FILE
        if not path.is_file():
            return [], offset
        with path.open("rb") as events:
            events.seek(offset)
            chunk = events.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        lines = [json.loads(line) for line in complete.splitlines() if line.strip()]
        return lines, offset + len(complete)

    def status(self, run_id: str) -> dict[str, Any]:
        return self.progress(run_id)[0]

    def progress(self, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The run's status answer and every epoch so far, from one read of MLflow."""
        record = self.record(run_id)
        run = self.client().get_run(run_id)
        epochs = self.epochs(run_id)
        state = STATUS.get(run.info.status, "failed")
        if run_id in self.active:  # the job still tags the run (version, reason): not yet
            state = "training"
        latest: dict[str, float | None] = dict.fromkeys(EPOCH_METRICS)
        for epoch in epochs:
            latest.update(epoch["metrics"])
        answer: dict[str, Any] = {
            "run_id": run_id,
            "file_id": record["file_id"],
            "status": state,
            "current_epoch": epochs[-1]["epoch"] if epochs else 0,
            "total_epochs": record["total_epochs"],
            "metrics": latest,
        }
        if state == "failed":
            answer["reason"] = run.data.tags.get(FAILURE_TAG, f"MLflow run {run.info.status}")
        if state == "completed":
            answer["model_version"] = run.data.tags.get(VERSION_TAG) or self._version_of(run_id)
            answer["evaluation"] = {
                k: v
                for k, v in run.data.metrics.items()
                if k in ("roc_auc", "accuracy", "precision", "recall", "f1")
            }
        return answer, epochs

    def _version_of(self, run_id: str) -> str | None:
        """The version registered from the run (a cluster run has no local job to tag it)."""
        found = self.client().search_model_versions(f"run_id = '{run_id}'")
        return str(found[0].version) if found else None

    def listing(self) -> list[dict[str, Any]]:
        if not self.root.is_dir():
            return []
        client = self.client()
        rows = []
        for path in sorted(self.root.glob(f"*/{RUN_FILE}")):
            record = json.loads(path.read_text())
            run = client.get_run(record["run_id"])
            accuracy = run.data.metrics.get("accuracy", run.data.metrics.get("val_accuracy"))
            rows.append(
                {
                    "run_id": record["run_id"],
                    "created_at": record["created_at"],
                    "status": STATUS.get(run.info.status, "failed"),
                    "accuracy": accuracy,
                    "file_id": record["file_id"],
                }
            )
        return sorted(rows, key=lambda row: str(row["created_at"]), reverse=True)
