"""Minimal Redis clients for the forecast hot paths: the read endpoint's GET and MGET on
asyncio (`RespClient`), and the job's blocking link that sends a run's commands at once
(`RespLink`).

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
import socket
from collections import deque
from collections.abc import Callable
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
            if buffer.startswith(b"$-1\r\n", after):  # a missing key (most of an MGET)
                items.append(None)
                after += 5
                continue
            parsed = parse_reply(buffer, after)
            if parsed is None:
                return None
            item, after = parsed
            items.append(item)
        return items, after
    raise RespError(f"not a RESP reply (starts with {kind!r})")


class RespConnection(asyncio.Protocol):
    """One connection: replies resolve the waiting futures in order; `on_lost` is called
    once when it closes."""

    def __init__(self, on_lost: Callable[[], None] | None = None) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[Reply]] = deque()
        self.buffer = bytearray()
        self.lost: RespError | None = None
        self.on_lost = on_lost

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
        first = self.lost is None
        self.lost = error
        if first and self.on_lost is not None:
            self.on_lost()
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)
        if self.transport is not None:
            self.transport.close()


class RedisTarget:
    """Where a client connects and how it starts a connection (AUTH, SELECT)."""

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

    def setup_commands(self) -> list[tuple[bytes, ...]]:
        """What a new connection sends first: AUTH, SELECT, as the settings need."""
        out: list[tuple[bytes, ...]] = []
        if self.password:
            auth = (self.username.encode(),) if self.username else ()
            out.append((b"AUTH", *auth, self.password.encode()))
        if self.db:
            out.append((b"SELECT", b"%d" % self.db))
        return out


class RespClient(RedisTarget):
    """GET and MGET over one pipelined connection, (re)connected on first use."""

    on_lost: Callable[[], None] | None = None  # called when the command connection closes
    _protocol: RespConnection | None = None
    _connecting: asyncio.Lock | None = None

    async def connection(self) -> RespConnection:
        """The connection commands go on, connected (again) if need be."""
        protocol = self._protocol
        if protocol is not None and protocol.lost is None:
            return protocol
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            protocol = self._protocol
            if protocol is not None and protocol.lost is None:
                return protocol  # another request connected meanwhile
            self._protocol = await self._open(RespConnection(on_lost=self.on_lost))
            return self._protocol

    async def _open(self, fresh: RespConnection) -> RespConnection:
        """`fresh` connected, authenticated and on its db."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout_s):
                await loop.create_connection(lambda: fresh, self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise RespError(f"cannot connect to Redis: {type(exc).__name__}") from exc
        try:
            async with asyncio.timeout(self.timeout_s):
                for parts in self.setup_commands():
                    await self._send(fresh, *parts)
        except (RespError, TimeoutError) as exc:  # refused credentials: not connected
            fresh.fail(RespError("Redis refused the connection's set-up"))
            raise RespError(f"Redis refused the connection: {exc}") from exc
        return fresh

    @staticmethod
    def _send(protocol: RespConnection, *parts: bytes) -> asyncio.Future[Reply]:
        if protocol.lost is not None or protocol.transport is None:
            raise protocol.lost or RespError("not connected to Redis")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        protocol.waiting.append(future)
        protocol.transport.write(command_bytes(*parts))
        return future

    async def command(self, *parts: bytes) -> Reply:
        protocol = await self.connection()
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


class RespLink(RedisTarget):
    """The forecast job's side: one blocking connection; many commands per round trip.

    `request` sends commands already packed (a run's transaction: about 800 `SET`s) and
    reads all their replies. When the caller knows what success looks like (`expect`: a
    transaction of `SET`s answers `+OK`, `+QUEUED` each, then an array of `+OK`), the
    reply stream is compared with it as bytes and nothing is parsed; parsing 1,600 replies
    one by one took longer than Redis took to run the commands. Anything else is parsed,
    and its first error reply is raised. Any failure is `RespError`, and the connection is
    dropped (the next request connects again).
    """

    _sock: socket.socket | None = None
    _unread = False  # commands sent whose replies are not read yet

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), self.timeout_s)
        except OSError as exc:
            raise RespError(f"cannot connect to Redis: {type(exc).__name__}") from exc
        sock.settimeout(self.timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        setup = [command_bytes(*parts) for parts in self.setup_commands()]
        self._sock = sock
        if setup:
            try:
                self._exchange(sock, b"".join(setup), len(setup), None)
            except RespError as exc:
                self.close()
                raise RespError(f"Redis refused the connection: {exc}") from exc
        return sock

    def request(
        self, payload: bytes, count: int, expect: bytes | None = None, expected: int | None = None
    ) -> list[Reply]:
        """The replies of the `count` commands in `payload`; [] when they are `expect`
        (`receive` says what `expected` does)."""
        self.send(payload)
        return self.receive(count, expect, expected)

    def send(self, payload: bytes) -> None:
        """Sends commands whose replies `receive` reads later: the job scores meanwhile.

        A send while replies are still unread (a run that failed between the two) starts
        a fresh connection: those replies would answer the wrong commands."""
        if self._unread:
            self.close()
        sock = self._sock or self._connect()
        try:
            sock.sendall(payload)
        except OSError as exc:
            self.close()
            raise RespError(f"Redis did not take the commands: {type(exc).__name__}") from exc
        self._unread = True

    def receive(
        self, count: int, expect: bytes | None = None, expected: int | None = None
    ) -> list[Reply]:
        """The replies of the `count` commands sent last; [] when they are `expect`.

        `expected`: how many of the first replies `expect` spells out, when fewer than
        `count`; then only the replies after those are parsed and returned."""
        if self._sock is None or not self._unread:
            raise RespError("no commands are waiting for their replies")
        try:
            replies = self._replies(self._sock, count, expect, expected)
        except RespError:
            raise
        except (OSError, ValueError) as exc:  # reset, timed out; an unreadable reply
            self.close()
            raise RespError(f"Redis did not answer: {type(exc).__name__}") from exc
        finally:
            self._unread = False
        return replies

    def _exchange(
        self, sock: socket.socket, payload: bytes, count: int, expect: bytes | None
    ) -> list[Reply]:
        sock.sendall(payload)
        return self._replies(sock, count, expect)

    def _replies(
        self, sock: socket.socket, count: int, expect: bytes | None, expected: int | None = None
    ) -> list[Reply]:
        buffer = bytearray()
        at = 0
        if expect is not None:
            while len(buffer) < len(expect) and expect.startswith(buffer):
                buffer += self._receive(sock)
            if buffer == expect and expected is None:
                return []
            if expected is not None and buffer.startswith(expect):
                at, count = len(expect), count - expected  # parse what follows only
        replies: list[Reply | RespError] = []
        while len(replies) < count:
            parsed = parse_reply(buffer, at)
            if parsed is None:
                buffer += self._receive(sock)
                continue
            reply, at = parsed
            replies.append(reply)
        if at != len(buffer):  # more than was asked for: the stream is out of step
            self.close()
            raise RespError("Redis answered more replies than commands were sent")
        for reply in replies:
            error = _first_error(reply)
            if error is not None:
                raise error
        return replies  # type: ignore[return-value]  # no error left in them

    def _receive(self, sock: socket.socket) -> bytes:
        chunk = sock.recv(1 << 16)
        if not chunk:
            self.close()
            raise RespError("the connection to Redis closed")
        return chunk

    def close(self) -> None:
        self._unread = False
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _first_error(reply: Reply | RespError) -> RespError | None:
    """The first error in a reply, inside an array too (a transaction's failed command)."""
    if isinstance(reply, RespError):
        return reply
    if isinstance(reply, list):
        for item in reply:
            if isinstance(item, RespError | list):  # no call for a plain value
                error = _first_error(item)
                if error is not None:
                    return error
    return None
