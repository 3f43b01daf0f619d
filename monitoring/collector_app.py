"""HTTP face of the collector: raw ASGI for event ingest, Starlette for the rest.

Routes: `POST /` and `POST /v1/events` (KServe logger CloudEvents), `POST /v1/feedback`
(delayed labels), `POST /v1/observations` (a forecast project's observations, its delayed
labels: `monitoring.observation_ingest`), `GET /v1/status`, `GET /metrics` (the
collector's counters plus the drift and forecast jobs' gauges), `GET /healthz`; and, when
a retrain policy is passed in (the chart sets CASTML_RETRAIN_TOKEN on the collector),
`POST /v1/retrain` and
`GET /v1/retrain/decisions` for Alertmanager's webhook on the same port.

Event ingest is the hot path (every logged inference arrives twice) and is served
in raw ASGI: Starlette's middleware stack, Request and Response cost more per event
than auth, parsing and the WAL hand-off together (profiled with `make bench`).
Every answer of both halves goes through the one error contract (`castml.web.errors`):
one body shape, 503 with Retry-After, 405 with Allow, 415 for a body that is not JSON.
Every event and feedback is validated before its 202 (`monitoring.event_ingest`,
`monitoring.feedback_ingest`): what is acknowledged can be written.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from castml.errors import CastmlError
from castml.protocol.payload_record import LoggedFeatures
from castml.spec import ProjectSpec, load_spec
from castml.web.asgi import (
    ClientGoneError,
    Receive,
    Scope,
    Send,
    check_json_content_type,
    header_dict,
    parse_json,
    read_body,
)
from castml.web.errors import MethodNotAllowedError, error_parts
from castml.web.starlette_errors import as_response, install
from monitoring import auth, event_ingest, retrain_api
from monitoring.collector import Collector
from monitoring.feedback_ingest import feedback_records
from monitoring.observation_ingest import observation_route
from monitoring.policy import RetrainPolicy
from monitoring.settings import CollectorSettings

# (policy, its bearer token): what mounting the retrain endpoint into the collector takes.
RetrainMount = tuple[RetrainPolicy, str]


def logged_features(spec: ProjectSpec) -> LoggedFeatures:
    """How a project's features are logged: a typed spec logs categorical and datetime
    values as text, and may log nulls (a missing value its version imputes)."""
    text = frozenset(f.name for f in spec.features if f.dtype in {"categorical", "datetime"})
    typed = bool(text) or any(f.dtype != "float" or f.missing == "impute" for f in spec.features)
    return LoggedFeatures(tuple(spec.feature_names), text, nullable=typed)


@functools.cache
def spec_features(project: str) -> LoggedFeatures:
    """A bundled project's, by name only: `project` was checked to be a plain name
    (`event_ingest.known_features`), so `load_spec` never sees a path from a request."""
    return logged_features(load_spec(project))


def features_lookup(spec_files: Sequence[Path]) -> Callable[[str], LoggedFeatures]:
    """Bundled projects by name, and the projects of `spec_files` by the names they hold
    (a project defined by a spec path is served by the generic images too)."""
    extra = {spec.name: logged_features(spec) for spec in map(load_spec, spec_files)}

    def features_of(project: str) -> LoggedFeatures:
        return extra[project] if project in extra else spec_features(project)

    return features_of


def _json_response(payload: object, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status, media_type="application/json")


INGEST_PATHS = frozenset({"/", "/v1/events"})


async def reply(
    send: Send, status: int, body: bytes, headers: dict[str, str] | None = None
) -> None:
    raw = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class CollectorApp:
    """The ASGI app: `POST /` and `POST /v1/events` in raw ASGI, everything else in Starlette."""

    def __init__(self, collector: Collector, settings: CollectorSettings, router: Starlette):
        self.collector = collector
        self.router = router
        self._settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in INGEST_PATHS:
            await self.router(scope, receive, send)  # type: ignore[arg-type]
        elif scope["method"] == "POST":
            await self.ingest_event(scope, receive, send)
        else:
            await reply(
                send, *error_parts(MethodNotAllowedError(scope["method"], scope["path"], ["POST"]))
            )

    async def ingest_event(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings, core = self._settings, self.collector
        # `event_ingest.parse` and `auth.check` look names up in lower case.
        headers = header_dict(scope)
        try:
            check_json_content_type(headers)
            body = await read_body(
                headers, receive, settings.collector_max_body_bytes, auth.BODY_SETTING
            )
            # The KServe logger sidecar cannot authenticate; in the cluster a
            # NetworkPolicy is the guard for this route (and for this route only).
            if not settings.collector_trust_network_ingest:
                auth.check(headers, body, settings.collector_token, settings.collector_hmac_key)
            record = event_ingest.decode(headers, body, core.features_of)
            status = await core.submit(record)
        except ClientGoneError:
            return  # nothing was acknowledged: the sender still holds the event
        except Exception as exc:  # every answer, 500 included, through the one contract
            if isinstance(exc, CastmlError) and exc.status_code < 500:
                core.metrics.rejected.labels(type(exc).__name__).inc()
            await reply(send, *error_parts(exc))
            return
        await reply(send, 202, orjson.dumps({"status": status, "id": record.event_id}))


def build_app(
    settings: CollectorSettings,
    collector: Collector | None = None,
    retrain: RetrainMount | None = None,
) -> CollectorApp:
    core = collector or Collector(settings, features_lookup(settings.collector_spec_files))

    async def ingest_feedback(request: Request) -> Response:
        try:
            body = await auth.authenticated_body(request, settings)
            records = feedback_records(
                parse_json(body),
                core.knows_request,
                settings.collector_default_project,
                core.features_of,
            )
            answers = []
            for record in records:
                status = await core.submit(record)
                if status == "accepted" and not record.known_request:
                    core.metrics.unknown_feedback.inc()
                answers.append(
                    {
                        "request_id": record.request_id,
                        "status": status,
                        "known_request": record.known_request,
                    }
                )
        except CastmlError as exc:
            if exc.status_code < 500:
                core.metrics.rejected.labels(type(exc).__name__).inc()
            return as_response(exc)
        return _json_response({"results": answers}, 202)

    async def status(_: Request) -> Response:
        return _json_response(
            {
                "queue_depth": core.depth,
                "pending_requests": len(core._requests),
                "pending_responses": len(core._responses),
                "lag_s": core.oldest_age(),
            }
        )

    async def metrics(_: Request) -> Response:
        core.metrics.queue_depth.set(core.depth)
        core.metrics.lag.set(core.oldest_age())
        return Response(generate_latest(core.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def health(_: Request) -> Response:
        return _json_response({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await core.start()
        try:
            yield
        finally:
            await core.stop()

    routes = [  # INGEST_PATHS never reach the router (CollectorApp answers them)
        Route("/v1/feedback", ingest_feedback, methods=["POST"]),
        observation_route(settings, core),  # a forecast project's observations (issue 14)
        Route("/v1/status", status),
        Route("/metrics", metrics),
        Route("/healthz", health),
    ]
    if retrain is not None:
        routes += retrain_api.routes(*retrain)
    router = Starlette(routes=routes, lifespan=lifespan)
    install(router)
    return CollectorApp(core, settings, router)


def tune_gc() -> None:
    """Garbage-collector settings for a collector process (call once, after the imports).

    Every acknowledged event stays in memory as a few container objects until its
    Parquet flush, so at the default thresholds the young generations filled with
    live records again and again and a full collection ran every half second, each
    walking every object the imports made: a fifth of the process's CPU at 7k events/s,
    and a stall of the event loop of over 100 ms each time (measured with `make bench`).
    Nothing is lost by collecting less often: reference counting frees the records,
    the collector only has to find the rare cycle.
    """
    gc.collect()
    gc.freeze()  # modules, classes, settings: never garbage, never walked again
    gc.set_threshold(50_000, 20, 100)


def serve(settings: CollectorSettings, retrain: RetrainMount | None = None) -> None:
    """Run under uvicorn; refuses to start without credentials.

    Even with trusted network ingest, feedback needs a credential, so one is required.
    """
    import uvicorn

    if settings.collector_token is None and settings.collector_hmac_key is None:
        raise auth.UnauthorizedError(
            "set CASTML_COLLECTOR_TOKEN or CASTML_COLLECTOR_HMAC_KEY: the collector never runs open"
        )
    app = build_app(settings, retrain=retrain)
    tune_gc()
    uvicorn.run(
        app,
        host=settings.collector_host,
        port=settings.collector_port,
        log_level="warning",
        access_log=False,
        # Nothing here reads the client address or scheme, so uvicorn's X-Forwarded-*
        # rewriting is per-request work for nothing (it showed in the ingest profile).
        proxy_headers=False,
    )
