"""A new tabular data set needs only a spec: bundled scikit-learn data through the same pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from castml import registry
from castml.evaluation_plots import (
    CLASSIFICATION_PLOTS,
    PLOTS_ARTIFACT_DIR,
    REGRESSION_PLOTS,
    SHAP_PLOT,
)
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
    # The task's plots and the SHAP summary, as PNGs the MLflow UI shows; none of the other task's.
    plots = {a.path for a in client.list_artifacts(run.info.run_id, PLOTS_ARTIFACT_DIR)}
    names = CLASSIFICATION_PLOTS if metric == "roc_auc" else REGRESSION_PLOTS
    assert plots == {f"{PLOTS_ARTIFACT_DIR}/{n}.png" for n in (*names, SHAP_PLOT)}
