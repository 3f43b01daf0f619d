"""MLflow entries the UI reads, in any store (SQLite or a server).

For the Models tab: two versions of `diecast` with the tags the pipeline sets (gate
verdict, retrain reason, data hash and source) and @champion on 1; real model versions
whose `source` is never loaded (the tab only reads the registry). For the History tab:
a drift run as the drift job logs it.
"""

from __future__ import annotations

import json
from pathlib import Path

from castml.protocol.mlflow_names import (
    CHAMPION,
    TAG_DATA_HASH,
    TAG_DATA_SOURCE,
    TAG_DRIFT_STATUS,
    TAG_GATE,
    TAG_MODEL_VERSION,
    TAG_PROJECT,
    TAG_RETRAIN_REASON,
    monitoring_experiment_name,
)

GATES = {"1": "passed: auc 0.91 >= 0.80", "2": "failed: auc 0.70 < 0.80"}


def register_listed_versions(tracking_uri: str, project: str = "diecast") -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    client.create_registered_model(project)
    for version, gate in GATES.items():
        client.create_model_version(
            project,
            source=f"file:///nonexistent/{project}-{version}",
            tags={
                TAG_GATE: gate,
                TAG_RETRAIN_REASON: "initial" if version == "1" else "drift",
                TAG_DATA_HASH: f"abcdef{version}" * 4,
                TAG_DATA_SOURCE: "generator",
            },
        )
    client.set_registered_model_alias(project, CHAMPION, "1")


def log_drift_run(tracking_uri: str, artifacts: Path, project: str = "diecast") -> str:
    """A finished drift run as the drift job logs it (tags, drift_share, drift/result.json),
    with Sensor_HydrogenContent drifted; returns its run id."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    experiment = client.create_experiment(
        monitoring_experiment_name(project), artifact_location=artifacts.as_uri()
    )
    run = client.create_run(
        experiment,
        tags={TAG_PROJECT: project, TAG_MODEL_VERSION: "1", TAG_DRIFT_STATUS: "ok"},
    )
    result = {
        "project": project,
        "model_version": "1",
        "dataset_drift": True,
        "drift_share": 0.4,
        "computed_at": "2026-12-02T10:00:00+00:00",
        "features": {
            "Sensor_HydrogenContent": {
                "score": 0.001,
                "method": "ks",
                "threshold": 0.05,
                "drifted": True,
            },
            "Process_Pressure": {"score": 0.6, "method": "ks", "threshold": 0.05, "drifted": False},
        },
    }
    folder = artifacts / "staging" / "drift"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps(result))
    client.log_artifacts(run.info.run_id, str(folder), "drift")
    client.log_metric(run.info.run_id, "drift_share", 0.4)
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)
