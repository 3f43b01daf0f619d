"""The retrain policy: one decision per request, with its evidence, kept forever.

Guards, in order: the reason must be known; drift/performance evidence must rest
on enough rows; one run in flight per project (dedupe); a cooldown after the last
start (a person asking with `manual` passes it); a monthly budget of starts.
Decisions are JSON lines under `<home>/retrain/decisions.jsonl`, the policy's only
state, so a restarted policy keeps its cooldown, dedupe and budget.

Once the guards pass, the policy's training-data step (when it has one) picks the
data the run trains on, e.g. the labelled logged traffic (`monitoring.training_set`);
what it picked, or why it fell back to the spec's source, is part of the decision's
evidence, and its location goes to the launcher as `data_path`.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from castml.errors import CastmlError
from castml.spec import ProjectSpec

REASONS = ("drift", "performance", "schedule", "manual")


class PipelineLauncher(Protocol):
    """Starts one training pipeline run; the CLI injects kfp.local or a KFP cluster.

    `data_path` is what the pipeline's `data_path` parameter gets: "" for the spec's
    source, else a location the pipeline can read (a `runs:/` URI in MLflow).
    """

    def launch(
        self, project: str, reason: str, evidence_uri: str | None, data_path: str = ""
    ) -> str:  # run id
        ...


@dataclass(frozen=True)
class PreparedData:
    """The data a started run trains on: its location ("" = the spec's source) and why."""

    data_path: str
    evidence: dict[str, Any]


class TrainingData(Protocol):
    """Picks (and, if it builds one, stores) the training data for one started run."""

    def prepare(self, project: str, reason: str) -> PreparedData: ...


class BadRetrainRequestError(CastmlError):
    """A retrain request with an unknown reason or project."""

    status_code = 422


def _now_iso(clock: Callable[[], float]) -> str:
    return datetime.fromtimestamp(clock(), UTC).isoformat()


@dataclass
class RetrainRequest:
    """DESIGN.md §4 "Retrain request"."""

    project: str
    reason: str
    evidence_uri: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)  # e.g. drift share, window rows
    requested_at: str | None = None
    requested_by: str = "cli"


@dataclass
class Decision:
    id: str
    project: str
    reason: str
    outcome: str  # started | skipped | failed | finished
    detail: str
    run_id: str | None
    requested_at: str
    decided_at: str
    evidence_uri: str | None
    evidence: dict[str, Any]
    requested_by: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RetrainPolicy:
    def __init__(
        self,
        spec_of: Callable[[str], ProjectSpec],
        launcher: PipelineLauncher,
        decisions_dir: Path,
        max_run_hours: float = 6.0,
        clock: Callable[[], float] = time.time,
        training_data: TrainingData | None = None,
    ) -> None:
        self.spec_of = spec_of
        self.launcher = launcher
        self.training_data = training_data
        self.path = decisions_dir / "decisions.jsonl"
        self.max_run_s = max_run_hours * 3600
        self.clock = clock
        self._lock = threading.Lock()  # decide() is called from HTTP handlers and the scheduler

    def history(self, project: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_bytes().splitlines():
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a torn last line from a crash
            if project is None or row["project"] == project:
                rows.append(row)
        return rows

    def _append(self, decision: Decision) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            handle.write(orjson.dumps(decision.to_dict()) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _why_not(self, request: RetrainRequest, spec: ProjectSpec) -> str | None:
        rows = request.evidence.get("rows")
        least = spec.monitoring.min_window_rows
        evidence_based = request.reason in ("drift", "performance")
        if evidence_based and isinstance(rows, int | float) and rows < least:
            return f"too few rows: {int(rows)} < min_window_rows={least}"
        history = self.history(request.project)
        now = self.clock()
        ended = {r["run_id"] for r in history if r["outcome"] == "finished"}
        starts = [r for r in history if r["outcome"] == "started"]
        for start in starts:
            age = now - datetime.fromisoformat(start["decided_at"]).timestamp()
            if start["run_id"] not in ended and age < self.max_run_s:
                return f"duplicate: run {start['run_id']} for {request.project} is still in flight"
        if starts and request.reason != "manual":
            last = datetime.fromisoformat(starts[-1]["decided_at"]).timestamp()
            wait_h = spec.retrain.cooldown_hours - (now - last) / 3600
            if wait_h > 0:
                ago = (now - last) / 3600
                return f"cooldown: last run started {ago:.1f} h ago, {wait_h:.1f} h left"
        month = datetime.fromtimestamp(now, UTC).strftime("%Y-%m")
        used = sum(1 for r in starts if r["decided_at"][:7] == month)
        if used >= spec.retrain.monthly_budget:
            return (
                f"budget: {used} of {spec.retrain.monthly_budget} runs this month already started"
            )
        return None

    def decide(self, request: RetrainRequest) -> Decision:
        if request.reason not in REASONS:
            raise BadRetrainRequestError(
                f"unknown reason '{request.reason}' (known: {', '.join(REASONS)})"
            )
        try:
            spec = self.spec_of(request.project)
        except CastmlError as exc:
            raise BadRetrainRequestError(str(exc)) from exc
        with self._lock:
            requested_at = request.requested_at or _now_iso(self.clock)
            why = self._why_not(request, spec)
            run_id: str | None = None
            evidence = dict(request.evidence)
            if why is not None:
                outcome, detail = "skipped", why
            else:
                try:
                    data_path = ""
                    if self.training_data is not None:
                        prepared = self.training_data.prepare(request.project, request.reason)
                        data_path, evidence["training_data"] = prepared.data_path, prepared.evidence
                    run_id = self.launcher.launch(
                        request.project, request.reason, request.evidence_uri, data_path
                    )
                    outcome, detail = "started", f"pipeline run {run_id}"
                except Exception as exc:
                    outcome, detail = "failed", f"{type(exc).__name__}: {exc}"
            decision = Decision(
                id=uuid.uuid4().hex,
                project=request.project,
                reason=request.reason,
                outcome=outcome,
                detail=detail,
                run_id=run_id,
                requested_at=requested_at,
                decided_at=_now_iso(self.clock),
                evidence_uri=request.evidence_uri,
                evidence=evidence,
                requested_by=request.requested_by,
            )
            self._append(decision)
            return decision

    def finished(self, project: str, run_id: str, detail: str) -> None:
        """Record a run's end (lifts the dedupe guard); the launcher calls it."""
        with self._lock:
            now = _now_iso(self.clock)
            self._append(
                Decision(
                    id=uuid.uuid4().hex,
                    project=project,
                    reason="",
                    outcome="finished",
                    detail=detail,
                    run_id=run_id,
                    requested_at=now,
                    decided_at=now,
                    evidence_uri=None,
                    evidence={},
                    requested_by="launcher",
                )
            )
