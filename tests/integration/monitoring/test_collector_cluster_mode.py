"""What the chart runs: trusted network ingest, retrain on the collector's port, drift gauges."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitoring.drift import DriftResult, FeatureDrift
from monitoring.drift_metrics import write_gauges
from monitoring.settings import gauges_file
from tests.support.collector_process import TOKEN, CollectorProcess, pair

pytestmark = pytest.mark.integration

ANONYMOUS = {"authorization": ""}


def test_ingest_needs_credentials_unless_the_network_is_trusted(tmp_path: Path) -> None:
    for trusted, expected in (("false", 401), ("true", 202)):
        home = tmp_path / trusted
        collector = CollectorProcess(home, CASTML_COLLECTOR_TRUST_NETWORK_INGEST=trusted).start()
        try:
            headers, body = pair(f"trust-{trusted}")[0]
            answer = collector.client.post("/", headers={**headers, **ANONYMOUS}, content=body)
            assert answer.status_code == expected
            # Feedback stays authenticated whatever the ingest setting says.
            label = {"request_id": f"trust-{trusted}", "label": 1}
            assert (
                collector.client.post("/v1/feedback", json=label, headers=ANONYMOUS).status_code
                == 401
            )
            assert collector.client.post("/v1/feedback", json=label).status_code == 202
        finally:
            collector.stop()


def test_retrain_endpoint_is_served_on_the_collector_port_behind_the_token(tmp_path: Path) -> None:
    collector = CollectorProcess(tmp_path, CASTML_RETRAIN_TOKEN=TOKEN).start()
    try:
        # Too few rows: the policy answers "skipped" without launching a pipeline.
        request = {"project": "diecast", "reason": "drift", "evidence": {"rows": 5}}
        assert (
            collector.client.post("/v1/retrain", json=request, headers=ANONYMOUS).status_code == 401
        )
        answer = collector.client.post("/v1/retrain", json=request)
        assert answer.status_code == 200
        decision = answer.json()["decisions"][0]
        assert decision["outcome"] == "skipped" and decision["detail"].startswith("too few rows")
        resolved = {
            "status": "resolved",
            "alerts": [{"status": "resolved", "labels": {"project": "diecast"}}],
        }
        assert collector.client.post("/v1/retrain", json=resolved).json() == {"decisions": []}

        assert collector.client.get("/v1/retrain/decisions", headers=ANONYMOUS).status_code == 401
        history = collector.client.get("/v1/retrain/decisions", params={"project": "diecast"})
        assert [d["outcome"] for d in history.json()] == ["skipped"]
    finally:
        collector.stop()


def test_without_a_retrain_token_the_collector_serves_no_retrain_route(tmp_path: Path) -> None:
    collector = CollectorProcess(tmp_path).start()
    try:
        assert collector.client.post("/v1/retrain", json={}).status_code == 404
    finally:
        collector.stop()


def _result(project: str, share: float) -> DriftResult:
    result = DriftResult(project, "3", {"spec": "1d"}, {"current": 500, "reference": 2000})
    result.drift_share, result.dataset_drift = share, share >= 0.2
    result.features = {"melt_temperature": FeatureDrift(0.001, "ks", 0.05, True)}
    result.performance = {"f1": 0.71}
    return result


def test_metrics_carry_the_drift_jobs_gauges_of_every_project(tmp_path: Path) -> None:
    write_gauges(gauges_file(tmp_path / "metrics", "diecast"), _result("diecast", 0.3))
    write_gauges(gauges_file(tmp_path / "metrics", "bikeshare"), _result("bikeshare", 0.1))
    collector = CollectorProcess(tmp_path).start()
    try:
        text = collector.client.get("/metrics").text
    finally:
        collector.stop()
    # A valid exposition declares each family once, whatever the number of files.
    families = {f.name: f for f in text_string_to_metric_families(text)}
    shares = {s.labels["project"]: s.value for s in families["castml_drift_share"].samples}
    assert shares == {"diecast": 0.3, "bikeshare": 0.1}
    assert (
        families["castml_drift_feature_drifted"].samples[0].labels["feature"] == "melt_temperature"
    )
    assert "castml_realised_f1" in families and "castml_collector_events_received" in families
