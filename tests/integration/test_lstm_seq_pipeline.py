"""lstm_seq end to end: a real kfp.local run registers a version that the plain MLflow
pyfunc loads and the real predictor serves, windows carried in the request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import mlflow.artifacts
import mlflow.pyfunc
import numpy as np
import pytest
import yaml
from mlflow import MlflowClient

from castml import registry
from castml.cli.local_processes import start_server
from castml.mlflow_server import ServerLayout, start, stop_process
from castml.models.train import model_input
from castml.runtime.loaded_model import load_model
from castml.spec import PROJECTS_DIR
from pipelines.runner import LocalRun, run_local
from tests.support.lstm_seq_store import (
    build_lstm_store,
    ctr_frame,
    pyfunc_frame,
    v2_inputs,
    window_rows,
)
from tests.support.ports import free_port

pytestmark = pytest.mark.integration
SMALL = json.dumps({"lstm_seq": {"epochs": 2, "lstm_hidden": 8, "mlp_hidden": [8]}})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    process = start(ServerLayout(tmp_path_factory.mktemp("mlflow-lstm")), "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}"
    stop_process(process)


@pytest.fixture(scope="module")
def run(server: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalRun, Path]:
    root = tmp_path_factory.mktemp("lstm-kfp")
    spec = yaml.safe_load((PROJECTS_DIR / "ctr.yaml").read_text())
    spec["name"] = "ctr-small"
    spec["source"]["rows"] = 4000
    path = root / "ctr-small.yaml"
    path.write_text(yaml.safe_dump(spec))
    return run_local(str(path), server, root / "kfp", profile="fast", params_override=SMALL), root


def test_run_registers_an_evaluated_lstm_seq_version(
    run: tuple[LocalRun, Path], server: str
) -> None:
    local, _ = run
    client = MlflowClient(server)
    version = client.get_model_version("ctr-small", str(local.version))
    gate = version.tags[registry.TAG_GATE]
    metrics = client.get_run(version.run_id).data.metrics
    low, high = metrics["roc_auc_ci_low"], metrics["roc_auc_ci_high"]
    assert low <= metrics["roc_auc"] <= high
    assert ("no skill" in gate) == (low <= 0.5 <= high)  # the gate says it when it refuses
    evaluation = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=version.run_id,
                artifact_path="evaluation/evaluation.json",
                tracking_uri=server,
            )
        ).read_text()
    )
    assert set(evaluation["baselines"]) == {"logistic_regression"}


def test_pyfunc_loads_plainly_and_scores_windows_like_the_numpy_model(
    run: tuple[LocalRun, Path], server: str
) -> None:
    local, _ = run
    mlflow.set_tracking_uri(server)
    uri = f"models:/ctr-small/{local.version}"
    pyfunc = mlflow.pyfunc.load_model(uri)
    flat, window = window_rows(ctr_frame(1500, seed=11))
    out = pyfunc.predict(pyfunc_frame(flat, window))
    folder = Path(mlflow.artifacts.download_artifacts(f"{uri}/artifacts/model"))
    own = load_model(folder).score(model_input(window, flat))
    assert np.allclose(out["probability"].to_numpy(), own, atol=1e-6)


def test_the_real_predictor_serves_a_row_with_its_window(tmp_path: Path) -> None:
    store = build_lstm_store(tmp_path / "store")
    flat, window = window_rows(ctr_frame(1500, seed=13))
    env = {"CASTML_MODEL_STORE": str(store), "CASTML_MODEL_VERSION": "champion"}
    predictor = start_server("predictor", env, tmp_path, project="ctr")
    try:
        reply = httpx.post(
            f"{predictor.url}/v2/models/ctr/infer",
            json={"inputs": v2_inputs(flat, window.iloc[:7])},
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        served = next(o for o in reply.json()["outputs"] if o["name"] == "probability")
        local = load_model(store / "1" / "model").score(model_input(window.iloc[:7], flat))
        assert np.allclose(served["data"], local, atol=1e-6)
        short = v2_inputs(flat, window.iloc[:1])[:-3]  # the last lag's columns left out
        refused = httpx.post(
            f"{predictor.url}/v2/models/ctr/infer", json={"inputs": short}, timeout=30
        )
        assert refused.status_code == 400 and "age__lag8" in refused.text
    finally:
        predictor.stop()
