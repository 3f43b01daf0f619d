"""Metrics of the forecast job (a Prometheus textfile per run) and of the read endpoint.

The job is a short-lived process (a CronJob), so each run rewrites
`<metrics dir>/forecast-<project>.prom` atomically, failures included: node-exporter's
textfile collector (or a shared volume) exposes it. The read endpoint exposes its own
request metrics, whether Redis answers, and the last run's summary read from Redis, so a
cluster without a shared volume still sees the job (a failed run shows as a stale
`castml_forecast_last_run_age_seconds`, and as the Job's failed status).
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter as Tally
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from serving.forecast_history import SKIP_REASONS
from serving.metrics import ServerMetrics

if TYPE_CHECKING:
    from castml.protocol.forecast_record import ForecastRun
    from serving.forecast_job import RunResult

LAST_SUCCESS = "castml_forecast_job_last_success_timestamp_seconds"


def textfile(directory: Path, project: str) -> Path:
    return directory / f"forecast-{project}.prom"


def _previous_success(path: Path, project: str) -> float | None:
    """The last success a previous run recorded (a failed run keeps showing it)."""
    try:
        text = path.read_text()
    except OSError:
        return None
    match = re.search(
        rf'^{LAST_SUCCESS}{{project="{re.escape(project)}"}} (\S+)$', text, re.MULTILINE
    )
    return float(match.group(1)) if match else None


def write_job_metrics(
    directory: Path, project: str, result: RunResult | None, failure: str | None
) -> None:
    """One run's outcome as gauges; `failure` names why a run failed (None: it succeeded)."""
    publish(stage(directory, project, job_metrics(directory, project, result, failure)))


@dataclass(frozen=True)
class Staged:
    """A run's textfile written beside its place (a dot-name the textfile collector
    skips), not renamed into it yet."""

    temp: Path
    path: Path


def stage(directory: Path, project: str, registry: CollectorRegistry) -> Staged:
    """The gauges written to a temp file: the job does it while Redis runs its
    transaction, and `publish`es (or `discard`s) once Redis has answered."""
    directory.mkdir(parents=True, exist_ok=True)
    path = textfile(directory, project)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temp.write_bytes(generate_latest(registry))
    return Staged(temp, path)


def publish(staged: Staged) -> None:
    """The staged file renamed into place: a reader sees the old file or the new, whole."""
    os.replace(staged.temp, staged.path)


def discard(staged: Staged) -> None:
    staged.temp.unlink(missing_ok=True)


def job_metrics(
    directory: Path, project: str, result: RunResult | None, failure: str | None
) -> CollectorRegistry:
    """`write_job_metrics`'s gauges, not written yet (the job builds them while Redis
    runs its transaction, and publishes them once Redis has taken it)."""
    registry = CollectorRegistry()
    path = textfile(directory, project)
    now = time.time()
    Gauge(
        "castml_forecast_job_last_run_timestamp_seconds",
        "When the forecast job last finished a run, successful or not.",
        ["project"],
        registry=registry,
    ).labels(project).set(now)
    ok = Gauge(
        "castml_forecast_job_success",
        "1 when the last run of the forecast job wrote its forecasts, else 0.",
        ["project"],
        registry=registry,
    )
    ok.labels(project).set(0 if failure else 1)
    success = Gauge(
        LAST_SUCCESS, "When a forecast run last succeeded.", ["project"], registry=registry
    )
    previous = now if failure is None else _previous_success(path, project)
    if previous is not None:
        success.labels(project).set(previous)
    if failure is not None:
        Gauge(
            "castml_forecast_job_failure",
            "1 for the reason the last run failed (redis_unavailable, registry_unavailable, "
            "version_refused, version_not_found, no_observations, error).",
            ["project", "reason"],
            registry=registry,
        ).labels(project, failure).set(1)
    if result is not None:
        run = result.run
        Gauge(
            "castml_forecast_series_written",
            "Series the last run forecast (each at every horizon).",
            ["project"],
            registry=registry,
        ).labels(project).set(run.written)
        skipped = Gauge(
            "castml_forecast_series_skipped",
            "Series the last run skipped, by reason (gap: hours missing in the history; "
            "too_short: not enough history; invalid: the model refused it otherwise).",
            ["project", "reason"],
            registry=registry,
        )
        by_reason = Tally(s.reason for s in result.skipped)
        for reason in SKIP_REASONS:
            skipped.labels(project, reason).set(by_reason.get(reason, 0))
        Gauge(
            "castml_forecast_job_seconds",
            "Seconds the last successful run took (observations to Redis).",
            ["project"],
            registry=registry,
        ).labels(project).set(run.seconds)
        matched = Gauge(
            "castml_forecast_realised_matched",
            "Earlier forecasts whose target hour the last run found observed, by horizon.",
            ["project", "horizon"],
            registry=registry,
        )
        mae = Gauge(
            "castml_forecast_realised_mae",
            "Mean absolute error of those forecasts (the last run's matches), by horizon.",
            ["project", "horizon"],
            registry=registry,
        )
        for realised in result.realised:
            matched.labels(project, str(realised.horizon)).set(realised.matched)
            if realised.matched:
                mae.labels(project, str(realised.horizon)).set(realised.mae)
        Gauge(
            "castml_forecast_model_version",
            "The registry version the last run forecast with (1 = that version).",
            ["project", "version"],
            registry=registry,
        ).labels(project, run.model_version).set(1)
    return registry


