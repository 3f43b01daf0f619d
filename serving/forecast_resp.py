"""A minimal Redis client on asyncio for the read endpoint's hot path: GET and MGET.

Why not redis.asyncio: per command it takes a pool connection under a lock, runs a
`wait_for` task, records observability events and packs through generic code; at about
30 us a GET, that was as much as the whole rest of the endpoint (measured with
`bench/forecast_serving.py`). Here one connection carries every command, pipelined:
a command is written at once and its future waits in a FIFO, and the replies (RESP2,
in order) resolve the futures as they arrive.

Only `redis://` URLs (host, port, db, optional user and password) are spoken; the cache
falls back to redis.asyncio for anything else (TLS, a Unix socket). Any failure (refused,
timed out, closed, an error reply) is `RespError`; the connection is then dropped and the
next command connects again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit

Reply = bytes | int | list[Any] | None


class RespError(Exception):
    """Redis cannot be reached, timed out, closed the connection or answered an error."""


def lean_target(url: str) -> tuple[str, int, int, str | None] | None:
    """(host, port, db, username) of a plain `redis://` URL; None for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or not parts.hostname:
        return None
    path = parts.path.strip("/")
    if path and not path.isdigit():
        return None
    username = unquote(parts.username) if parts.username else None
    return parts.hostname, parts.port or 6379, int(path or 0), username


def command_bytes(*parts: bytes) -> bytes:
    """One RESP command (an array of bulk strings)."""
    return b"*%d\r\n" % len(parts) + b"".join(
        [b"$%d\r\n%b\r\n" % (len(part), part) for part in parts]
    )


def parse_reply(buffer: bytearray | bytes, at: int) -> tuple[Reply | RespError, int] | None:
    """The RESP2 reply starting at `at` and the offset after it; None while incomplete.

    An error reply is returned as a `RespError` value (raised by the caller)."""
    end = buffer.find(b"\r\n", at)
    if end < 0:
        return None
    kind, line = buffer[at : at + 1], bytes(buffer[at + 1 : end])
    after = end + 2
    if kind == b"+":
        return line, after
    if kind == b"-":
        return RespError(f"Redis answered an error: {line.decode(errors='replace')[:200]}"), after
    if kind == b":":
        return int(line), after
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, after
        if len(buffer) < after + size + 2:
            return None
        return bytes(buffer[after : after + size]), after + size + 2
    if kind == b"*":
        count = int(line)
        if count < 0:
            return None, after
        items: list[Any] = []
        for _ in range(count):
            parsed = parse_reply(buffer, after)
            if parsed is None:
                return None
            item, after = parsed
            items.append(item)
        return items, after
    raise RespError(f"not a RESP reply (starts with {kind!r})")


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[Reply]] = deque()
        self.buffer = bytearray()
        self.lost: RespError | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        at = 0
        while self.waiting:
            try:
                parsed = parse_reply(self.buffer, at)
            except (RespError, ValueError) as exc:
                self.fail(RespError(f"unreadable reply from Redis: {exc}"))
                return
            if parsed is None:
                break
            reply, at = parsed
            future = self.waiting.popleft()
            if future.done():  # its caller gave up (timed out): the reply is dropped
                continue
            if isinstance(reply, RespError):
                future.set_exception(reply)
            else:
                future.set_result(reply)
        del self.buffer[:at]

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RespError(f"the connection to Redis closed ({type(exc).__name__})"))

    def fail(self, error: RespError) -> None:
        self.lost = error
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)
        if self.transport is not None:
            self.transport.close()


class RespClient:
    """GET and MGET over one pipelined connection, (re)connected on first use."""

    def __init__(
        self,
        host: str,
        port: int,
        password: str | None,
        db: int = 0,
        timeout_s: float = 1.0,
        username: str | None = None,
    ) -> None:
        self.host, self.port, self.db = host, port, db
        self.password, self.username = password, username
        self.timeout_s = timeout_s
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            protocol = self._protocol
            if protocol is not None and protocol.lost is None:
                return protocol  # another request connected meanwhile
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self.timeout_s):
                    _, fresh = await loop.create_connection(_Protocol, self.host, self.port)
            except (OSError, TimeoutError) as exc:
                raise RespError(f"cannot connect to Redis: {type(exc).__name__}") from exc
            try:
                async with asyncio.timeout(self.timeout_s):
                    if self.password:
                        auth = (self.username.encode(),) if self.username else ()
                        await self._send(fresh, b"AUTH", *auth, self.password.encode())
                    if self.db:
                        await self._send(fresh, b"SELECT", b"%d" % self.db)
            except (RespError, TimeoutError) as exc:  # refused credentials: not connected
                fresh.fail(RespError("Redis refused the connection's set-up"))
                raise RespError(f"Redis refused the connection: {exc}") from exc
            self._protocol = fresh
            return fresh

    @staticmethod
    def _send(protocol: _Protocol, *parts: bytes) -> asyncio.Future[Reply]:
        if protocol.lost is not None or protocol.transport is None:
            raise protocol.lost or RespError("not connected to Redis")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        protocol.waiting.append(future)
        protocol.transport.write(command_bytes(*parts))
        return future

    async def command(self, *parts: bytes) -> Reply:
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._connect()
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._send(protocol, *parts)
        except TimeoutError:
            # A late reply would answer the next command: the connection cannot be reused.
            protocol.fail(RespError("Redis did not answer in time"))
            raise RespError(f"Redis did not answer within {self.timeout_s} s") from None

    async def get(self, key: str) -> bytes | None:
        reply = await self.command(b"GET", key.encode())
        if reply is not None and not isinstance(reply, bytes):
            raise RespError(f"GET answered {type(reply).__name__}")
        return reply

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        reply = await self.command(b"MGET", *(key.encode() for key in keys))
        if not isinstance(reply, list):
            raise RespError(f"MGET answered {type(reply).__name__}")
        return reply

    def close(self) -> None:
        if self._protocol is not None:
            self._protocol.fail(RespError("the client was closed"))
            self._protocol = None
