"""`castml lineage`: registry tags + the collector's Parquet + the drift job's runs, one chain."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from castml import registry
from monitoring.collector import Collector
from monitoring.collector_app import spec_features
from monitoring.drift_job import run_drift
from monitoring.event_ingest import decode
from monitoring.feedback_ingest import feedback_record
from monitoring.lineage import RequestNotFoundError, lineage
from monitoring.settings import CollectorSettings, DriftSettings
from tests.support.collector_process import pair

pytestmark = pytest.mark.integration


async def _log(home: Path, version: str, ids: list[str], labels: dict[str, int]) -> None:
    """The collector's own code path, in process: ack -> join -> Parquet."""
    core = Collector(CollectorSettings.model_validate({"home": home}), spec_features)
    await core.start()
    try:
        for request_id in ids:
            for headers, body in pair(request_id, rows=2, version=version):
                await core.submit(decode(headers, body, core.features_of))
        for request_id, label in labels.items():
            item = {"request_id": request_id, "label": label}
            await core.submit(
                feedback_record(item, core.knows_request, "diecast", core.features_of)
            )
        await core.flush()
    finally:
        await core.stop()


@pytest.fixture
def logged(tmp_path: Path, registered_diecast: Any) -> tuple[Path, str, str]:
    """(home, champion version, drift run id) with traffic, a label and a drift report."""
    version = str(registered_diecast.versions[0])
    asyncio.run(_log(tmp_path, version, ["lin-1", "lin-2"], {"lin-1": 1}))
    client = registry.client(registered_diecast.uri)
    # What the rollout reconciler writes after serving a version (serving/rollout.py).
    for key, value in {"status": "serving", "target": "isvc default/diecast"}.items():
        client.set_model_version_tag("diecast", version, f"deployed.{key}", value)
    settings = DriftSettings.model_validate(
        {"home": tmp_path, "mlflow_uri": registered_diecast.uri}
    )
    drift = run_drift("diecast", "1d", settings)  # 4 rows: an insufficient_data report
    assert drift.mlflow_run_id is not None
    return tmp_path, version, drift.mlflow_run_id


def test_a_request_id_leads_to_its_version_and_the_whole_chain(
    logged: tuple[Path, str, str], registered_diecast: Any
) -> None:
    home, version, drift_run = logged
    client = registry.client(registered_diecast.uri)
    chain = lineage(client, "diecast", home / "logs", request_id="lin-1")
    assert chain.version == version and "champion" in chain.aliases
    assert chain.data_hash and chain.pipeline_run_id and chain.training_run_id
    assert chain.retrain_reason in registry.RETRAIN_REASONS
    assert chain.deployed["status"] == "serving"
    assert [p.rows for p in chain.partitions] == [4]  # two requests of two rows
    assert chain.request is not None and chain.request.rows == 2 and chain.request.labels == [1.0]
    assert drift_run in {r.run_id for r in chain.drift_reports}
    mine = next(r for r in chain.drift_reports if r.run_id == drift_run)
    assert mine.status == "insufficient_data" and mine.report_uri is None

    with pytest.raises(RequestNotFoundError):
        lineage(client, "diecast", home / "logs", request_id="never-logged")


def test_cli_prints_the_chain_for_a_version(
    logged: tuple[Path, str, str], registered_diecast: Any
) -> None:
    from castml.cli.main import app

    home, version, drift_run = logged
    env = {"CASTML_HOME": str(home), "CASTML_MLFLOW_URI": registered_diecast.uri}
    result = CliRunner().invoke(app, ["lineage", "diecast", "--version", version], env=env)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for expected in (f"version {version}", "data hash", "serving", "date=", drift_run):
        assert expected in text
    by_request = CliRunner().invoke(app, ["lineage", "diecast", "--request-id", "lin-2"], env=env)
    assert by_request.exit_code == 0 and "request lin-2" in " ".join(by_request.output.split())
