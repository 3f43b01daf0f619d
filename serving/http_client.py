"""A lean HTTP/1.1 client for one upstream (the predictor): kept-alive asyncio streams.

Why not httpx: on the transformer's hot path its per-request machinery (request and
response models, header normalisation, pool bookkeeping, anyio) costs about as much as the
predictor's whole answer. The predictor is ours and always frames with Content-Length,
so this needs little: a small pool of idle connections, one request per connection at
a time, Content-Length framing (chunked replies are decoded too, for other servers).

A request that fails on a connection taken from the pool (the server may have closed it
while it sat idle) is retried once on a fresh connection; every other failure, and any
time-out, is an `UpstreamUnavailableError`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEADER_BYTES = 64 * 1024


class UpstreamUnavailableError(Exception):
    """The upstream could not be reached or did not answer in time."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class _ClosedError(Exception):
    """The connection closed before a complete response."""


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class LeanHttpClient:
    def __init__(self, base_url: str, timeout_s: float, max_idle: int = 64) -> None:
        parts = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only plain http://host:port upstreams are supported: {base_url}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.timeout_s = timeout_s
        self.max_idle = max_idle
        self._idle: list[Connection] = []
        self._host_header = f"{self.host}:{self.port}".encode()

    async def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> HttpResponse:
        head = [f"{method} {self.prefix}{path} HTTP/1.1".encode(), b"Host: " + self._host_header]
        if body is not None:
            head.append(f"Content-Length: {len(body)}".encode())
            if content_type:
                head.append(f"Content-Type: {content_type}".encode())
        message = b"\r\n".join(head) + b"\r\n\r\n" + (body or b"")
        try:
            async with asyncio.timeout(self.timeout_s):
                while self._idle:
                    connection = self._idle.pop()
                    try:
                        return await self._exchange(connection, message)
                    except (_ClosedError, ConnectionError):
                        _close(connection)  # went stale while idle: try the next one
                try:
                    connection = await asyncio.open_connection(self.host, self.port)
                except OSError as exc:
                    raise UpstreamUnavailableError(f"cannot connect: {exc}") from exc
                try:
                    return await self._exchange(connection, message)
                except (_ClosedError, ConnectionError) as exc:
                    raise UpstreamUnavailableError(f"connection lost: {exc}") from exc
        except TimeoutError:
            raise UpstreamUnavailableError(f"no answer within {self.timeout_s}s") from None

    async def _exchange(self, connection: Connection, message: bytes) -> HttpResponse:
        reader, writer = connection
        reused = False
        try:
            writer.write(message)
            if len(message) > 65536:  # let a big body out before waiting for the answer
                await writer.drain()
            try:
                response, keep = await self._read(reader)
            except ValueError as exc:  # a malformed status line, length or chunk size
                raise UpstreamUnavailableError(f"malformed response: {exc}") from exc
            reused = keep
            return response
        finally:
            if reused and len(self._idle) < self.max_idle:
                self._idle.append(connection)
            else:
                _close(connection)

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> tuple[HttpResponse, bool]:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise _ClosedError("no response") from exc
        except asyncio.LimitOverrunError as exc:
            raise UpstreamUnavailableError("response headers too large") from exc
        lines = raw[:-4].decode("latin-1").split("\r\n")
        status_line = lines[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/1."):
            raise UpstreamUnavailableError(f"not an HTTP/1.x response: {lines[0][:80]!r}")
        status = int(status_line[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        keep = status_line[0] == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        try:
            if "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                body = await _read_chunked(reader)
            elif status in (204, 304) or 100 <= status < 200:
                body = b""
            else:  # framed by the connection's end
                body, keep = await reader.read(), False
        except asyncio.IncompleteReadError as exc:
            raise _ClosedError("truncated response body") from exc
        return HttpResponse(status, headers, body), keep

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            _close(connection)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _close(connection: Connection) -> None:
    writer = connection[1]
    if not writer.is_closing():
        writer.close()
