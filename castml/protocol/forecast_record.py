"""The forecast cache record and the observation record: contracts serving and monitoring share.

**Forecast cache** (Redis). The forecast job (serving.forecast_job) writes one key per series
and horizon, `forecast:<project>:<series>:<horizon>`, holding a JSON object with
`project`, `series`, `horizon` (hours ahead), `value`, `model_version` (the number the
job resolved `@champion` to), `made_at` (when the job wrote it), `window_end` (the last
observed hour the forecast was made from), `target_time` (`window_end` + horizon) and
`ttl_s`; the key expires after `ttl_s`. The read endpoint (serving.forecast_api) answers
those fields, plus `age_s` and `stale`. Times are ISO-8601 in UTC. The job also writes
`forecast-run:<project>`, the summary of its last run (what `/metrics` shows), and the
realised error: the forecasts of one horizon made from one window end wait together in
`forecast-log:<project>:<horizon>:<target epoch seconds>` (a JSON object of `series` and
`values`) until their target hour is observed, then their errors are added to
`forecast-error:<project>` (sums per horizon) and they are dropped.

**Observations** (Parquet). The collector's `POST /v1/observations`
(monitoring.observation_ingest) takes `{"project", "series"?, "observations": [{<time
column>, <target>, <exogenous columns>..., "series"?}]}` and writes the rows atomically
under `logs/<project>/observations/date=YYYY-MM-DD/` (the day of each row's own time, so
the job reads the latest days only), with the columns of `ObservationSchema.arrow_schema`.
The same (series, time) may arrive twice across posts (a replay): readers keep the row
received last. These rows are the forecasts' delayed labels.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa

from castml.errors import CastmlError
from castml.protocol.payload_record import check_project

KEY_PREFIX = "forecast"
RUN_PREFIX = "forecast-run"
LOG_PREFIX = "forecast-log"
ERROR_PREFIX = "forecast-error"
OBSERVATIONS_DIR = "observations"
SERIES_COLUMN = "series"
RECEIVED_COLUMN = "received_at"
DEFAULT_SERIES = "total"
HOUR_S = 3600
# A series name becomes part of a Redis key and of a URL path: a plain, bounded name.
SERIES_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


class BadSeriesError(CastmlError):
    """A series name that is not a plain name (it would become part of a key or a path)."""

    status_code = 400


def check_series(name: Any) -> str:
    if not isinstance(name, str) or not SERIES_PATTERN.match(name):
        raise BadSeriesError(
            f"series {str(name)[:80]!r} is not a series name "
            "(letters, digits, '.', '-' and '_', at most 64, starting with a letter or digit)"
        )
    return name


def forecast_key(project: str, series: str, horizon: int) -> str:
    """`forecast:<project>:<series>:<horizon>` (issue 14 §3)."""
    return f"{KEY_PREFIX}:{project}:{series}:{horizon}"


def log_key(project: str, horizon: int, target_s: int) -> str:
    """The forecasts at `horizon` for one target hour still waiting for its observation."""
    return f"{LOG_PREFIX}:{project}:{horizon}:{target_s}"


def error_key(project: str) -> str:
    """Realised error so far, summed: fields `h<h>:n`, `h<h>:abs`, `h<h>:sq` per horizon."""
    return f"{ERROR_PREFIX}:{project}"


def run_key(project: str) -> str:
    """The last forecast run's summary (`ForecastRun`)."""
    return f"{RUN_PREFIX}:{project}"


@functools.lru_cache(maxsize=4096)
def iso(epoch_s: float) -> str:
    """`2014-03-01T12:00:00Z` (cached: one run writes the same few times many times)."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def epoch_of(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def json_number(value: float) -> bytes:
    """A float as JSON, as orjson writes it: the shortest text that reads back as the same
    float, null for NaN and the infinities."""
    return orjson.dumps(value)


@functools.lru_cache(maxsize=64)
def record_template(project: str, version: str, made_at: float, ttl_s: int) -> bytes:
    """A record's JSON (the fields of `ForecastRecord.to_json`, in that order) with what
    differs from one cell of a run to the next left as %-slots: series (JSON), horizon,
    value (`json_number`), window_end and target_time (ISO bytes).

    Why a template: a job run encodes a record per series and horizon, and one `%` per
    record cost a third of orjson's dict-and-dump (serving.forecast_table)."""
    fixed = [orjson.dumps(project), orjson.dumps(version), iso(made_at).encode()]
    project_json, version_json, made = (part.replace(b"%", b"%%") for part in fixed)
    return (
        b'{"project":' + project_json + b',"series":%b,"horizon":%d,"value":%b,'
        b'"model_version":' + version_json + b',"made_at":"' + made + b'",'
        b'"window_end":"%b","target_time":"%b","ttl_s":' + b"%d" % ttl_s + b"}"
    )


