"""The embedded stand-in for the KFP recurring run: fire the policy on the spec's cron.

KFP cron has six fields (second minute hour day-of-month month day-of-week), e.g.
`0 0 2 1 * *` = 02:00:00 on the 1st of each month. A schedule decision goes through
the same policy (cooldown, dedupe, budget) as every other reason.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from castml.errors import CastmlError
from monitoring.policy import Decision, RetrainPolicy, RetrainRequest

_RANGES = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


class CronError(CastmlError):
    """A cron expression this scheduler cannot read."""


def _field(text: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            start, end = low, high
        elif "-" in base:
            start, end = (int(x) for x in base.split("-"))
        else:
            start = end = int(base)
        if not low <= start <= end <= high or step < 1:
            raise CronError(f"cron field '{part}' is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return values


def parse_cron(expression: str) -> list[set[int]]:
    parts = expression.split()
    if len(parts) != 6:
        raise CronError(f"cron '{expression}' needs six fields (sec min hour dom month dow)")
    try:
        return [_field(p, lo, hi) for p, (lo, hi) in zip(parts, _RANGES, strict=True)]
    except ValueError as exc:
        raise CronError(f"cron '{expression}': {exc}") from exc


def next_fire(expression: str, after: datetime) -> datetime:
    """The first time strictly after `after` (UTC) that matches; days walked, then seconds."""
    sec, minute, hour, dom, month, dow = parse_cron(expression)
    day = after.replace(hour=0, minute=0, second=0, microsecond=0)
    for _ in range(366 * 5):
        # Python: Monday=0; cron: Sunday=0.
        if day.month in month and day.day in dom and (day.weekday() + 1) % 7 in dow:
            for h in sorted(hour):
                for m in sorted(minute):
                    for s in sorted(sec):
                        moment = day.replace(hour=h, minute=m, second=s)
                        if moment > after:
                            return moment
        day += timedelta(days=1)
    raise CronError(f"cron '{expression}' never fires")


class LocalScheduler:
    """A daemon thread that asks the policy for a `schedule` retrain at each fire time."""

    def __init__(
        self,
        policy: RetrainPolicy,
        project: str,
        cron: str,
        on_decision: Callable[[Decision], None] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        parse_cron(cron)  # fail at start-up, not at the first fire
        self.policy, self.project, self.cron = policy, project, cron
        self.on_decision = on_decision
        self.now = now
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"schedule-{project}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            fire = next_fire(self.cron, self.now())
            if self._stop.wait(max(0.0, (fire - self.now()).total_seconds())):
                return
            decision = self.policy.decide(
                RetrainRequest(
                    self.project,
                    "schedule",
                    requested_by="local-scheduler",
                    evidence={"cron": self.cron, "fired_at": fire.isoformat()},
                )
            )
            if self.on_decision is not None:
                self.on_decision(decision)
