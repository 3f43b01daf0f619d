"""The forecast job: recent observations -> the pinned champion's forecasts -> Redis.

One run (`castml forecast run`, `python -m serving forecast-job`, a CronJob; the embedded
scheduler calls `ForecastJob.run` every few minutes):

1. checks Redis first, so a run that cannot write scores nothing (`CacheUnavailableError`;
   the PING is answered while the observations are read);
2. resolves `CASTML_FORECAST_MODEL_VERSION` (`champion`) to a number, once for the whole run,
   and fetches that version (digest-checked, cached: serving.registry_store); a version
   already loaded by an earlier run of the same process is reused. A promotion is
   therefore picked up by the next run, and every record carries the version that made it;
3. reads the observation partitions the windows need and lays one window per series on
   its hourly grid, all series at once in numpy (serving.forecast_history); a process
   that runs the job again (the embedded scheduler) keeps the rows it read and reads only
   the files written since (serving.forecast_tail), and when those files only bring the
   next hours of the last run's windows, it shifts those windows instead of reading at all
   (serving.forecast_windows_kept); a series
   with too short or gappy a history is skipped, logged with its reason and counted in
   `castml_forecast_series_skipped`;
4. scores every complete window in one `forecast_grid` call (all horizons at once: the
   same rows and forecasts as `forecast_many` on each window);
5. matches the forecasts still waiting for their target hour with what is observed now
   (realised error per horizon: serving.forecast_realised; asked for before scoring,
   read after);
6. writes every forecast, the run summary and the forecasts' place in the realised-error
   logs in one MULTI/EXEC transaction, with the TTL.

Outcomes go to a Prometheus textfile, `<metrics dir>/forecast-<project>.prom`, also when a
run fails; the exit codes of `python -m serving forecast-job` are the servers' (69 for
Redis down, see `exit_code`).

No trial load in a child (unlike the predictor): the job is its own short-lived process,
so a version that crashes it fails that run loudly while the read endpoint keeps answering
the last run's forecasts (marked stale once they age).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from castml.errors import CastmlError
from castml.protocol.forecast_record import ForecastRecord, ForecastRun
from castml.runtime.manifest import Manifest
from serving.errors import NotFoundError, VersionRefusedError
from serving.forecast_cache import CacheUnavailableError, ForecastCache
from serving.forecast_history import (
    SKIP_GAP,
    SKIP_INVALID,
    SKIP_SHORT,
    Skipped,
    WindowBatch,
    window_batch,
)
from serving.forecast_metrics import (
    Staged,
    discard,
    job_metrics,
    publish,
    stage,
    write_job_metrics,
)
from serving.forecast_realised import Realised
from serving.forecast_table import ForecastTable
from serving.forecast_tail import ObservationTail
from serving.forecast_windows_kept import KeptWindows
from serving.registry_store import MODEL_SUBDIR, RegistryStore, RegistryUnavailableError
from serving.settings import ForecastSettings
from serving.version_store import LocalStore, VersionSource

log = logging.getLogger("serving.forecast")


class ForecastModelLike(Protocol):
    """What the job needs of `castml.runtime.forecast_model.ForecastModel`."""

    manifest: Manifest
    horizons: tuple[int, ...]
    history_rows: int
    time_column: str
    target: str
    exogenous: tuple[str, ...]

    def forecast_many(self, histories: Sequence[Mapping[str, np.ndarray]]) -> np.ndarray: ...

    def forecast_grid(
        self, grid: Mapping[str, np.ndarray], filled: np.ndarray, origin_seconds: np.ndarray
    ) -> np.ndarray: ...


class NoObservationsError(CastmlError):
    """Nothing to forecast from: no observations in the lookback (or none of the series)."""

    status_code = 404


class NotAForecastModelError(VersionRefusedError):
    """The version resolved is not of the forecast family."""


@dataclass(frozen=True)
class RunResult:
    run: ForecastRun
    table: ForecastTable
    skipped: list[Skipped]
    realised: list[Realised] = field(default_factory=list)  # per horizon, this run's matches

    @property
    def records(self) -> list[ForecastRecord]:
        return self.table.records()


def model_source(settings: ForecastSettings) -> VersionSource:
    if settings.forecast_model_store is not None:
        return LocalStore(settings.forecast_model_store)
    return RegistryStore(
        settings.tracking_uri,
        settings.forecast_project,
        settings.version_cache,
        settings.mlflow_timeout_s,
    )


def load_forecast_model(folder: Path, version: str) -> ForecastModelLike:
    model_dir = folder / MODEL_SUBDIR
    try:
        family = Manifest.read(model_dir).family
    except Exception as exc:
        raise VersionRefusedError(
            f"version {version}: its manifest is unreadable ({type(exc).__name__})"
        ) from exc
    if family != "forecast":
        raise NotAForecastModelError(
            f"version {version} is a '{family}' model, not a forecast model"
        )
    from castml.runtime.forecast_model import ForecastModel

    try:
        model: ForecastModelLike = ForecastModel.load(model_dir)
    except Exception as exc:  # the version's files: a refusal, not a bug of the job
        raise VersionRefusedError(
            f"version {version} failed to load: {type(exc).__name__}: {exc}"
        ) from exc
    return model


@dataclass
class ForecastJob:
    settings: ForecastSettings
    source: VersionSource | None = None
    cache: ForecastCache | None = None
    _models: dict[str, ForecastModelLike] = field(default_factory=dict)
    # The observations read by earlier runs of this process: a run reads the new files only.
    _tail: ObservationTail = field(default_factory=ObservationTail)
    # The last run's windows, when dense: a run that finds only their next hours skips both.
    _kept: KeptWindows = field(default_factory=KeptWindows)

    def __post_init__(self) -> None:
        self.source = self.source or model_source(self.settings)
        self.cache = self.cache or ForecastCache(self.settings)

    @property
    def project(self) -> str:
        return self.settings.forecast_project

    def model(self, ref: str) -> tuple[str, ForecastModelLike]:
        """The version `ref` names now, loaded (once per version in this process)."""
        assert self.source is not None
        version = self.source.resolve(ref)
        if version not in self._models:
            folder = self.source.fetch(version)
            self._models = {version: load_forecast_model(folder, version)}  # keep one
            log.warning("forecast job: loaded %s version %s", self.project, version)
        return version, self._models[version]

    def run(self, now: float | None = None) -> RunResult:
        """One run; raises CacheUnavailableError, NoObservationsError, registry errors.

        Every outcome, failures included, is written to the metrics textfile.
        """
        started = time.perf_counter()
        try:
            result, metrics = self._run(now)
        except CastmlError as exc:
            write_job_metrics(self.settings.metrics_dir, self.project, None, failure(exc))
            raise
        publish(metrics)
        log.warning(
            "forecast job: %s version %s: %d series forecast at %s h, %d skipped, %.2f s",
            self.project,
            result.run.model_version,
            result.run.written,
            ",".join(map(str, result.run.horizons)),
            len(result.skipped),
            time.perf_counter() - started,
        )
        return result

    def _run(self, now: float | None) -> tuple[RunResult, Staged]:
        """The run's result, and its metrics' textfile (staged while Redis runs the
        transaction; renamed into place once it has)."""
        assert self.cache is not None
        started = time.perf_counter()
        # A PING now, its answer read before anything is scored (a run that cannot write
        # fails first), the observations read meanwhile.
        self.cache.check_send()
        version, model = self.model(self.settings.forecast_model_version)
        columns = [model.time_column, model.target, *model.exogenous]
        only = set(self.settings.forecast_series) or None
        plan = getattr(model, "plan", None)  # castml.data.lag_features.LagPlan
        max_gap = int(getattr(plan, "max_gap", 0))
        step_ms = int(getattr(plan, "step_seconds", 3600)) * 1000
        query = (self.settings.logs_dir, self.project, self.settings.forecast_lookback_days)
        kept = self._kept.windows(*query, columns, model.history_rows, step_ms, only, max_gap)
        if kept is not None:  # the last run's windows and the new hours: the same batch
            found, skipped = kept
        else:
            observed = self._tail.read(*query, columns, model.history_rows, step_ms, only)
            found, skipped = window_batch(
                observed, model.time_column, model.history_rows, step_ms, only, max_gap
            )
            self._kept.keep(found, skipped)
        for skip in skipped:
            log.warning(
                "forecast job: series %s skipped (%s): %s", skip.series, skip.reason, skip.detail
            )
        if not len(found) and not skipped:
            raise NoObservationsError(
                f"no observations of {self.project} under {self.settings.logs_dir} "
                f"in the latest {self.settings.forecast_lookback_days} days"
            )
        self.cache.check_reply()
        # The forecasts waiting for these windows' hours are asked for now and read once
        # the boosters have run: Redis answers meanwhile.
        windows = found
        waiting = self.cache.ask_waiting(self.project, windows, model.horizons)
        found, values, refused = score_safely(model, found)
        skipped += refused
        made_at = time.time() if now is None else now
        table = make_table(
            self.project,
            version,
            model.horizons,
            found,
            values,
            made_at,
            self.settings.forecast_ttl_s,
        )
        run = ForecastRun(
            self.project,
            version,
            tuple(int(h) for h in model.horizons),
            made_at,
            len(found),
            {s.series: f"{s.reason}: {s.detail}" for s in skipped},
            round(time.perf_counter() - started, 4),
        )
        # Observations are the earlier forecasts' delayed labels: match them first.
        realised, recorded = self.cache.realise_asked(
            waiting, self.project, windows, run.horizons, model.target
        )
        # Cells, summary and logs in one transaction; the realised error's records after it,
        # in the same round trip. The metrics' textfile is staged while Redis runs them.
        sent = self.cache.write_send(table, run, remember=True, then=recorded)
        result = RunResult(run, table, skipped, realised)
        directory = self.settings.metrics_dir
        staged = stage(directory, self.project, job_metrics(directory, self.project, result, None))
        try:
            self.cache.write_reply(sent)
        except BaseException:
            discard(staged)
            raise
        return result, staged


def make_table(
    project: str,
    version: str,
    horizons: Sequence[int],
    found: WindowBatch,
    values: np.ndarray | None,
    made_at: float,
    ttl: int,
) -> ForecastTable:
    """The run's forecasts: a row per series scored, a column per horizon."""
    if values is None:
        values = np.empty((0, len(horizons)))
        found = found.subset(np.array([], dtype=np.intp))
    return ForecastTable(
        project,
        version,
        tuple(int(h) for h in horizons),
        found.series,
        found.end_ms / 1000,
        np.asarray(values, dtype=np.float64),
        made_at,
        ttl,
    )


