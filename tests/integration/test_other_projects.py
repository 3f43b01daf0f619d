"""A new tabular data set needs only a spec: bundled scikit-learn data through the same pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from castml import registry
from pipelines.runner import run_local

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("project", "metric"), [("breast_cancer", "roc_auc"), ("diabetes", "r2")])
def test_spec_only_project_runs_through_the_pipeline(
    mlflow_server: str, tmp_path: Path, project: str, metric: str
) -> None:
    outcome = run_local(project, mlflow_server, tmp_path, profile="fast")
    client = MlflowClient(mlflow_server)
    version = client.get_model_version(project, str(outcome.version))
    assert version.tags[registry.TAG_GATE].startswith("passed"), version.tags[registry.TAG_GATE]
    assert "champion" in version.aliases
    run = client.get_run(version.run_id)
    assert metric in run.data.metrics and f"baseline_{metric}" in run.data.metrics
    assert client.get_experiment(run.info.experiment_id).name == f"castml/{project}"
