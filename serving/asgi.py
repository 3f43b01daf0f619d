"""A lean ASGI layer: routing, bounded body reading, orjson replies, one error handler.

Why not Starlette or kserve's ModelServer: on this machine they cost 0.1-1 ms per
request, more than the model itself (DESIGN.md §8). This is the minimum a v2 server
needs, and nothing else runs on the hot path.
"""

from __future__ import annotations

import itertools
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from serving.errors import (
    EmptyBodyError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    ServingError,
)

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
JSON = b"application/json"
ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body as JSON; an empty or malformed body is the caller's error (400)."""
        from serving.errors import BadRequestError

        if not self.body.strip():
            raise EmptyBodyError()
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise BadRequestError(f"the request body is not valid JSON: {exc}") from None


@dataclass
class Response:
    body: bytes
    status: int = 200
    content_type: bytes = JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def json_response(
    payload: Any, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None
) -> Response:
    return Response(orjson.dumps(payload, option=ORJSON_OPTIONS), status, JSON, headers or [])


def error_response(exc: BaseException) -> Response:
    """The one place an exception becomes an HTTP answer."""
    if isinstance(exc, ServingError):
        return json_response(exc.body(), exc.status_code)
    log.exception("unhandled error", exc_info=exc)
    return json_response({"error": "internal server error"}, 500)


# Ids for requests that bring none: unique per process by a random prefix, then a counter
# (uuid4 per request costs a urandom call on the hot path).
_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count()


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


Handler = Callable[[Request], Awaitable[Response]]
Hook = Callable[[], Awaitable[None]]


class App:
    """Routes `(method, pattern)` to handlers; `{name}` in a pattern matches one path segment."""

    def __init__(self, max_body_bytes: int) -> None:
        self.max_body_bytes = max_body_bytes
        self._exact: dict[str, dict[str, Handler]] = {}
        self._patterns: list[tuple[re.Pattern[str], dict[str, Handler]]] = []
        self.on_startup: list[Hook] = []
        self.on_shutdown: list[Hook] = []

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        if "{" not in pattern:
            self._exact.setdefault(pattern, {})[method] = handler
            return
        regex = re.compile(
            "^"
            + re.sub(
                r"\{(\w+)\}",
                r"(?P<\1>[^/:]+)",
                re.escape(pattern).replace(r"\{", "{").replace(r"\}", "}"),
            )
            + "$"
        )
        for known, methods in self._patterns:
            if known.pattern == regex.pattern:
                methods[method] = handler
                return
        self._patterns.append((regex, {method: handler}))

    def _resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        methods = self._exact.get(path)
        params: dict[str, str] = {}
        if methods is None:
            for regex, candidates in self._patterns:
                match = regex.match(path)
                if match:
                    methods, params = candidates, match.groupdict()
                    break
        if methods is None:
            raise NotFoundError(f"no route {path}")
        handler = methods.get(method)
        if handler is None:
            raise MethodNotAllowedError(
                f"{method} is not allowed on {path} (use {', '.join(methods)})"
            )
        return handler, params

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for hook in self.on_startup:
                        await hook()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in self.on_shutdown:
                    await hook()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _read_body(self, headers: dict[str, str], receive: Receive) -> bytes:
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise PayloadTooLargeError(self.max_body_bytes)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise PayloadTooLargeError(self.max_body_bytes)
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            handler, params = self._resolve(scope["method"], scope["path"])
            body = await self._read_body(headers, receive) if scope["method"] != "GET" else b""
            response = await handler(Request(scope["method"], scope["path"], headers, body, params))
        except Exception as exc:
            response = error_response(exc)
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (b"content-type", response.content_type),
                    (b"content-length", str(len(response.body)).encode()),
                    *response.headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": response.body})
