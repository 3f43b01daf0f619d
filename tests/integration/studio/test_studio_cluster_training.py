"""Studio training on a KFP cluster (`CASTML_STUDIO_KFP_HOST`).

No KFP API runs here, so the submission itself is not exercised against a cluster. What
is: (1) the pipeline trains and registers a studio upload from the `runs:/` URIs the studio
stages, with the studio's files gone, i.e. with nothing a cluster pod would lack, through
the same compiled pipeline and arguments a cluster run gets (kfp.local); (2) a studio
whose KFP API is unreachable answers 503 naming it and ends the run FAILED with the reason.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from castml import registry
from castml.data.ctr_generator import generate
from pipelines.runner import run_local
from studio.cluster_training import stage_inputs
from studio.profiling import profile
from tests.integration.studio.conftest import TOKEN, Studio, launch_studio
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


def test_the_pipeline_trains_an_upload_from_mlflow_alone(
    mlflow_server: str, tmp_path: Path
) -> None:
    upload = tmp_path / "upload"
    upload.mkdir()
    csv = upload / "clicks.csv"
    generate(n=3000, seed=3).to_csv(csv, index=False)
    drafted = profile(pd.read_csv(csv), "ctr-cluster", str(csv), "gbm")
    assert drafted.spec is not None, drafted.errors
    spec_path = upload / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(drafted.spec))
    client = MlflowClient(mlflow_server)
    experiment = client.create_experiment(registry.experiment_name("ctr-cluster"))
    run_id = client.create_run(experiment).info.run_id

    inputs = stage_inputs(client, run_id, spec_path, csv)
    shutil.rmtree(upload)  # a pod has none of the studio's files: only MLflow

    local = run_local(
        inputs.spec_uri,
        mlflow_server,
        tmp_path / "kfp",
        data_path=inputs.data_uri,
        mlflow_run_id=run_id,
    )
    version = client.get_model_version("ctr-cluster", str(local.version))
    assert version.run_id == run_id  # registered from the studio's own run
    assert client.get_run(run_id).data.tags["castml.data.uri"] == inputs.data_uri


@pytest.fixture(scope="module")
def cluster_studio(
    mlflow_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Studio]:
    home = tmp_path_factory.mktemp("studio-cluster")
    port, kfp_port = free_port(), free_port()
    env = {
        **os.environ,
        "CASTML_HOME": str(home),
        "CASTML_MLFLOW_URI": mlflow_server,
        "CASTML_STUDIO_TOKEN": TOKEN,
        "CASTML_STUDIO_FAMILY": "gbm",
        # A closed loopback port: the KFP API is down.
        "CASTML_STUDIO_KFP_HOST": f"http://127.0.0.1:{kfp_port}",
    }
    with launch_studio(home, port, env) as studio:
        yield studio


def test_an_unreachable_kfp_api_is_503_and_the_run_fails_with_the_reason(
    cluster_studio: Studio, tmp_path: Path
) -> None:
    csv = tmp_path / "clicks.csv"
    generate(n=3000, seed=4).to_csv(csv, index=False)
    uploaded = cluster_studio.upload(csv.name, csv.read_bytes())
    assert uploaded.status_code == 200, uploaded.text
    answer = httpx.post(
        f"{cluster_studio.url}/api/train",
        json={"file_id": uploaded.json()["file_id"], "config": {"epochs": 1}},
        headers=cluster_studio.auth,
        timeout=60,
    )
    assert answer.status_code == 503, answer.text
    assert "KFP API at http://127.0.0.1" in answer.json()["error"]
    assert answer.headers["retry-after"] == "30"

    runs = httpx.get(f"{cluster_studio.url}/api/train/runs", timeout=30).json()
    assert [run["status"] for run in runs] == ["failed"]
    status = httpx.get(
        f"{cluster_studio.url}/api/train/status/{runs[0]['run_id']}", timeout=30
    ).json()
    assert status["status"] == "failed"
    assert "unreachable" in status["reason"]
