"""`POST /v1/observations` on the collector: a forecast project's observed hours -> Parquet.

Body: `{"project": "bikeshare", "series": "total"?, "observations": [{"ts": "2014-01-01T00:00:00Z",
"count": 12, "tmin": 2.0, ...}, ...]}`: the spec's time column (ISO-8601, naive read as
UTC, or epoch seconds, on the hour), its target (a finite number >= 0), the numeric
features as exogenous columns (null allowed), and `series` per row to override the body's
(`castml.protocol.forecast_record` holds the layout). They are the forecast's inputs
and its delayed labels.

The whole body is validated first; any problem (a missing, unparseable, off-the-hour or
duplicated time, a negative or missing count, an unknown column) answers 422 naming every
problem with its row, and nothing is written. A valid body is written before the answer:
one Parquet file per day, each a temp file fsynced and renamed into place (as
monitoring.parquet_sink does for payloads), the renames after every file is written.
The same (series, time) sent again later is kept; readers keep the row received last.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from castml.errors import CastmlError, SpecError
from castml.protocol.forecast_record import (
    DEFAULT_SERIES,
    HOUR_S,
    RECEIVED_COLUMN,
    SERIES_COLUMN,
    SERIES_PATTERN,
    ObservationSchema,
    finite,
    iso,
    observation_partition,
)
from castml.protocol.payload_record import MAX_EPOCH_S, check_project
from castml.spec import Task, load_spec
from castml.web.asgi import parse_json
from castml.web.errors import FieldProblem, InvalidFieldsError, UnavailableError
from castml.web.starlette_errors import as_response
from monitoring import auth
from monitoring.collector import Collector
from monitoring.parquet_sink import day_of, inside
from monitoring.settings import CollectorSettings
from monitoring.wal import fsync_dir

MAX_ROWS = 100_000


class BadObservationsError(InvalidFieldsError):
    """Observations that cannot be written; each problem is named with its row."""

    status_code = 422


class BadObservationBodyError(CastmlError):
    """A body that is not `{"project", "series"?, "observations": [...]}`."""

    status_code = 422


class NotAForecastProjectError(CastmlError):
    status_code = 404


def observation_schema(project: str) -> ObservationSchema:
    """The observation columns of a bundled forecast project, from its spec."""
    check_project(project)
    try:
        spec = load_spec(project)
    except SpecError as exc:
        raise NotAForecastProjectError(str(exc)) from None
    if spec.task is not Task.FORECAST or spec.time_column is None:
        raise NotAForecastProjectError(f"project '{project}' is not a forecast project")
    exogenous = tuple(f.name for f in spec.features if f.name != spec.time_column and f.is_numeric)
    plan = spec.forecast
    series = plan.series_name if plan is not None else DEFAULT_SERIES
    step = plan.step_seconds if plan is not None else HOUR_S
    return ObservationSchema(project, spec.time_column, spec.target, exogenous, series, step)


def epoch_of(value: Any) -> float | str:
    """Epoch seconds of a time value, or the problem with it."""
    if isinstance(value, bool):
        return "must be an ISO-8601 time or epoch seconds"
    if isinstance(value, int | float):
        epoch = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return f"{value[:64]!r} is not an ISO-8601 time"
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        try:
            epoch = parsed.timestamp()
        except (OverflowError, OSError, ValueError):
            return f"{value[:64]!r} is out of range"
    else:
        return "must be an ISO-8601 time or epoch seconds"
    if not 0.0 <= epoch <= MAX_EPOCH_S:  # also NaN
        return f"{value!r} is out of range (epoch seconds 0..{MAX_EPOCH_S:.0f})"
    return epoch


def parse_rows(body: Any, schema: ObservationSchema, default_series: str) -> dict[str, list[Any]]:
    """Validated columns of the body's rows, or BadObservationsError naming every problem."""
    items = body.get("observations")
    if not isinstance(items, list) or not items:
        raise BadObservationBodyError("'observations' must be a non-empty list of objects")
    if len(items) > MAX_ROWS:
        raise BadObservationBodyError(f"at most {MAX_ROWS} observations per request")
    known = {schema.time_column, *schema.value_columns, SERIES_COLUMN}
    problems: list[FieldProblem] = []
    columns: dict[str, list[Any]] = {name: [] for name in schema.arrow_schema().names}
    seen: dict[tuple[str, float], int] = {}
    step = schema.freq_s
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(FieldProblem("observation", "must be an object", i))
            continue
        for name in sorted(set(item) - known):
            problems.append(FieldProblem(name[:64], f"not a column of {schema.project}", i))
        series = item.get(SERIES_COLUMN, default_series)
        if not isinstance(series, str) or not SERIES_PATTERN.match(series):
            problems.append(FieldProblem(SERIES_COLUMN, "must be a plain name (at most 64)", i))
        raw_time = item.get(schema.time_column)
        epoch = epoch_of(raw_time) if raw_time is not None else "is missing"
        if isinstance(epoch, str):
            problems.append(FieldProblem(schema.time_column, epoch, i))
        elif epoch % step:
            problems.append(
                FieldProblem(schema.time_column, f"{raw_time!r} is not on the {step} s grid", i)
            )
        elif isinstance(series, str):
            earlier = seen.setdefault((series, epoch), i)
            if earlier != i:
                problems.append(
                    FieldProblem(
                        schema.time_column,
                        f"{raw_time!r} of series '{series}' is duplicated (row {earlier})",
                        i,
                    )
                )
        target = item.get(schema.target)
        value = finite(target)
        if target is None:
            problems.append(FieldProblem(schema.target, "is missing", i))
        elif value is None:
            problems.append(FieldProblem(schema.target, "must be a finite number", i))
        elif value < 0:
            problems.append(FieldProblem(schema.target, f"{target!r} is negative", i))
        exogenous: list[float | None] = []
        for name in schema.exogenous:
            raw = item.get(name)
            number = finite(raw)
            if raw is not None and number is None:
                problems.append(FieldProblem(name, "must be a finite number or null", i))
            exogenous.append(number)
        if problems:
            continue  # keep collecting problems; nothing is written anyway
        columns[SERIES_COLUMN].append(series)
        columns[schema.time_column].append(int(float(epoch) * 1000))
        columns[schema.target].append(value)
        for name, number in zip(schema.exogenous, exogenous, strict=True):
            columns[name].append(number)
    if problems:
        raise BadObservationsError(problems)
    return columns


