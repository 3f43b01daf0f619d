"""The lean ASGI core: routing, bounded body reading, orjson replies, the error contract.

Why not Starlette or kserve's ModelServer: on this machine they cost 0.1-1 ms per
request, more than the model itself (DESIGN.md §8). This is the minimum a hot-path
server needs (predictor, transformer, explainer, the collector's ingest, the rollout
receiver), and nothing else runs on the hot path. Errors answer through
`castml.web.errors.error_parts`, the same contract the Starlette/FastAPI apps use.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from castml.web.errors import (
    BadRequestError,
    EmptyBodyError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    error_parts,
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
        """The body as JSON (see `parse_json`); a wrong Content-Type is 415."""
        check_json_content_type(self.headers)
        return parse_json(self.body)


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
    """An exception as an answer, through the one error contract (`error_parts`)."""
    status, body, headers = error_parts(exc)
    return Response(body, status, JSON, [(k.encode(), v.encode()) for k, v in headers.items()])


# What a JSON endpoint accepts; no Content-Type at all is taken as JSON (curl -d sends a
# form type, so clients that forget the header are common, and the body still must parse).
JSON_MEDIA_TYPES = frozenset({"application/json", "application/cloudevents+json", ""})


def check_json_content_type(headers: dict[str, str]) -> None:
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media in JSON_MEDIA_TYPES or media.endswith("+json"):
        return
    # The v2 binary tensor extension: a JSON header, then raw tensor bytes.
    if media != "application/octet-stream" or "inference-header-content-length" not in headers:
        raise UnsupportedMediaTypeError(
            f"Content-Type {media!r} is not accepted here; send application/json"
        )


def parse_json(body: bytes) -> Any:
    """The body as JSON; an empty or malformed body is the caller's error (400).

    `NaN`, `Infinity` and `-Infinity` tokens (what Python's `json.dumps` writes) are
    read as floats rather than refused as bad JSON, so that the field validation that
    follows names the field that holds them. orjson refuses them, so only such a body
    pays for the second, stdlib parse.
    """
    if not body.strip():
        raise EmptyBodyError()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            payload = json.loads(body)
            # The stdlib also reads what orjson rightly refuses: lone surrogates (`"\ud800"`,
            # or their raw bytes), which are no text and which no answer could echo back.
            orjson.dumps(payload)
        except (ValueError, RecursionError, TypeError):
            raise BadRequestError(f"the request body is not valid JSON: {exc}") from None
        return payload


# Ids for requests that bring none: unique per process by a random prefix, then a counter
# (uuid4 per request costs a urandom call on the hot path).
_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count()


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


class ClientGoneError(BadRequestError):
    """The client went away before sending the whole body; nothing of it was kept."""

    def __init__(self) -> None:
        super().__init__("the client went away before sending the whole body")


async def read_body(
    headers: dict[str, str], receive: Receive, limit: int, setting: str = ""
) -> bytes:
    """The whole request body, refused with 413 past `limit` bytes before it is all read.

    A declared Content-Length over the limit is refused before any byte is read; a
    chunked body (it declares none) is counted as it arrives. `headers` has lower-case
    names. Raises `ClientGoneError` when the client disconnects mid-body.
    """
    declared = headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(limit, setting)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGoneError()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(limit, setting)
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def header_dict(scope: Scope) -> dict[str, str]:
    """Request headers with lower-case names; values decoded as UTF-8 where they are.

    RFC 9110 says latin-1, but clients send UTF-8 ids (an `x-request-id` in Korean):
    decoding those as latin-1 and echoing them back garbles them.
    """
    out: dict[str, str] = {}
    for raw_key, raw_value in scope["headers"]:
        try:
            value = raw_value.decode()
        except UnicodeDecodeError:
            value = raw_value.decode("latin-1")
        out[raw_key.decode("latin-1").lower()] = value
    return out


def encode_header(value: str) -> bytes:
    """A header value as bytes: UTF-8, the inverse of `header_dict`."""
    return value.encode()


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
            raise MethodNotAllowedError(method, path, list(methods))
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

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = header_dict(scope)
        try:
            handler, params = self._resolve(scope["method"], scope["path"])
            body = b""
            if scope["method"] != "GET":
                body = await read_body(headers, receive, self.max_body_bytes)
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
