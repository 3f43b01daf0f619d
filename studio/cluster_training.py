"""Training on a KFP cluster: the pipeline's pods get the upload through MLflow, and only MLflow.

With `CASTML_STUDIO_KFP_HOST` set, `POST /api/train` does not start a local kfp.local job.
It logs the upload's draft spec and CSV into the run's artifacts (`studio/`), then submits
the checked-in compiled training pipeline with their `runs:/` URIs as `project` and
`data_path`, and the run's id as `mlflow_run_id` (`pipelines.runner.submit`). Every step
reads the spec from MLflow (`castml.workflow.project_spec`), the train step logs each epoch
into the run, and the register step registers the model from it: status, epochs and the
WebSocket read MLflow exactly as they do for a local run.

What only KFP knows, a failed or stopped pipeline, a watcher thread reads from the KFP API
and writes to the run as the local job does (`FAILURE_TAG`, run FAILED).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from castml.errors import CastmlError

STAGED_FOLDER = "studio"
# KFP v2 run states that end a run (kfp_server_api V2beta1RuntimeState).
FAILED_STATES = frozenset({"FAILED", "CANCELED", "SKIPPED"})
DONE_STATES = FAILED_STATES | {"SUCCEEDED"}


class KfpUnreachableError(CastmlError):
    """The KFP API cannot take the run: the studio answers 503 naming the host."""


@dataclass(frozen=True)
class StagedInputs:
    """What the pipeline's pods read: the spec and the data, as `runs:/` URIs."""

    spec_uri: str
    data_uri: str


def stage_inputs(client: Any, run_id: str, spec_path: Path, data_path: Path) -> StagedInputs:
    """Log the spec and the upload into the run; the pods download them through MLflow."""
    client.log_artifact(run_id, str(spec_path), STAGED_FOLDER)
    client.log_artifact(run_id, str(data_path), STAGED_FOLDER)
    prefix = f"runs:/{run_id}/{STAGED_FOLDER}"
    return StagedInputs(f"{prefix}/{spec_path.name}", f"{prefix}/{data_path.name}")


@dataclass
class ClusterTraining:
    """One submitted pipeline run, followed until KFP says it ended.

    It stands where a local run's `subprocess.Popen` stands in `TrainingRuns.active`:
    `poll()` is None while it runs; `terminate()` leaves the cluster run alone (the studio
    stopping is no reason to stop a training that does not run in it).
    """

    kfp_run_id: str
    state: str = "RUNNING"
    ended: threading.Event = field(default_factory=threading.Event)

    def poll(self) -> int | None:
        if not self.ended.is_set():
            return None
        return 0 if self.state == "SUCCEEDED" else 1

    def terminate(self) -> None:
        """Nothing to stop here: the run belongs to the cluster."""

    def wait(self) -> int:
        self.ended.wait()
        code = self.poll()
        return 1 if code is None else code


def submit_training(
    host: str,
    tracking_uri: str,
    run_id: str,
    project: str,
    inputs: StagedInputs,
    params_override: str,
) -> ClusterTraining:
    from pipelines.runner import submit

    try:
        kfp_run_id = submit(
            host,
            inputs.spec_uri,
            tracking_uri,
            reason="studio",
            data_path=inputs.data_uri,
            mlflow_run_id=run_id,
            params_override=params_override,
            project_name=project,
        )
    except CastmlError as exc:
        raise KfpUnreachableError(str(exc)) from exc
    return ClusterTraining(kfp_run_id)


def follow(host: str, training: ClusterTraining, poll_s: float = 15.0) -> None:
    """Poll the KFP run until it ends (a daemon thread's body); a lost API is retried."""
    from pipelines.runner import kfp_client

    while not training.ended.is_set():
        try:
            state = str(kfp_client(host).get_run(training.kfp_run_id).state or "RUNNING")
        except CastmlError:
            state = training.state  # the API is briefly unreachable: ask again later
        training.state = state
        if state in DONE_STATES:
            training.ended.set()
            return
        time.sleep(poll_s)
