"""HTTP face of the collector (Starlette: lean, and what FastAPI is built on).

Routes: `POST /` and `POST /v1/events` (KServe logger CloudEvents), `POST /v1/feedback`
(delayed labels), `GET /v1/status`, `GET /metrics` (the collector's counters plus the
drift job's gauges), `GET /healthz`; and, when a retrain policy is passed in (the
chart sets CASTML_RETRAIN_TOKEN on the collector), `POST /v1/retrain` and
`GET /v1/retrain/decisions` for Alertmanager's webhook on the same port.
"""

from __future__ import annotations

import contextlib
import functools
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


def error_response(exc: CastmlError, retry_after_s: int) -> Response:
    """The one place a CastmlError becomes an HTTP answer (DESIGN.md §5)."""
    headers = {}
    if isinstance(exc, QueueFullError | StorageUnavailableError):
        headers["Retry-After"] = str(retry_after_s)
    return _json_response(
        {"error": str(exc), "type": type(exc).__name__}, exc.status_code, **headers
    )


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
    project = event.project
    if not project:
        raise events.MalformedEventError(
            "response event names no project (no inferenceservicename extension, no model_name)"
        )
    record: dict[str, Any] = {
        "k": event.kind,
        "key": f"{event.kind}:{event.event_id}",
        "id": event.event_id,
        "p": project,
        "rt": time.time(),
        "ext": event.extensions,
    }
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
) -> Starlette:
    core = collector or Collector(settings, spec_features)
    retry_after = settings.collector_retry_after_s

    async def guarded(request: Request, trusted: bool = False) -> tuple[dict[str, str], bytes]:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not trusted:
            auth.check(headers, body, settings.collector_token, settings.collector_hmac_key)
        return headers, body

    async def ingest_event(request: Request) -> Response:
        try:
            # The KServe logger sidecar cannot authenticate; in the cluster a
            # NetworkPolicy is the guard for this route (and for this route only).
            trusted = settings.collector_trust_network_ingest
            headers, body = await guarded(request, trusted)
            attrs, data = events.parse(headers, body)
            event = events.to_event(attrs, data, core.features_of)
            status = await core.submit(event_record(event))
        except CastmlError as exc:
            if exc.status_code < 500:
                core.metrics.rejected.labels(type(exc).__name__).inc()
            return error_response(exc, retry_after)
        return _json_response({"status": status, "id": event.event_id}, 202)

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

    routes = [
        Route("/", ingest_event, methods=["POST"]),
        Route("/v1/events", ingest_event, methods=["POST"]),
        Route("/v1/feedback", ingest_feedback, methods=["POST"]),
        Route("/v1/status", status),
        Route("/metrics", metrics),
        Route("/healthz", health),
    ]
    if retrain is not None:
        routes += retrain_api.routes(*retrain)
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.collector = core
    return app


def serve(settings: CollectorSettings, retrain: RetrainMount | None = None) -> None:
    """Run under uvicorn; refuses to start without credentials.

    Even with trusted network ingest, feedback needs a credential, so one is required.
    """
    import uvicorn

    if settings.collector_token is None and settings.collector_hmac_key is None:
        raise auth.UnauthorizedError(
            "set CASTML_COLLECTOR_TOKEN or CASTML_COLLECTOR_HMAC_KEY: the collector never runs open"
        )
    uvicorn.run(
        build_app(settings, retrain=retrain),
        host=settings.collector_host,
        port=settings.collector_port,
        log_level="warning",
        access_log=False,
    )
