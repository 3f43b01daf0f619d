"""The forecast read endpoint: cached forecasts from Redis, never a silent stale value.

Routes (`python -m serving forecast`, `castml forecast serve`):

- `GET /v1/forecast/<project>/<series>?horizon=<h>` answers the cached record of that
  horizon (`castml.protocol.forecast_record`: value, horizon, model_version, made_at,
  window_end, target_time, ttl_s) plus `age_s` and `stale`. Without `horizon`, every
  horizon of the last run: `{"project", "series", "stale", "forecasts": [...]}`.
- A record older than `CASTML_FORECAST_STALE_S` is still answered, marked: `stale: true`,
  its `age_s`, a `stale_reason`, and the headers `Age` and `Warning: 110 - "Response is
  Stale"`; one past its TTL is gone (404 naming the series and horizon).
- Redis down: 503 with Retry-After. An unknown project or series, or a horizon the
  model does not forecast: 404 naming it; a malformed horizon or series name: 400.
- `GET /v2/health/live`, `GET /v2/health/ready` (503 while Redis does not answer),
  `GET /metrics`.

Served on the lean ASGI core (castml.web.asgi): a read of one horizon is one Redis GET on
the lean client (serving.forecast_resp), answered from memory while Redis reports the key
unchanged (serving.forecast_local), and the cached record's own bytes, checked and
answered with `age_s` and `stale` spliced in (no decode into a record, no re-encoding);
every horizon is one MGET. A record past its own `made_at + ttl_s` is not served (Redis
expires the key). `make bench` compares it with a bare redis-py GET.
"""

from __future__ import annotations

import contextvars
import functools
import time
from typing import Any
from urllib.parse import parse_qs

import orjson

from castml.protocol.forecast_record import ForecastRecord, check_series, epoch_of, forecast_key
from castml.web.asgi import JSON, App, Receive, Request, Response, Scope, Send, json_response
from castml.web.errors import BadRequestError, NotFoundError
from serving.forecast_cache import AsyncForecastCache, CacheUnavailableError
from serving.forecast_metrics import ForecastApiMetrics
from serving.settings import ForecastSettings

VERSION_HEADER = b"x-model-version"
STALE_WARNING = (b"warning", b'110 - "Response is Stale"')
HORIZONS_TTL_S = 1.0  # how long the horizons of the last run are taken as known

# The lean core hands handlers no query string; `QueryString` puts it here per request.
_query: contextvars.ContextVar[bytes] = contextvars.ContextVar("query", default=b"")


class QueryString:
    """ASGI wrapper: makes the request's query string readable by the handlers."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            _query.set(scope.get("query_string", b""))
        await self.app(scope, receive, send)


def query_horizon() -> int | None:
    raw = _query.get()
    if not raw:
        return None
    if raw.startswith(b"horizon=") and not raw.count(b"&") and not raw.count(b"%"):
        text = raw[8:].decode("latin-1")  # the one plain parameter: no parse_qs
    else:
        values = parse_qs(raw.decode("latin-1")).get("horizon")
        if not values:
            return None
        text = values[-1]
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= 10_000:
        raise BadRequestError(f"horizon {text[:20]!r} is not a whole number of hours (1..10000)")
    return int(text)


# What a cached record holds (`ForecastRecord.to_json`), and the JSON types of each field.
RECORD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "project": str,
    "series": str,
    "horizon": int,
    "value": (float, int),
    "model_version": str,
    "made_at": str,
    "window_end": str,
    "target_time": str,
    "ttl_s": int,
}
TIME_FIELDS = ("made_at", "window_end", "target_time")


@functools.lru_cache(maxsize=1024)
def cached_epoch(text: str) -> float:
    """`epoch_of`, cached: every record of one run holds the same few times."""
    return epoch_of(text)


@functools.lru_cache(maxsize=4096)
def checked_record(raw: bytes) -> tuple[dict[str, Any], float]:
    """A cached record as the JSON object it is, and its `made_at` in epoch seconds;
    ValueError unless it is a whole record (`ForecastRecord.decode`'s checks, without
    building the record: the endpoint answers its bytes as they are). Cached by the
    bytes: a key answered from memory is the same record request after request (callers
    only read the dict)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not a forecast record: {exc!r}") from None
    if not isinstance(body, dict) or not body.keys() >= RECORD_FIELDS.keys():
        raise ValueError("not a forecast record: fields missing")
    for name, kind in RECORD_FIELDS.items():
        value = body[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"not a forecast record: {name} is {type(value).__name__}")
    made_at, *_ = [cached_epoch(body[name]) for name in TIME_FIELDS]  # each must parse
    return body, made_at