@dataclass(frozen=True, slots=True)
class ForecastRecord:
    """One cached forecast: `value` for `window_end + horizon` hours, by `model_version`."""

    project: str
    series: str
    horizon: int
    value: float
    model_version: str
    made_at: float  # epoch seconds
    window_end: float  # epoch seconds of the last observed hour used
    ttl_s: int

    @property
    def key(self) -> str:
        return forecast_key(self.project, self.series, self.horizon)

    @property
    def target_time(self) -> float:
        return self.window_end + self.horizon * HOUR_S

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "series": self.series,
            "horizon": self.horizon,
            "value": self.value,
            "model_version": self.model_version,
            "made_at": iso(self.made_at),
            "window_end": iso(self.window_end),
            "target_time": iso(self.target_time),
            "ttl_s": self.ttl_s,
        }

    def encode(self) -> bytes:
        template = record_template(self.project, self.model_version, self.made_at, self.ttl_s)
        return template % (
            orjson.dumps(self.series),
            self.horizon,
            json_number(self.value),
            iso(self.window_end).encode(),
            iso(self.target_time).encode(),
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> ForecastRecord:
        """A record from its cached form; ValueError for anything else."""
        try:
            body = orjson.loads(raw)
            return cls(
                str(body["project"]),
                str(body["series"]),
                int(body["horizon"]),
                float(body["value"]),
                str(body["model_version"]),
                epoch_of(str(body["made_at"])),
                epoch_of(str(body["window_end"])),
                int(body["ttl_s"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a forecast record: {exc!r}") from None


@dataclass(frozen=True)
class ForecastRun:
    """What one run of the forecast job did (the `forecast-run:<project>` key)."""

    project: str
    model_version: str
    horizons: tuple[int, ...]
    finished_at: float
    written: int  # series forecast (each at every horizon)
    skipped: dict[str, str]  # series -> why it was not forecast
    seconds: float

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "project": self.project,
                "model_version": self.model_version,
                "horizons": list(self.horizons),
                "finished_at": self.finished_at,
                "written": self.written,
                "skipped": self.skipped,
                "seconds": self.seconds,
            }
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> ForecastRun:
        try:
            body = orjson.loads(raw)
            return cls(
                str(body["project"]),
                str(body["model_version"]),
                tuple(int(h) for h in body["horizons"]),
                float(body["finished_at"]),
                int(body["written"]),
                {str(k): str(v) for k, v in dict(body["skipped"]).items()},
                float(body["seconds"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a forecast run record: {exc!r}") from None


@dataclass(frozen=True)
class ObservationSchema:
    """The columns one project's observations hold: the time, the target, the exogenous."""

    project: str
    time_column: str
    target: str
    exogenous: tuple[str, ...]
    default_series: str = DEFAULT_SERIES  # the series of rows that name none
    freq_s: int = HOUR_S

    @property
    def value_columns(self) -> tuple[str, ...]:
        return (self.target, *self.exogenous)

    def arrow_schema(self) -> pa.Schema:
        ts = pa.timestamp("ms", tz="UTC")
        return pa.schema(
            [
                pa.field(SERIES_COLUMN, pa.string(), nullable=False),
                pa.field(self.time_column, ts, nullable=False),
                pa.field(self.target, pa.float64(), nullable=False),
                *(pa.field(name, pa.float64()) for name in self.exogenous),
                pa.field(RECEIVED_COLUMN, ts, nullable=False),
            ]
        )


def observation_partition(project: str, day: str) -> str:
    """`<project>/observations/date=YYYY-MM-DD`, relative to the logs root."""
    return f"{check_project(project)}/{OBSERVATIONS_DIR}/date={day}"


def finite(value: Any) -> float | None:
    """`value` as a finite float, or None when it is no finite number (bools are none)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        out = float(value)
    except OverflowError:
        return None
    return out if math.isfinite(out) else None
