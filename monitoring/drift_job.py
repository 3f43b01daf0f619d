"""`castml drift run`: the version behind @champion, its window, its reference -> result.

The result (JSON), the Evidently HTML reports and headline metrics go to an MLflow
run in `castml/<project>/monitoring`, tagged with the model version; gauges go to a
Prometheus textfile. A window below `min_window_rows` is an `insufficient_data`
result: logged, never an error, never a retrain trigger. When the spec's monitoring
policy asks for a retrain (monitoring.retrain_filing), the job files the request
itself, the result as its evidence, and logs the answer in the same run.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd

from castml import registry
from castml.errors import RegistryError, SpecError
from castml.protocol.mlflow_names import (
    TAG_DATASET_DRIFT,
    TAG_DRIFT_RETRAIN,
    TAG_DRIFT_STATUS,
    TAG_MODEL_VERSION,
    TAG_PROJECT,
)
from castml.runtime.model_bundle import read_spec
from castml.spec import ProjectSpec, load_spec
from monitoring.drift import SCORE, DriftResult, evaluate
from monitoring.drift_metrics import write_gauges
from monitoring.retrain_filing import HttpFiler, RetrainAnswer, RetrainFiler, request_for
from monitoring.settings import DriftSettings
from monitoring.window import (
    Window,
    latest_observation,
    parse_window,
    read_labels,
    read_observations,
    read_traffic,
)

if TYPE_CHECKING:
    from evidently.core.report import Snapshot
    from mlflow import MlflowClient

RESULT_ARTIFACT = "drift/result.json"
log = logging.getLogger("monitoring.drift_job")


def champion(client: MlflowClient, project: str) -> tuple[str, str]:
    """(version, run id) behind @champion."""
    version = registry.alias_version(client, project, registry.CHAMPION)
    if version is None:
        raise RegistryError(f"model '{project}' has no @{registry.CHAMPION}: nothing to monitor")
    return str(version.version), str(version.run_id)


def load_reference(client: MlflowClient, run_id: str, dest: Path) -> pd.DataFrame:
    path = client.download_artifacts(run_id, registry.REFERENCE_ARTIFACT, str(dest))
    return pd.read_parquet(path)


def current_frame(
    settings: DriftSettings, spec: ProjectSpec, version: str, window: Window
) -> pd.DataFrame:
    """Window rows with `score` and, where it arrived, the delayed label as the target."""
    traffic = read_traffic(settings.logs_dir, spec.name, version, window)
    if traffic.empty:
        return traffic
    traffic = traffic[traffic["probability"].notna()].rename(columns={"probability": SCORE})
    labels = read_labels(settings.logs_dir, spec.name, window)
    labels = labels.rename(columns={"label": spec.target})
    return traffic.merge(labels, on="request_id", how="left")


def experiment_id(client: MlflowClient, project: str) -> str:
    name = registry.monitoring_experiment_name(project)
    found = client.get_experiment_by_name(name)
    return str(found.experiment_id) if found else str(client.create_experiment(name))


def project_spec(client: MlflowClient, project: str, tracking_uri: str) -> ProjectSpec:
    """A bundled project's spec, or a spec file's; for a project known only to the registry,
    the spec its @champion carries (the spec travels with the model)."""
    try:
        return load_spec(project)
    except SpecError:
        if Path(project).suffix in {".yaml", ".yml"}:
            raise  # a spec file that is missing or broken: say so, do not guess
        version, _ = champion(client, project)
        with tempfile.TemporaryDirectory(prefix="castml-drift-spec-") as tmp:
            model_dir = registry.download_model_dir(project, version, Path(tmp), tracking_uri)
            return read_spec(model_dir)


def run_drift(
    project: str,
    window_text: str = "1d",
    settings: DriftSettings | None = None,
    end: datetime | None = None,
    filer: RetrainFiler | None = None,
) -> DriftResult:
    """One drift run; files the retrain request the spec's policy asks for (DESIGN.md §1).

    `filer`: where the request goes (the CLI passes a policy in process); unset, the
    retrain endpoint at `drift_retrain_url`, if set.
    """
    from monitoring.settings import from_env

    settings = settings or from_env(DriftSettings)
    if filer is None and settings.drift_retrain_url:
        filer = HttpFiler(
            settings.drift_retrain_url, settings.retrain_token, settings.drift_retrain_timeout_s
        )
    client = registry.client(settings.tracking_uri, settings.mlflow_timeout_s)
    spec = project_spec(client, project, settings.tracking_uri)
    project = spec.name  # `project` may be a spec's path: the registry and logs use its name
    if spec.task == "forecast" and end is None and spec.time_column is not None:
        # Observations carry their own time (a replay is years old): the window ends at
        # the newest one, not at the clock.
        newest = latest_observation(settings.logs_dir, project, spec.time_column)
        end = None if newest is None else newest + timedelta(seconds=1)  # the window holds it
    window = Window.ending(parse_window(window_text), end)
    version, model_run = champion(client, project)
    with tempfile.TemporaryDirectory(prefix="castml-drift-") as tmp:
        reference = load_reference(client, model_run, Path(tmp))
        current = (
            read_observations(settings.logs_dir, project, spec.time_column, window)
            if spec.task == "forecast" and spec.time_column is not None
            else current_frame(settings, spec, version, window)
        )
        result = DriftResult(
            project=project,
            model_version=version,
            window={
                "spec": window_text,
                "start": window.start.isoformat(),
                "end": window.end.isoformat(),
            },
            rows={"current": len(current), "reference": len(reference), "labeled": 0},
            computed_at=datetime.now(UTC).isoformat(),
        )
        snapshots: list[tuple[str, Snapshot]] = []
        if len(current) < spec.monitoring.min_window_rows:
            result.status = "insufficient_data"
            result.reason = (
                f"{len(current)} rows in the window, fewer than min_window_rows="
                f"{spec.monitoring.min_window_rows}"
            )
        else:
            snapshots = evaluate(
                result,
                reference,
                current,
                spec,
                settings.drift_method or None,
                settings.drift_score_method or None,
                settings.drift_category_method or None,
            )
        run_id = start_run(client, result, snapshots, Path(tmp))
        result.retrain = file_retrain(result, spec, filer)
        finish_run(client, run_id, result, Path(tmp))
    write_gauges(settings.metrics_path(project), result)
    return result


def file_retrain(
    result: DriftResult, spec: ProjectSpec, filer: RetrainFiler | None
) -> dict[str, Any] | None:
    """The request the spec's policy asks for, filed; its answer (None: none was asked for)."""
    request = request_for(result, spec)
    if request is None:
        return None
    if filer is None:
        answer = RetrainAnswer(
            request.reason,
            "not_filed",
            "no retrain endpoint (CASTML_DRIFT_RETRAIN_URL) and no policy in process",
            "",
        )
    else:
        answer = filer.file(request)
    log.warning(
        "retrain request (%s) for %s: %s: %s",
        answer.reason,
        result.project,
        answer.outcome,
        answer.detail,
    )
    return answer.to_dict()


