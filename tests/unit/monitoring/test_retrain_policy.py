"""The retrain policy's guards, with a real recording launcher and a settable clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from castml.spec import load_spec
from monitoring.drift import DriftResult
from monitoring.policy import BadRetrainRequestError, RetrainPolicy, RetrainRequest
from monitoring.retrain_api import requests_from
from monitoring.retrain_filing import HttpFiler, InProcessFiler, request_for
from monitoring.scheduler import CronError, next_fire
from tests.support.ports import free_port


class RecordingLauncher:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str, str | None]] = []
        self.fail = fail

    def launch(
        self, project: str, reason: str, evidence_uri: str | None, data_path: str = ""
    ) -> str:
        if self.fail:
            raise RuntimeError("KFP API unreachable")
        self.calls.append((project, reason, evidence_uri))
        return f"run-{len(self.calls)}"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 3, 12, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now

    def hours(self, h: float) -> None:
        self.now += h * 3600


def _policy(tmp_path: Path, launcher: RecordingLauncher, clock: Clock) -> RetrainPolicy:
    return RetrainPolicy(load_spec, launcher, tmp_path, max_run_hours=6, clock=clock)


def test_guards_dedupe_cooldown_and_budget(tmp_path: Path) -> None:
    launcher, clock = RecordingLauncher(), Clock()
    policy = _policy(tmp_path, launcher, clock)
    first = policy.decide(RetrainRequest("diecast", "drift", "mlflow-artifacts:/x/result.json"))
    assert first.outcome == "started" and first.run_id == "run-1"
    assert launcher.calls == [("diecast", "drift", "mlflow-artifacts:/x/result.json")]
    assert policy.decide(RetrainRequest("diecast", "drift")).detail.startswith("duplicate")
    policy.finished("diecast", "run-1", "succeeded")
    assert policy.decide(RetrainRequest("diecast", "schedule")).detail.startswith("cooldown")
    manual = policy.decide(RetrainRequest("diecast", "manual"))  # a person passes the cooldown
    assert manual.outcome == "started"
    for run in ("run-2", "run-3", "run-4"):
        policy.finished("diecast", run, "succeeded")
        clock.hours(25)
        if run != "run-4":
            assert policy.decide(RetrainRequest("diecast", "drift")).outcome == "started"
    budget = policy.decide(RetrainRequest("diecast", "drift"))  # 4 of 4 this month
    assert budget.outcome == "skipped" and budget.detail.startswith("budget")
    # A restarted policy reads the same decisions, with their evidence.
    again = _policy(tmp_path, launcher, clock)
    history = again.history("diecast")
    assert [d["outcome"] for d in history].count("started") == 4
    assert history[0]["evidence_uri"] == "mlflow-artifacts:/x/result.json"
    assert again.decide(RetrainRequest("diecast", "drift")).detail.startswith("budget")


def test_too_few_rows_unknown_reason_and_launcher_failure(tmp_path: Path) -> None:
    policy = _policy(tmp_path, RecordingLauncher(fail=True), Clock())
    few = policy.decide(RetrainRequest("diecast", "drift", evidence={"rows": 12}))
    assert few.outcome == "skipped" and few.detail.startswith("too few rows")
    failed = policy.decide(RetrainRequest("diecast", "manual"))
    assert failed.outcome == "failed" and "KFP API unreachable" in failed.detail
    with pytest.raises(BadRetrainRequestError):
        policy.decide(RetrainRequest("diecast", "because"))
    with pytest.raises(BadRetrainRequestError):
        policy.decide(RetrainRequest("no-such-project", "manual"))


def test_alertmanager_webhook_becomes_one_request_per_firing_project() -> None:
    alert = {
        "status": "firing",
        "labels": {"alertname": "CastmlDrift", "project": "diecast"},
        "annotations": {"evidence_uri": "s3://bucket/result.json"},
    }
    payload = {
        "version": "4",
        "status": "firing",
        "alerts": [alert, alert, {**alert, "status": "resolved", "labels": {"project": "bikes"}}],
    }
    requests = requests_from(payload)
    assert [(r.project, r.reason, r.evidence_uri) for r in requests] == [
        ("diecast", "drift", "s3://bucket/result.json")
    ]


def test_monthly_cron_fires_at_two_on_the_first() -> None:
    after = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
    assert next_fire("0 0 2 1 * *", after) == datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    assert next_fire("*/15 * * * * *", after) == datetime(2026, 11, 21, 9, 30, 15, tzinfo=UTC)
    with pytest.raises(CronError):
        next_fire("0 0 2 1 *", after)


def _drift_result(status: str = "ok", dataset_drift: bool = True) -> DriftResult:
    return DriftResult(
        project="diecast",
        model_version="3",
        window={"spec": "1d", "start": "s", "end": "e"},
        rows={"current": 500, "reference": 2000, "labeled": 300},
        status=status,
        drift_share=0.4 if dataset_drift else 0.05,
        dataset_drift=dataset_drift,
        report_uri="mlflow-artifacts:/1/abc/artifacts/drift/drift_report.html",
        mlflow_run_id="abc",
        computed_at="2026-11-03T12:00:00+00:00",
    )


def test_the_drift_job_asks_for_a_drift_retrain_only_when_the_spec_says_drift() -> None:
    spec = load_spec("diecast")
    request = request_for(_drift_result(), spec)
    assert request is not None and (request.reason, request.project) == ("drift", "diecast")
    assert request.evidence_uri == _drift_result().report_uri
    assert request.evidence["rows"] == 500 and request.evidence["drift_run_id"] == "abc"
    assert request_for(_drift_result(dataset_drift=False), spec) is None
    assert request_for(_drift_result("insufficient_data"), spec) is None


def test_a_filed_request_goes_through_the_policys_guards_in_process(tmp_path: Path) -> None:
    policy = RetrainPolicy(load_spec, RecordingLauncher(), tmp_path, clock=Clock())
    request = request_for(_drift_result(), load_spec("diecast"))
    assert request is not None
    first = InProcessFiler(policy).file(request)
    second = InProcessFiler(policy).file(request)
    assert (first.outcome, first.run_id, first.filed_to) == ("started", "run-1", "in-process")
    assert second.outcome == "skipped" and second.detail.startswith("duplicate")
    assert policy.history()[-1]["requested_by"] == "drift-job"


def test_an_unreachable_retrain_endpoint_is_a_failed_answer_not_a_crash() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/retrain"  # nothing listens there
    request = request_for(_drift_result(), load_spec("diecast"))
    assert request is not None
    answer = HttpFiler(url, "token", timeout_s=2).file(request)
    assert answer.outcome == "failed" and "unreachable" in answer.detail
    assert answer.filed_to == url
