"""logged traffic -> drift -> retrain -> new version: the retrain trains on the labelled logs.

A real MLflow server of this module's own (the retrain moves @challenger, which the
session's `registered_diecast` versions must keep), v1 from the spec's source, drifted
shots logged through the collector's code path with delayed labels, then the policy
with the training-data step and the kfp.local launcher, as `castml retrain` wires them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from castml import registry
from castml.cli.pipeline_launchers import local_launcher
from castml.data.diecast import generate
from castml.data.provenance import TAG_PREFIX
from castml.mlflow_server import ServerLayout, start, stop_process
from castml.spec import load_spec
from castml.workflow import run_direct
from monitoring.lineage import lineage
from monitoring.policy import RetrainPolicy, RetrainRequest
from monitoring.training_set import LoggedTrainingData
from tests.support.logged_traffic import Traffic
from tests.support.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SHOTS, LABELLED = 300, 240


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    process = start(ServerLayout(tmp_path_factory.mktemp("mlflow-retrain")), "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}"
    stop_process(process)


def test_a_drift_retrain_registers_a_version_trained_on_the_logged_labelled_rows(
    server: str, tmp_path: Path
) -> None:
    base = run_direct("diecast", server, tmp_path / "base", profile="fast", run_id="base")
    home = tmp_path / "home"
    shots = generate(SHOTS, seed=202, scenario="sensor_degradation", severity=2.0)
    traffic = Traffic()
    features = load_spec("diecast").feature_names
    for i, row in enumerate(shots[features].to_numpy()):
        label = float(shots["defect"].iloc[i]) if i < LABELLED else None
        traffic.add(f"shot-{i}", row, label, version=str(base.version))
    traffic.log(home)

    launcher = local_launcher(server, tmp_path / "kfp", profile="fast")
    policy = RetrainPolicy(
        load_spec,
        launcher,
        home / "retrain",
        training_data=LoggedTrainingData(home / "logs", server),
    )
    launcher.attach(policy)
    evidence = {"rows": SHOTS, "drift_share": 0.3}
    decision = policy.decide(RetrainRequest("diecast", "drift", "drift-report.html", evidence))
    assert decision.outcome == "started", decision.detail
    data = decision.evidence["training_data"]
    assert data["source"] == "logged_traffic+spec" and data["logged_rows"] == LABELLED
    assert data["dropped"] == {"unlabelled": SHOTS - LABELLED}
    assert data["uri"].startswith("runs:/")
    launcher.wait()
    assert policy.history("diecast")[-1]["detail"].startswith("succeeded"), policy.history()[-1]

    client = registry.client(server)
    first = client.get_model_version("diecast", str(base.version)).tags
    retrained = registry.list_versions(client, "diecast")[-1]
    tags = client.get_model_version("diecast", str(retrained.version)).tags
    assert retrained.version == base.version + 1 and tags[registry.TAG_RETRAIN_REASON] == "drift"
    assert tags[registry.TAG_DATA_HASH] != first[registry.TAG_DATA_HASH]
    assert first[f"{TAG_PREFIX}source"] == "spec:generator:diecast"
    assert tags[f"{TAG_PREFIX}source"] == "logged_traffic+spec"
    assert tags[f"{TAG_PREFIX}uri"] == data["uri"]
    assert tags[f"{TAG_PREFIX}logged_rows"] == str(LABELLED)
    # Gated on the holdout's logged rows alone too (a fifth of them), against the champion.
    assert f"recent window ({LABELLED // 5} logged rows): roc_auc=" in tags[registry.TAG_GATE]
    [partition] = data["partitions"]
    assert partition.startswith(f"diecast/{base.version}/date=")
    assert tags[f"{TAG_PREFIX}partitions"] == f"{partition}:{LABELLED}"
    run_tags = client.get_run(retrained.run_id).data.tags
    assert run_tags[f"{TAG_PREFIX}partitions"] == tags[f"{TAG_PREFIX}partitions"]

    chain = lineage(client, "diecast", home / "logs", version=str(retrained.version))
    assert chain.training_data["logged_rows"] == str(LABELLED)
    from castml.cli.main import app

    env = {"CASTML_HOME": str(home), "CASTML_MLFLOW_URI": server}
    shown = CliRunner().invoke(
        app, ["lineage", "diecast", "--version", str(retrained.version)], env=env
    )
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert f"{LABELLED} labelled logged rows" in text and f"logs/{partition}" in text
