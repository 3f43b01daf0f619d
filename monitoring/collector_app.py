"""HTTP face of the collector: raw ASGI for event ingest, Starlette for the rest.

Routes: `POST /` and `POST /v1/events` (KServe logger CloudEvents), `POST /v1/feedback`
(delayed labels), `GET /v1/status`, `GET /metrics` (the collector's counters plus the
drift job's gauges), `GET /healthz`; and, when a retrain policy is passed in (the
chart sets CASTML_RETRAIN_TOKEN on the collector), `POST /v1/retrain` and
`GET /v1/retrain/decisions` for Alertmanager's webhook on the same port.

Event ingest is the hot path (every logged inference arrives twice) and is served
in raw ASGI: Starlette's middleware stack, Request and Response cost more per event
than auth, parsing and the WAL hand-off together (profiled for issue 4).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from castml.errors import CastmlError
from castml.spec import load_spec
from monitoring import auth, events, retrain_api
from monitoring.collector import Collector, QueueFullError, StorageUnavailableError
from monitoring.policy import RetrainPolicy
from monitoring.settings import CollectorSettings

# (policy, its bearer token): what mounting the retrain endpoint into the collector takes.
RetrainMount = tuple[RetrainPolicy, str]


class BadFeedbackError(CastmlError):
    """A feedback post that is not {request_id, label, observed_at}."""

    status_code = 422


@functools.cache
def spec_features(project: str) -> list[str]:
    return load_spec(project).feature_names


def _json_response(payload: dict[str, Any], status: int = 200, **headers: str) -> Response:
    return Response(orjson.dumps(payload), status, headers=headers, media_type="application/json")


def error_parts(exc: CastmlError, retry_after_s: int) -> tuple[int, bytes, dict[str, str]]:
    """The one place a CastmlError becomes an HTTP answer (DESIGN.md §5): status, body, headers."""
    headers = {}
    if isinstance(exc, QueueFullError | StorageUnavailableError):
        headers["Retry-After"] = str(retry_after_s)
    return exc.status_code, orjson.dumps({"error": str(exc), "type": type(exc).__name__}), headers


def error_response(exc: CastmlError, retry_after_s: int) -> Response:
    status, body, headers = error_parts(exc, retry_after_s)
    return Response(body, status, headers=headers, media_type="application/json")


INGEST_PATHS = frozenset({"/", "/v1/events"})


class BodyTooLargeError(CastmlError):
    """An ingest body over CASTML_COLLECTOR_MAX_BODY_BYTES; nothing of it was kept."""

    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body is larger than {limit} bytes (CASTML_COLLECTOR_MAX_BODY_BYTES)")


def check_declared_length(headers: dict[str, str], limit: int) -> None:
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(limit)


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body; None if the client went away before sending it."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:  # a chunked body declares no length
            raise BodyTooLargeError(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


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
            await self.router(scope, receive, send)
        elif scope["method"] == "POST":
            await self.ingest_event(scope, receive, send)
        else:
            await reply(send, 405, b'{"error":"method not allowed"}', {"Allow": "POST"})

    async def ingest_event(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings, core = self._settings, self.collector
        # `events.parse` and `auth.check` look names up in lower case (ASGI only says "should").
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            check_declared_length(headers, settings.collector_max_body_bytes)
            body = await read_body(receive, settings.collector_max_body_bytes)
            if body is None:
                return  # nothing was acknowledged: the sender still holds the event
            # The KServe logger sidecar cannot authenticate; in the cluster a
            # NetworkPolicy is the guard for this route (and for this route only).
            if not settings.collector_trust_network_ingest:
                auth.check(headers, body, settings.collector_token, settings.collector_hmac_key)
            attrs, data = events.parse(headers, body)
            event = events.to_event(attrs, data, core.features_of)
            status = await core.submit(event_record(event))
        except CastmlError as exc:
            if exc.status_code < 500:
                core.metrics.rejected.labels(type(exc).__name__).inc()
            await reply(send, *error_parts(exc, settings.collector_retry_after_s))
            return
        await reply(send, 202, orjson.dumps({"status": status, "id": event.event_id}))


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError as exc:
            raise BadFeedbackError(f"observed_at is not ISO-8601: {value!r}") from exc
    raise BadFeedbackError("observed_at must be an ISO-8601 string or epoch seconds")


def feedback_record(item: Any, collector: Collector, default_project: str) -> dict[str, Any]:
    if (
        not isinstance(item, dict)
        or not isinstance(item.get("request_id"), str)
        or not item["request_id"]
    ):
        raise BadFeedbackError("feedback needs a non-empty string 'request_id'")
    label = item.get("label")
    if isinstance(label, bool):
        label = int(label)
    if not isinstance(label, int | float):
        raise BadFeedbackError("feedback needs a numeric 'label'")
    observed = _epoch(item.get("observed_at"))
    project = str(item.get("project") or default_project)
    return {
        "k": "feedback",
        "key": f"feedback:{item['request_id']}:{label}:{observed}",
        "p": project,
        "rid": item["request_id"],
        "label": float(label),
        "obs": observed,
        "rt": time.time(),
        "known": collector.knows_request(item["request_id"]),
    }


def event_record(event: events.InferenceEvent) -> dict[str, Any]:
    """The WAL record of one half; its `key` dedupes, its pair key (`j`, else `id`) joins.

    The transformer logs the request id it forwards to the predictor, so both
    components send events with one ce-id: the key and the pair key are scoped by the
    component, or a transformer's half would pass as the predictor's duplicate or pair
    with it. The predictor's (and a logger's that names no component: the chart puts
    it on the predictor) stay bare, as the keys already in a collector's WAL are.
    """
    project = event.project
    if not project:
        raise events.MalformedEventError(
            "response event names no project (no inferenceservicename extension, no model_name)"
        )
    component = event.extensions.get("component") or "predictor"
    scope = "" if component == "predictor" else f"{component}:"
    record: dict[str, Any] = {
        "k": event.kind,
        "key": f"{scope}{event.kind}:{event.event_id}",
        "id": event.event_id,
        "p": project,
        "rt": time.time(),
        "ext": event.extensions,
    }
    if scope:
        record["j"] = f"{scope}{event.event_id}"
    if event.kind == "request":
        record["rows"] = event.rows
    else:
        record.update(
            prob=event.probability, label=event.label, mv=event.model_version, mn=event.model_name
        )
    return record


def build_app(
    settings: CollectorSettings,
    collector: Collector | None = None,
    retrain: RetrainMount | None = None,
) -> CollectorApp:
    core = collector or Collector(settings, spec_features)
    retry_after = settings.collector_retry_after_s

    async def guarded(request: Request) -> tuple[dict[str, str], bytes]:
        headers = {k.lower(): v for k, v in request.headers.items()}
        limit = settings.collector_max_body_bytes
        check_declared_length(headers, limit)
        body = await read_body(request.receive, limit)
        if body is None:
            raise BadFeedbackError("the client went away before sending the whole body")
        auth.check(headers, body, settings.collector_token, settings.collector_hmac_key)
        return headers, body

    async def ingest_feedback(request: Request) -> Response:
        try:
            _, body = await guarded(request)
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise BadFeedbackError(f"body is not JSON: {exc}") from exc
            items = payload if isinstance(payload, list) else [payload]
            records = [feedback_record(i, core, settings.collector_default_project) for i in items]
            answers = []
            for record in records:
                status = await core.submit(record)
                if status == "accepted" and not record["known"]:
                    core.metrics.unknown_feedback.inc()
                answers.append(
                    {
                        "request_id": record["rid"],
                        "status": status,
                        "known_request": record["known"],
                    }
                )
        except CastmlError as exc:
            if exc.status_code < 500:
                core.metrics.rejected.labels(type(exc).__name__).inc()
            return error_response(exc, retry_after)
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
        Route("/v1/status", status),
        Route("/metrics", metrics),
        Route("/healthz", health),
    ]
    if retrain is not None:
        routes += retrain_api.routes(*retrain)
    return CollectorApp(core, settings, Starlette(routes=routes, lifespan=lifespan))


def tune_gc() -> None:
    """Garbage-collector settings for a collector process (call once, after the imports).

    Every acknowledged event stays in memory as a few container objects until its
    Parquet flush, so at the default thresholds the young generations filled with
    live records again and again and a full collection ran every half second, each
    walking every object the imports made: a fifth of the process's CPU at 7k events/s,
    and a stall of the event loop of over 100 ms each time (measured for issue 4).
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