class ForecastApiMetrics(ServerMetrics):
    """The read endpoint's: requests by outcome, Redis up, and the last run's summary."""

    def __init__(self, project: str) -> None:
        super().__init__("forecast")
        self.project = project
        self.answers = Counter(
            "castml_forecast_reads",
            "Forecast reads answered, by outcome (fresh, stale, missing, unavailable).",
            ["project", "outcome"],
            registry=self.registry,
        )
        self.redis_up = Gauge(
            "castml_forecast_redis_up",
            "1 when the forecast cache (Redis) answered the last check, else 0.",
            ["project"],
            registry=self.registry,
        )
        self.last_run_age = Gauge(
            "castml_forecast_last_run_age_seconds",
            "Seconds since the forecast job's last successful run (from its summary in Redis).",
            ["project"],
            registry=self.registry,
        )
        self.series_written = Gauge(
            "castml_forecast_last_run_series_written",
            "Series the last successful run forecast.",
            ["project"],
            registry=self.registry,
        )
        self.series_skipped = Gauge(
            "castml_forecast_last_run_series_skipped",
            "Series the last successful run skipped (gaps, too little history).",
            ["project"],
            registry=self.registry,
        )
        self.realised_count = Gauge(
            "castml_forecast_realised_count",
            "Served forecasts matched with their observation so far, by horizon (a counter: "
            "it only grows while Redis keeps its sums).",
            ["project", "horizon"],
            registry=self.registry,
        )
        self.realised_abs = Gauge(
            "castml_forecast_realised_abs_error_sum",
            "Sum of their absolute errors, by horizon (MAE = rate of this / rate of the count).",
            ["project", "horizon"],
            registry=self.registry,
        )
        self.realised_sq = Gauge(
            "castml_forecast_realised_squared_error_sum",
            "Sum of their squared errors, by horizon (RMSE = sqrt(rate of this / rate of the "
            "count)).",
            ["project", "horizon"],
            registry=self.registry,
        )
        self.outcomes = {
            name: self.answers.labels(project, name)
            for name in ("fresh", "stale", "missing", "unavailable")
        }

    def realised(self, sums: dict[int, tuple[int, float, float]]) -> None:
        for horizon, (n, abs_sum, sq_sum) in sums.items():
            self.realised_count.labels(self.project, str(horizon)).set(n)
            self.realised_abs.labels(self.project, str(horizon)).set(abs_sum)
            self.realised_sq.labels(self.project, str(horizon)).set(sq_sum)

    def last_run(self, run: ForecastRun | None, up: bool) -> None:
        self.redis_up.labels(self.project).set(1 if up else 0)
        if run is not None:
            self.last_run_age.labels(self.project).set(round(time.time() - run.finished_at, 3))
            self.series_written.labels(self.project).set(run.written)
            self.series_skipped.labels(self.project).set(len(run.skipped))
            self.served(self.project, run.model_version)
