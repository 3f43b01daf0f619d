"""The drift job's retrain request: when the spec's monitoring policy asks for one, and where
it goes.

One path in both modes (DESIGN.md §2): the drift job files the request itself, with its
result as the evidence. In a cluster (and whenever CASTML_DRIFT_RETRAIN_URL is set) it
posts to the retrain endpoint (`POST /v1/retrain`, the collector's, bearer
CASTML_RETRAIN_TOKEN); inside the CLI it may hand the request to a policy in process.
Either way the answer is one `RetrainAnswer`: `started`, `skipped` with why, or `failed`.
Alerts stay for people; they no longer carry the retrain.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import httpx

from castml.spec import ProjectSpec
from monitoring.drift import DriftResult
from monitoring.policy import RetrainPolicy, RetrainRequest

REQUESTED_BY = "drift-job"


@dataclass(frozen=True)
class RetrainAnswer:
    """What became of the drift job's request (DriftResult.retrain)."""

    reason: str  # drift | performance
    outcome: str  # started | skipped | failed
    detail: str
    filed_to: str  # the endpoint's URL, or "in-process"
    run_id: str | None = None
    decision_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RetrainFiler(Protocol):
    """Files one request with the retrain policy and reports its decision."""

    def file(self, request: RetrainRequest) -> RetrainAnswer: ...


def _answer(request: RetrainRequest, decision: dict[str, Any], filed_to: str) -> RetrainAnswer:
    return RetrainAnswer(
        reason=request.reason,
        outcome=str(decision.get("outcome", "failed")),
        detail=str(decision.get("detail", "")),
        filed_to=filed_to,
        run_id=decision.get("run_id"),
        decision_id=decision.get("id"),
    )


class InProcessFiler:
    """The policy in this process (the CLI: `castml drift run`, `castml demo`)."""

    def __init__(self, policy: RetrainPolicy) -> None:
        self.policy = policy

    def file(self, request: RetrainRequest) -> RetrainAnswer:
        return _answer(request, self.policy.decide(request).to_dict(), "in-process")


class HttpFiler:
    """`POST <url>` (the retrain endpoint) with the bearer token; never raises.

    A drift job whose request could not be filed has still done its job: the answer
    says `failed` and why, the result is logged, and the alert remains for people.
    """

    def __init__(self, url: str, token: str | None, timeout_s: float = 30.0) -> None:
        self.url, self.token, self.timeout_s = url, token, timeout_s

    def file(self, request: RetrainRequest) -> RetrainAnswer:
        body = {
            "project": request.project,
            "reason": request.reason,
            "evidence_uri": request.evidence_uri,
            "evidence": request.evidence,
            "requested_at": request.requested_at,
        }
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            answer = httpx.post(self.url, json=body, headers=headers, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            return self._failed(request, f"retrain endpoint unreachable: {exc}")
        try:
            payload = answer.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or not payload.get("decisions"):
            text = answer.text[:300]
            return self._failed(request, f"retrain endpoint answered {answer.status_code}: {text}")
        return _answer(request, payload["decisions"][0], self.url)

    def _failed(self, request: RetrainRequest, detail: str) -> RetrainAnswer:
        return RetrainAnswer(request.reason, "failed", detail, self.url)


def evidence_of(result: DriftResult) -> dict[str, Any]:
    """The request's evidence: what the policy's guards and a person reading it need."""
    return {
        "rows": result.rows.get("current", 0),
        "labeled_rows": result.rows.get("labeled", 0),
        "model_version": result.model_version,
        "window": result.window,
        "drift_share": result.drift_share,
        "drifted": sorted(name for name, f in result.features.items() if f.drifted),
        "performance": result.performance,
        "drift_run_id": result.mlflow_run_id,
    }


def wanted_reason(result: DriftResult, spec: ProjectSpec) -> str | None:
    """The retrain the spec's monitoring policy asks for, if any.

    `drift`: the share of drifted features reached `monitoring.drift_share` (the job's
    `dataset_drift`). `performance`: the realised F1 over at least `min_window_rows`
    labelled rows fell below the spec's floor, when the spec sets one.
    """
    if result.status != "ok":
        return None  # insufficient data is never a trigger
    if result.dataset_drift:
        return "drift"
    floor = spec.monitoring.min_f1
    f1 = (result.performance or {}).get("f1")
    labeled = result.rows.get("labeled", 0)
    if floor is not None and f1 is not None and labeled >= spec.monitoring.min_window_rows:
        return "performance" if f1 < floor else None
    return None


def request_for(result: DriftResult, spec: ProjectSpec) -> RetrainRequest | None:
    reason = wanted_reason(result, spec)
    if reason is None:
        return None
    return RetrainRequest(
        project=result.project,
        reason=reason,
        evidence_uri=result.report_uri,
        evidence=evidence_of(result),
        requested_at=result.computed_at,
        requested_by=REQUESTED_BY,
    )