def start_run(
    client: MlflowClient, result: DriftResult, snapshots: list[tuple[str, Snapshot]], tmp: Path
) -> str:
    """The drift job's MLflow run with its HTML reports: the evidence a request points at."""
    tags = {
        TAG_PROJECT: result.project,
        TAG_MODEL_VERSION: result.model_version,
        TAG_DRIFT_STATUS: result.status,
        TAG_DATASET_DRIFT: str(result.dataset_drift).lower(),
        "mlflow.runName": f"drift-v{result.model_version}-{result.window['end'][:16]}",
    }
    run = client.create_run(experiment_id(client, result.project), tags=tags)
    run_id = str(run.info.run_id)
    result.mlflow_run_id = run_id
    if snapshots:
        reports = tmp / "reports" / "drift"
        reports.mkdir(parents=True)
        for name, snapshot in snapshots:
            snapshot.save_html(str(reports / f"{name}_report.html"))
        client.log_artifacts(run_id, str(reports), "drift")
        result.report_uri = f"{run.info.artifact_uri.rstrip('/')}/drift/drift_report.html"
    return run_id


def finish_run(client: MlflowClient, run_id: str, result: DriftResult, tmp: Path) -> None:
    """Headline metrics, the retrain answer and the JSON result; then the run ends."""
    metrics: dict[str, float] = {f"rows_{k}": float(v) for k, v in result.rows.items()}
    if result.drift_share is not None:
        metrics["drift_share"] = result.drift_share
    if result.prediction_drift is not None:
        metrics["prediction_drift_score"] = result.prediction_drift.score
    for name, value in (result.performance or {}).items():
        metrics[f"realised_{name}"] = value
    for name, value in metrics.items():
        client.log_metric(run_id, name, value)
    if result.retrain is not None:
        client.set_tag(run_id, TAG_DRIFT_RETRAIN, result.retrain["outcome"])
    out = tmp / "result" / "drift"
    out.mkdir(parents=True)
    (out / "result.json").write_bytes(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2))
    client.log_artifacts(run_id, str(out), "drift")
    client.set_terminated(run_id)