def score_safely(
    model: ForecastModelLike, found: WindowBatch
) -> tuple[WindowBatch, np.ndarray | None, list[Skipped]]:
    """The windows the model scores, their forecasts `[S, H]`, and the windows it refuses.

    One call scores every window; only when the model refuses the batch (its own history
    checks, 422s: rare, the windows were checked already) does one call each find which.
    """
    if not len(found):
        return found, None, []
    try:
        return found, model.forecast_grid(found.grid, found.filled, found.end_ms // 1000), []
    except CastmlError:
        pass
    good: list[int] = []
    rows: list[np.ndarray] = []
    refused: list[Skipped] = []
    for i in range(len(found)):
        window = found.window(i)
        try:
            rows.append(model.forecast_many([window.columns])[0])
            good.append(i)
        except CastmlError as exc:
            reason = reason_of(exc)
            refused.append(Skipped(window.series, reason, str(exc)))
    kept = found.subset(np.asarray(good, dtype=np.intp))
    return kept, (np.stack(rows) if rows else None), refused


def reason_of(exc: CastmlError) -> str:
    """The skip reason of a model's refusal (castml.data.lag_features' history errors)."""
    name = type(exc).__name__
    if "Gap" in name:
        return SKIP_GAP
    return SKIP_SHORT if "TooShort" in name else SKIP_INVALID


def failure(exc: BaseException) -> str:
    """The metric label of a failed run."""
    if isinstance(exc, CacheUnavailableError):
        return "redis_unavailable"
    if isinstance(exc, RegistryUnavailableError):
        return "registry_unavailable"
    if isinstance(exc, VersionRefusedError):
        return "version_refused"
    if isinstance(exc, NoObservationsError):
        return "no_observations"
    if isinstance(exc, NotFoundError):
        return "version_not_found"
    return "error"


EXIT_CODES = {
    "redis_unavailable": 69,  # EX_UNAVAILABLE
    "registry_unavailable": 75,  # EX_TEMPFAIL, as the servers' start-up
    "version_refused": 65,
    "version_not_found": 66,
    "no_observations": 66,
    "error": 1,
}


def exit_code(exc: BaseException) -> int:
    return EXIT_CODES[failure(exc)]


def run_every(
    job: ForecastJob,
    every_s: float,
    stop: threading.Event,
    report: Callable[[RunResult | None, CastmlError | None], None] | None = None,
) -> None:
    """The embedded scheduler: a run every `every_s` seconds until `stop` is set.

    A failed run (Redis down, MLflow down, a refused version) is reported and the next
    one is tried on time, as a CronJob's next schedule would be; the cache keeps the last
    good run's forecasts meanwhile (marked stale once they age).
    """
    while not stop.is_set():
        started = time.monotonic()
        try:
            result = job.run()
        except CastmlError as exc:
            log.error("forecast run failed: %s", exc)
            if report:
                report(None, exc)
        else:
            if report:
                report(result, None)
        stop.wait(max(0.0, every_s - (time.monotonic() - started)))
