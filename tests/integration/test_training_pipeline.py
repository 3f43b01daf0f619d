"""The whole pipeline through kfp.local against a real MLflow server, with the fast profile.

One module-scoped MLflow server, so version numbers are this module's own:
v1 the first (becomes @champion), v2 deliberately worse, v3 a healthy retrain.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import mlflow
import mlflow.artifacts
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from castml import registry
from castml.data.diecast import generate
from castml.errors import MlflowUnavailableError
from castml.mlflow_server import ServerLayout, start, stop_process
from pipelines.runner import LocalRun, PipelineError, run_local
from tests.support.ports import free_port

pytestmark = pytest.mark.integration
CRIPPLED = json.dumps(
    {"autoencoder": {"epochs": 1}, "gbm": {"n_estimators": 1, "max_depth": 1, "num_leaves": 2}}
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    process = start(ServerLayout(tmp_path_factory.mktemp("mlflow-pipeline")), "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}"
    stop_process(process)


@pytest.fixture(scope="module")
def runs(server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, LocalRun]:
    root = tmp_path_factory.mktemp("kfp-root")
    events: list[tuple[str, dict]] = []
    first = run_local(
        "diecast", server, root, profile="fast", on_progress=lambda e, d: events.append((e, d))
    )
    worse = run_local(
        "diecast", server, root, profile="fast", params_override=CRIPPLED, reason="drift"
    )
    better = run_local(
        "diecast",
        server,
        root,
        profile="fast",
        reason="schedule",
        params_override=json.dumps({"autoencoder": {"seed": 99}, "gbm": {"seed": 99}}),
    )
    assert [d["task"] for e, d in events if e == "task"] == [
        "validate",
        "split",
        "train",
        "evaluate",
        "register",
    ]
    assert any(e == "epoch" for e, _ in events)
    return {"first": first, "worse": worse, "better": better}


def _version(server: str, number: int):
    return MlflowClient(server).get_model_version("diecast", str(number))


def test_first_version_is_champion_and_challenger_with_its_tags(
    server: str, runs: dict[str, LocalRun]
) -> None:
    assert runs["first"].version == 1
    v1 = _version(server, 1)
    assert set(v1.aliases) >= {"champion"}
    assert v1.tags[registry.TAG_GATE].startswith("passed")
    assert v1.tags[registry.TAG_RETRAIN_REASON] == "initial"
    assert len(v1.tags[registry.TAG_DATA_HASH]) == 16
    assert v1.tags[registry.TAG_PIPELINE_RUN] not in ("", "direct")


def test_run_logs_params_metrics_report_reference_and_background(
    server: str, runs: dict[str, LocalRun]
) -> None:
    run = MlflowClient(server).get_run(_version(server, 1).run_id)
    experiment = MlflowClient(server).get_experiment(run.info.experiment_id)
    assert experiment.name == "castml/diecast"
    for metric in ("f1", "roc_auc", "accuracy", "precision", "recall"):
        assert 0 <= run.data.metrics[metric] <= 1
        assert f"baseline_{metric}" in run.data.metrics
    assert run.data.params["gbm.max_depth"] == "6"
    mlflow.set_tracking_uri(server)
    reference = pd.read_parquet(
        mlflow.artifacts.download_artifacts(
            f"runs:/{run.info.run_id}/{registry.REFERENCE_ARTIFACT}"
        )
    )
    assert {"Process_Temperature", "defect", "score"} <= set(reference.columns)
    background = np.load(
        mlflow.artifacts.download_artifacts(
            f"runs:/{run.info.run_id}/{registry.BACKGROUND_ARTIFACT}"
        )
    )
    assert background.shape == (100, 30) and background.dtype == np.float32
    report = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{registry.REPORT_ARTIFACT}")
    assert "Gate: PASSED" in report and "Ablation" in report


def test_registered_model_has_signature_and_input_example(
    server: str, runs: dict[str, LocalRun]
) -> None:
    mlflow.set_tracking_uri(server)
    info = mlflow.models.get_model_info("models:/diecast/1")
    assert [c.name for c in info.signature.inputs][:2] == [
        "Process_Temperature",
        "Process_Pressure",
    ]
    assert len(info.signature.inputs) == 30
    assert {"probability", "label", "latent_0", "latent_11"} <= {
        c.name for c in info.signature.outputs
    }
    model = mlflow.pyfunc.load_model("models:/diecast/1")
    out = model.predict(generate(5, seed=1).drop(columns=["defect"]))
    assert list(out.columns[:2]) == ["probability", "label"] and len(out) == 5


def test_worse_candidate_stays_registered_failed_without_alias(
    server: str, runs: dict[str, LocalRun]
) -> None:
    worse = _version(server, runs["worse"].version)
    assert worse.aliases == []
    gate = worse.tags[registry.TAG_GATE]
    assert gate.startswith("failed") and "regresses" in gate
    assert worse.tags[registry.TAG_RETRAIN_REASON] == "drift"


def test_healthy_retrain_becomes_challenger_champion_unchanged(
    server: str, runs: dict[str, LocalRun]
) -> None:
    better = _version(server, runs["better"].version)
    assert better.aliases == ["challenger"]
    assert (
        better.tags[registry.TAG_GATE].startswith("passed")
        and "vs champion" in better.tags[registry.TAG_GATE]
    )
    assert better.tags[registry.TAG_RETRAIN_REASON] == "schedule"
    assert MlflowClient(server).get_model_version_by_alias("diecast", "champion").version == "1"


def test_bad_data_fails_at_validate_naming_problems_and_registers_nothing(
    server: str, runs: dict[str, LocalRun], tmp_path: Path
) -> None:
    bad = generate(800, seed=2)
    bad.loc[0, "Process_Temperature"] = np.nan
    bad.loc[1, "Process_Pressure"] = 999.0
    bad = bad.drop(columns=["Sensor_Vibration"])
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    before = len(MlflowClient(server).search_model_versions("name='diecast'"))
    with pytest.raises(PipelineError) as caught:
        run_local("diecast", server, tmp_path / "root", profile="fast", data_path=str(path))
    message = str(caught.value)
    assert "task 'validate'" in message
    assert "missing columns: Sensor_Vibration" in message
    assert "Process_Temperature: 1 NaN" in message
    assert "Process_Pressure: 1 value(s) outside the physical bounds" in message
    assert len(MlflowClient(server).search_model_versions("name='diecast'")) == before


def test_unreachable_mlflow_is_named_and_nothing_starts(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(MlflowUnavailableError, match=uri.replace(".", r"\.")):
        run_local("diecast", uri, tmp_path, profile="fast")
    assert not list(tmp_path.glob("castml-training-*"))


def test_cli_lists_promotes_and_rolls_back(
    server: str, runs: dict[str, LocalRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    from castml.cli.main import app

    monkeypatch.setenv("CASTML_MLFLOW_URI", server)
    cli = CliRunner()
    listed = cli.invoke(app, ["model", "list", "diecast"])
    assert listed.exit_code == 0 and "champion" in listed.output and "challenger" in listed.output
    refused = cli.invoke(
        app, ["model", "promote", "diecast", "--version", str(runs["worse"].version)]
    )
    assert refused.exit_code != 0 and "did not pass its gate" in str(refused.exception)
    promoted = cli.invoke(app, ["model", "promote", "diecast"])  # default: @challenger
    assert promoted.exit_code == 0, promoted.output
    assert MlflowClient(server).get_model_version_by_alias("diecast", "champion").version == str(
        runs["better"].version
    )
    rolled = cli.invoke(app, ["model", "rollback", "diecast"])
    assert rolled.exit_code == 0, rolled.output
    assert MlflowClient(server).get_model_version_by_alias("diecast", "champion").version == "1"