class ForecastApi:
    def __init__(self, settings: ForecastSettings, cache: AsyncForecastCache | None = None):
        self.settings = settings
        self.project = settings.forecast_project
        self.cache = cache or AsyncForecastCache(settings)
        self.metrics = ForecastApiMetrics(self.project)
        self._horizons: tuple[int, ...] = ()
        self._horizons_at = 0.0

    def _check(self, request: Request) -> str:
        project = request.params.get("project")
        if project != self.project:
            raise NotFoundError(f"unknown project '{project}'; this server serves '{self.project}'")
        return check_series(request.params.get("series"))

    def _answer(self, record: ForecastRecord, now: float) -> dict[str, Any]:
        age = max(0.0, now - record.made_at)
        body = record.to_json()
        body["age_s"] = round(age, 3)
        body["stale"] = age > self.settings.forecast_stale_s
        if body["stale"]:
            body["stale_reason"] = self._stale_reason(age)
        return body

    def _decoded(self, raw: bytes, series: str, horizon: int) -> ForecastRecord:
        try:
            return ForecastRecord.decode(raw)
        except ValueError:  # not ours to repair: say what is there, do not serve it
            raise NotFoundError(
                f"the cached forecast of series '{series}' at {horizon} h is unreadable"
            ) from None

    async def horizons(self) -> tuple[int, ...]:
        """The horizons of the last run (read from Redis at most once a second)."""
        now = time.monotonic()
        if now - self._horizons_at > HORIZONS_TTL_S:
            run = await self.cache.last_run(self.project)
            self._horizons = run.horizons if run else ()
            self._horizons_at = now
        return self._horizons

    async def forecast(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            response = await self._forecast(request)
        except CacheUnavailableError:
            self.metrics.outcomes["unavailable"].inc()
            raise
        self.metrics.total.observe(time.perf_counter() - started)
        return response

    async def _forecast(self, request: Request) -> Response:
        series = self._check(request)
        horizon = query_horizon()
        if horizon is not None:
            raw = await self.cache.get(forecast_key(self.project, series, horizon))
            if raw is None:
                self.metrics.outcomes["missing"].inc()
                raise NotFoundError(self._expired(series, horizon))
            return self._one(raw, series, horizon)
        horizons = await self.horizons()
        if not horizons:
            self.metrics.outcomes["missing"].inc()
            raise NotFoundError(f"no forecast of {self.project} yet: the forecast job has not run")
        values = await self.cache.mget([forecast_key(self.project, series, h) for h in horizons])
        now = time.time()
        decoded = [
            None if raw is None else self._decoded(raw, series, h)
            for h, raw in zip(horizons, values, strict=True)
        ]
        # A copy past its TTL is as gone as the key Redis is about to expire.
        kept = [r if r and now <= r.made_at + r.ttl_s else None for r in decoded]
        records = [self._answer(r, now) for r in kept if r is not None]
        if not records:
            self.metrics.outcomes["missing"].inc()
            raise NotFoundError(
                f"no forecast of series '{series}': unknown series, or its forecasts expired "
                f"(TTL {self.settings.forecast_ttl_s} s)"
            )
        body = {
            "project": self.project,
            "series": series,
            "stale": any(r["stale"] for r in records),
            "age_s": max(r["age_s"] for r in records),
            "forecasts": records,
            "missing_horizons": [h for h, r in zip(horizons, kept, strict=True) if r is None],
        }
        return self._reply(body, records)

    def _one(self, raw: bytes, series: str, horizon: int) -> Response:
        """One horizon's answer: the cached record's own bytes (the job wrote them as
        `ForecastRecord.encode`, so they are what re-encoding its decoded form would give)
        with `age_s`, `stale` and any `stale_reason` spliced in before the closing brace.
        Decoding the record into a `ForecastRecord` and encoding it again was a third of
        the endpoint's own time."""
        try:
            record, made_at = checked_record(raw)
        except ValueError:  # not ours to repair: say what is there, do not serve it
            raise NotFoundError(
                f"the cached forecast of series '{series}' at {horizon} h is unreadable"
            ) from None
        now = time.time()
        if now > made_at + record["ttl_s"]:  # Redis expires it any moment: not served
            raise NotFoundError(self._expired(series, horizon))
        age = max(0.0, now - made_at)
        extra: dict[str, Any] = {
            "age_s": round(age, 3),
            "stale": age > self.settings.forecast_stale_s,
        }
        if extra["stale"]:
            extra["stale_reason"] = self._stale_reason(age)
        head = raw.rstrip()
        if len(record) != len(RECORD_FIELDS) or not head.endswith(b"}"):
            # Fields a later job may add are not answered (as before): re-encode ours.
            head = orjson.dumps({name: record[name] for name in RECORD_FIELDS})
        body = head[:-1] + b"," + orjson.dumps(extra)[1:]
        self.metrics.outcomes["stale" if extra["stale"] else "fresh"].inc()
        headers = [
            (VERSION_HEADER, record["model_version"].encode()),
            (b"age", b"%d" % int(round(age, 3))),
        ]
        if extra["stale"]:
            headers.append(STALE_WARNING)
        return Response(body, 200, JSON, headers)

    def _expired(self, series: str, horizon: int) -> str:
        return (
            f"no forecast of series '{series}' at {horizon} h: expired (TTL "
            f"{self.settings.forecast_ttl_s} s), never made, or not a horizon of the model"
        )

    def _stale_reason(self, age: float) -> str:
        return (
            f"made {age:.0f} s ago, past the {self.settings.forecast_stale_s:.0f} s "
            "staleness limit: the forecast job has not refreshed it"
        )

    def _reply(self, body: dict[str, Any], records: list[dict[str, Any]]) -> Response:
        stale = any(r["stale"] for r in records)
        self.metrics.outcomes["stale" if stale else "fresh"].inc()
        headers = [
            (VERSION_HEADER, str(records[0]["model_version"]).encode()),
            (b"age", str(int(max(r["age_s"] for r in records))).encode()),
        ]
        if stale:
            headers.append(STALE_WARNING)
        return json_response(body, headers=headers)

    async def live(self, request: Request) -> Response:
        return json_response({"live": True})

    async def ready(self, request: Request) -> Response:
        if not await self.cache.ping():
            self.metrics.redis_up.labels(self.project).set(0)
            raise CacheUnavailableError(
                "the forecast cache (Redis) does not answer", self.settings.forecast_retry_after_s
            )
        self.metrics.redis_up.labels(self.project).set(1)
        return json_response({"ready": True})

    async def metrics_endpoint(self, request: Request) -> Response:
        up = await self.cache.ping()
        run = await self.cache.last_run(self.project) if up else None
        self.metrics.last_run(run, up)
        if up:
            self.metrics.realised(await self.cache.error_sums(self.project))
        body, content_type = self.metrics.render()
        return Response(body, 200, content_type)


def build_forecast_app(api: ForecastApi) -> QueryString:
    app = App(64 * 1024)  # reads only: no body is needed
    app.route("GET", "/v1/forecast/{project}/{series}", api.forecast)
    app.route("GET", "/v2/health/live", api.live)
    app.route("GET", "/v2/health/ready", api.ready)
    app.route("GET", "/metrics", api.metrics_endpoint)

    async def shutdown() -> None:
        await api.cache.close()

    app.on_shutdown.append(shutdown)
    return QueryString(app)


def forecast_app(settings: ForecastSettings) -> tuple[QueryString, ForecastApi]:
    api = ForecastApi(settings)
    return build_forecast_app(api), api