def write_observations(
    logs_root: Path, schema: ObservationSchema, columns: dict[str, list[Any]]
) -> list[str]:
    """One Parquet file per day of the rows' own time; all written, then all renamed."""
    received = int(time.time() * 1000)
    columns[RECEIVED_COLUMN] = [received] * len(columns[SERIES_COLUMN])
    table = pa.Table.from_pydict(columns, schema=schema.arrow_schema())
    by_day: dict[str, list[int]] = defaultdict(list)
    for i, ms in enumerate(columns[schema.time_column]):
        by_day[day_of(ms / 1000)].append(i)
    staged: list[tuple[Path, Path]] = []
    try:
        for day, rows in sorted(by_day.items()):
            directory = inside(logs_root, observation_partition(schema.project, day))
            directory.mkdir(parents=True, exist_ok=True)
            name = f"part-{uuid.uuid4().hex}.parquet"
            tmp = directory / f".{name}.tmp"
            staged.append((tmp, directory / name))
            pq.write_table(table.take(rows), tmp, compression="zstd")
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, final in staged:
        os.replace(tmp, final)
        fsync_dir(final.parent)
    return [str(final.relative_to(logs_root.resolve())) for _, final in staged]


async def ingest(logs_root: Path, body: Any) -> dict[str, Any]:
    """Validate a parsed body, write it, and say what was written."""
    if not isinstance(body, dict):
        raise BadObservationBodyError(
            'the body must be an object {"project", "series"?, "observations": [...]}'
        )
    if "project" not in body:
        raise BadObservationBodyError("the body names no 'project'")
    schema = observation_schema(body["project"])
    default_series = body.get(SERIES_COLUMN, schema.default_series)
    columns = parse_rows(body, schema, default_series)
    files = await asyncio.to_thread(write_observations, logs_root, schema, columns)
    times = columns[schema.time_column]
    return {
        "project": schema.project,
        "written": len(times),
        "series": sorted(set(columns[SERIES_COLUMN])),
        "first": iso(min(times) / 1000),
        "last": iso(max(times) / 1000),
        "files": len(files),
    }


class ObservationStorageError(UnavailableError):
    """The observations could not be written (disk full, unwritable): nothing was kept."""


def observation_route(settings: CollectorSettings, core: Collector) -> Route:
    """`POST /v1/observations`, authenticated as `/v1/feedback` is; answers 201 when written."""

    async def ingest_observations(request: Request) -> Response:
        try:
            body = await auth.authenticated_body(request, settings)
            try:
                answer = await ingest(settings.logs_dir, parse_json(body))
            except OSError as exc:
                raise ObservationStorageError(
                    f"the observations could not be written ({type(exc).__name__}); "
                    "nothing was kept: retry",
                    settings.collector_retry_after_s,
                ) from exc
        except CastmlError as exc:
            if exc.status_code < 500:
                core.metrics.rejected.labels(type(exc).__name__).inc()
            return as_response(exc)
        return Response(orjson.dumps(answer), 201, media_type="application/json")

    return Route("/v1/observations", ingest_observations, methods=["POST"])
