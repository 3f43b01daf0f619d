"""The read endpoint's local copy of the forecast keys, kept true by Redis itself.

Redis's server-assisted client-side caching (`CLIENT TRACKING`, Redis >= 6): the reading
connection asks Redis to remember the keys it reads and to report any change to them
(a write, a delete, an expiry, a flush) on a second connection subscribed to
`__redis__:invalidate`. A key read once is then answered from memory until Redis says it
changed. Why: a read through Redis costs two process wake-ups more than answering from
memory; on an idle machine that round trip was about half of the endpoint's time
(`make bench`).

What keeps it correct:
- the invalidation connection is a plain non-blocking socket, drained before every
  answer from memory: a report already delivered to this process is always applied
  before a copy is used (an event loop could otherwise take the HTTP request first);
- a value is kept only when no report arrived while it was being read, so a write that
  races a read is never remembered as current;
- when either connection closes, every copy is dropped, and tracking is set up again
  before anything is kept;
- a key that does not exist is not kept, and the copies are bounded (`MAX_KEYS`);
- a Redis that refuses tracking (too old, or the command renamed away) leaves every read
  going to Redis, as before.

Redis writes a report as it runs the change, with the writer's reply: a read that starts
once the writer has its reply finds the report here, but for the microseconds Redis may
take between sending the two.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from serving.forecast_resp import Reply, RespClient, RespError, command_bytes, parse_reply

log = logging.getLogger("serving.forecast")

CHANNEL = b"__redis__:invalidate"
MAX_KEYS = 65_536


class TrackingRefusedError(RespError):
    """Redis answered the tracking set-up with an error (an old server, an ACL, a rename)."""


class _Listener:
    """The invalidation connection: subscribed, then only ever drained without waiting."""

    def __init__(self, sock: socket.socket, client_id: int) -> None:
        self.sock, self.client_id = sock, client_id
        self.buffer = bytearray()

    @classmethod
    async def open(cls, target: RespClient) -> _Listener:
        loop = asyncio.get_running_loop()
        setup = [*target.setup_commands(), (b"CLIENT", b"ID"), (b"SUBSCRIBE", CHANNEL)]
        sock: socket.socket | None = None
        try:
            async with asyncio.timeout(target.timeout_s):
                family, kind, proto, _, address = (
                    await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
                )[0]
                sock = socket.socket(family, kind, proto)
                sock.setblocking(False)
                await loop.sock_connect(sock, address)
                await loop.sock_sendall(sock, b"".join(command_bytes(*c) for c in setup))
                listener = cls(sock, 0)
                replies: list[Reply | RespError] = []
                while len(replies) < len(setup):
                    chunk = await loop.sock_recv(sock, 1 << 16)
                    if not chunk:
                        raise ConnectionResetError("closed during set-up")
                    listener.buffer += chunk
                    replies += listener._parse(len(setup) - len(replies))
        except (OSError, TimeoutError, ValueError, RespError) as exc:
            if sock is not None:
                sock.close()
            raise RespError(f"cannot subscribe to Redis's invalidations: {exc!r}") from exc
        errors = [r for r in replies if isinstance(r, RespError)]
        client_id = replies[-2]
        if errors or not isinstance(client_id, int):
            sock.close()
            raise TrackingRefusedError(f"{errors or client_id!r}")
        listener.client_id = client_id
        return listener

    def _parse(self, most: int | None = None) -> list[Reply | RespError]:
        out: list[Reply | RespError] = []
        at = 0
        while most is None or len(out) < most:
            parsed = parse_reply(self.buffer, at)
            if parsed is None:
                break
            reply, at = parsed
            out.append(reply)
        del self.buffer[:at]
        return out

    def drain(self) -> list[Reply | RespError] | None:
        """The messages delivered so far; None once the connection is gone."""
        while True:
            try:
                chunk = self.sock.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError:
                return None
            if not chunk:
                return None
            self.buffer += chunk
        try:
            return self._parse()
        except (RespError, ValueError):
            return None

    def close(self) -> None:
        self.sock.close()


class LocalReads:
    """GET and MGET through `client`, answered from memory while Redis reports no change."""

    def __init__(self, client: RespClient) -> None:
        self.client = client
        self.values: dict[str, bytes] = {}
        self.reports = 0  # invalidations applied: a read spanning one keeps nothing
        self.enabled = True
        self._listener: _Listener | None = None
        self._tracked: object | None = None  # the reading connection tracking is on
        self._setting_up = asyncio.Lock()
        # Redis forgets what a connection read when it closes: its copies go with it.
        client.on_lost = self._forget

    def _forget(self) -> None:
        self.reports += 1
        self.values.clear()
        self._tracked = None

    def _apply(self) -> bool:
        """Applies every report delivered; False when the listener is gone (all dropped)."""
        if self._listener is None:
            return False
        messages = self._listener.drain()
        if messages is None:
            self._listener.close()
            self._listener = None
            self._forget()
            return False
        for message in messages:
            self.reports += 1
            # ["message", channel, [keys]]; a null in place of the keys: everything.
            if not (isinstance(message, list) and len(message) == 3):
                continue
            if message[0] != b"message":
                continue
            keys = message[2]
            if not isinstance(keys, list):
                self.values.clear()
                continue
            for key in keys:
                if isinstance(key, bytes):
                    self.values.pop(key.decode(errors="replace"), None)
        return True

    async def _tracking(self) -> bool:
        """Whether reads are tracked now (setting it up when they are not)."""
        if not self.enabled:
            return False
        reader = await self.client.connection()
        if self._tracked is reader and self._apply():
            return True
        async with self._setting_up:
            reader = await self.client.connection()
            if self._tracked is reader and self._apply():
                return True
            self._forget()
            try:
                if self._listener is None:
                    self._listener = await _Listener.open(self.client)
                redirect = b"%d" % self._listener.client_id
                try:
                    await self.client.command(b"CLIENT", b"TRACKING", b"ON", b"REDIRECT", redirect)
                except RespError as exc:
                    if "Redis answered an error" in str(exc):
                        raise TrackingRefusedError(str(exc)) from exc
                    raise
            except TrackingRefusedError as exc:
                log.warning("forecast reads: Redis refuses client tracking (%s): uncached", exc)
                self.enabled = False
                return False
            self._tracked = reader
            return True

    async def get(self, key: str) -> bytes | None:
        if self._apply():
            found = self.values.get(key)
            if found is not None:
                return found
        tracked = await self._tracking()
        seen = self.reports
        value = await self.client.get(key)
        if tracked and value is not None and self._apply() and seen == self.reports:
            self._keep({key: value})
        return value

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        if self._apply():
            found = [self.values.get(key) for key in keys]
            if all(value is not None for value in found):
                return found
        tracked = await self._tracking()
        seen = self.reports
        values = await self.client.mget(keys)
        if tracked and self._apply() and seen == self.reports:
            self._keep({k: v for k, v in zip(keys, values, strict=True) if v is not None})
        return values

    def _keep(self, values: dict[str, bytes]) -> None:
        if len(self.values) + len(values) > MAX_KEYS:
            self.values.clear()
        self.values.update(values)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._forget()
