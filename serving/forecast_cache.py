"""The forecast cache in Redis: the job's atomic writes, the read endpoint's reads.

Keys and values are the contract of `castml.protocol.forecast_record`. One job run writes
every key in one MULTI/EXEC transaction, each with its TTL, so a reader sees either the
whole previous run or the whole new one: a promotion between runs never leaves a gap
or a mix of versions across one series' horizons.

Any Redis failure (refused, timed out, wrong password) is `CacheUnavailableError`: 503
with Retry-After at the read endpoint, a non-zero exit of the job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis

from castml.protocol.forecast_record import ForecastRun, error_key, forecast_key, run_key
from castml.web.errors import UnavailableError
from serving.forecast_history import WindowBatch
from serving.forecast_local import LocalReads
from serving.forecast_realised import (
    Realised,
    Waiting,
    error_sums,
    realise,
    settle,
    waiting_commands,
    waiting_keys,
)
from serving.forecast_resp import (
    RedisTarget,
    Reply,
    RespClient,
    RespError,
    RespLink,
    command_bytes,
    lean_target,
)
from serving.forecast_table import ForecastTable
from serving.settings import ForecastSettings

Lean = TypeVar("Lean", bound=RedisTarget)


class CacheUnavailableError(UnavailableError):
    """Redis cannot be reached, timed out or refused our credentials."""


def _unavailable(settings: ForecastSettings, exc: Exception) -> CacheUnavailableError:
    # The URL never carries the password (it is a setting of its own), so it may be shown.
    return CacheUnavailableError(
        f"the forecast cache (Redis at {_where(settings.redis_url)}) is unavailable: "
        f"{type(exc).__name__}",
        settings.forecast_retry_after_s,
    )


def _where(url: str) -> str:
    """host:port of a Redis URL, without any credentials it may hold."""
    return url.split("@")[-1].split("://")[-1].split("/")[0]


def _bytes(value: bytes | str | None) -> bytes | None:
    """Clients are made without `decode_responses`: values are bytes (str only in typing)."""
    return value.encode() if isinstance(value, str) else value


def transaction(commands: Sequence[bytes], count: int) -> tuple[bytes, bytes]:
    """`count` packed commands in MULTI/EXEC, and the replies when each answers `+OK`.

    MULTI/EXEC runs them atomically, as a Lua script would, and natively: Redis ran a
    run's 800 `SET EX` in 0.4 ms this way, against 1.4 ms as `redis.call`s in a script."""
    payload = b"*1\r\n$5\r\nMULTI\r\n" + b"".join(commands) + b"*1\r\n$4\r\nEXEC\r\n"
    expect = b"+OK\r\n" + b"+QUEUED\r\n" * count + b"*%d\r\n" % count + b"+OK\r\n" * count
    return payload, expect


@dataclass(frozen=True)
class Sent:
    """Commands sent whose replies are still to be read: how many, and what success is."""

    count: int
    expect: bytes
    expected: int | None  # replies `expect` covers, when commands follow the transaction


class RedisPyLink:
    """`RespLink.request` over a redis-py connection, for the URLs RespLink does not speak
    (TLS, a Unix socket): the same packed commands, their replies read one by one."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._sent = b""

    def request(
        self, payload: bytes, count: int, expect: bytes | None = None, expected: int | None = None
    ) -> list[Reply]:
        pool = self.client.connection_pool
        try:
            connection = pool.get_connection()
            try:
                connection.send_packed_command([payload])  # type: ignore[no-untyped-call]
                replies = [connection.read_response() for _ in range(count)]
            except BaseException:
                connection.disconnect()  # type: ignore[no-untyped-call]  # replies may be left
                raise
            finally:
                pool.release(connection)
        except redis.RedisError as exc:
            raise RespError(f"Redis answered an error: {exc}") from exc
        for reply in replies:  # a failed command inside EXEC comes back as a value
            for item in reply if isinstance(reply, list) else [reply]:
                if isinstance(item, redis.RedisError):
                    raise RespError(f"Redis answered an error: {item}")
        return replies if expected is None else replies[expected:]

    def send(self, payload: bytes) -> None:
        """Kept for `receive`: redis-py sends and reads in one go (no overlap here)."""
        self._sent = payload

    def receive(
        self, count: int, expect: bytes | None = None, expected: int | None = None
    ) -> list[Reply]:
        payload, self._sent = self._sent, b""
        if not payload:
            raise RespError("no commands are waiting for their replies")
        return self.request(payload, count, expect, expected)

    def close(self) -> None:
        """Nothing of its own: the redis-py client holds the connections."""


class ForecastCache:
    """The job's side: every command packed by us and sent through one blocking link."""

    def __init__(self, settings: ForecastSettings, lean: bool = True) -> None:
        """`lean=False` takes redis-py for a plain URL too (how the tests reach that path)."""
        self.settings = settings
        self.client = redis.Redis.from_url(
            settings.redis_url,
            password=settings.redis_password,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
        )
        link = lean_target_of(settings, RespLink) if lean else None
        self.link: RespLink | RedisPyLink = link or RedisPyLink(self.client)

    def _request(
        self, payload: bytes, count: int, expect: bytes | None = None, expected: int | None = None
    ) -> list[Reply]:
        try:
            return self.link.request(payload, count, expect, expected)
        except RespError as exc:
            raise _unavailable(self.settings, exc) from exc

    def check(self) -> None:
        """Raises CacheUnavailableError unless Redis answers: the job checks before it scores."""
        self.check_send()
        self.check_reply()

    def check_send(self) -> None:
        """`check`'s PING, sent now; `check_reply` reads its answer (the job reads its
        observations meanwhile). A Redis that refuses the connection fails here."""
        self._send(command_bytes(b"PING"))

    def check_reply(self) -> None:
        self._receive(1, b"+PONG\r\n")

    def ask_waiting(self, project: str, windows: WindowBatch, horizons: Sequence[int]) -> Waiting:
        """Sends the MGET of the forecasts waiting for these windows' hours; `realise_asked`
        reads it once the run has scored (Redis answers while the boosters run)."""
        waiting = waiting_keys(project, windows, horizons)
        if waiting.keys:
            self._send(waiting.command)
        return waiting

    def realise_asked(
        self,
        waiting: Waiting,
        project: str,
        windows: WindowBatch,
        horizons: Sequence[int],
        target: str,
    ) -> tuple[list[Realised], list[bytes]]:
        """`realise` from the MGET `ask_waiting` sent: the matches, and the commands that
        record them, for `write(..., then=...)` to send with the run's transaction."""
        blobs: list[Reply] = []
        if waiting.keys:
            (found,) = self._receive(1)
            if not isinstance(found, list) or len(found) != len(waiting.keys):
                what = RespError(f"MGET of {len(waiting.keys)} keys answered {found!r:.80}")
                raise _unavailable(self.settings, what)
            blobs = found
        return settle(project, windows, horizons, target, waiting, blobs)

    def _send(self, payload: bytes) -> None:
        try:
            self.link.send(payload)
        except RespError as exc:
            raise _unavailable(self.settings, exc) from exc

    def _receive(
        self, count: int, expect: bytes | None = None, expected: int | None = None
    ) -> list[Reply]:
        try:
            return self.link.receive(count, expect, expected)
        except RespError as exc:
            raise _unavailable(self.settings, exc) from exc

    def write(
        self,
        table: ForecastTable,
        run: ForecastRun,
        remember: bool = False,
        then: Sequence[bytes] = (),
    ) -> None:
        """Every cell (with its TTL) and the run summary, in one transaction; with
        `remember`, the cells also wait for their observations there (forecast_realised).
        `then`: commands sent right after it in the same round trip (the realised error's
        records, `realise_asked`), outside the transaction."""
        self.write_reply(self.write_send(table, run, remember, then))

    def write_send(
        self,
        table: ForecastTable,
        run: ForecastRun,
        remember: bool = False,
        then: Sequence[bytes] = (),
    ) -> Sent:
        """`write`'s commands, sent; `write_reply` reads how Redis took them."""
        commands = [
            table.set_commands(),
            command_bytes(b"SET", run_key(run.project).encode(), run.encode()),
        ]
        if remember:
            commands += waiting_commands(table)
        payload, expect = transaction(commands, len(table) + len(commands) - 1)
        replies = len(table) + len(commands) + 1
        self._send(payload + b"".join(then))
        return Sent(replies + len(then), expect, replies if then else None)

    def write_reply(self, sent: Sent) -> None:
        """Raises CacheUnavailableError unless Redis took every command `write_send` sent."""
        self._receive(sent.count, sent.expect, sent.expected)

    def realise(
        self, project: str, windows: WindowBatch, horizons: Sequence[int], target: str
    ) -> list[Realised]:
        """Errors of the waiting forecasts whose target hour is observed now."""
        return realise(self._request, project, windows, horizons, target)

    def read(self, project: str, series: str, horizons: Sequence[int]) -> list[bytes | None]:
        keys = [forecast_key(project, series, h).encode() for h in horizons]
        (values,) = self._request(command_bytes(b"MGET", *keys), 1)
        assert isinstance(values, list)
        return values

    def close(self) -> None:
        self.link.close()
        self.client.close()


def lean_target_of(settings: ForecastSettings, kind: type[Lean]) -> Lean | None:
    """`kind` (RespLink, RespClient) for a plain `redis://` URL; None for anything else
    (TLS, a Unix socket: redis-py's clients then)."""
    target = lean_target(settings.redis_url)
    if target is None:
        return None
    host, port, db, username = target
    in_url = urlsplit(settings.redis_url).password
    password = settings.redis_password or (unquote(in_url) if in_url else None)
    return kind(host, port, password, db, settings.redis_timeout_s, username)


class AsyncForecastCache:
    """The read endpoint's side, on the server's event loop: the forecast reads (GET,
    MGET) through the lean client where the URL allows, answered from the copies Redis
    keeps true (serving.forecast_local), the rest through redis.asyncio."""

    def __init__(self, settings: ForecastSettings) -> None:
        self.settings = settings
        self.client = aioredis.Redis.from_url(
            settings.redis_url,
            password=settings.redis_password,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
        )
        self.lean = lean_target_of(settings, RespClient)
        self.reads = LocalReads(self.lean) if self.lean is not None else None

    async def get(self, key: str) -> bytes | None:
        try:
            if self.reads is not None:
                return await self.reads.get(key)
            value = await self.client.get(key)
        except (redis.RedisError, RespError) as exc:
            raise _unavailable(self.settings, exc) from exc
        return _bytes(value)

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        try:
            if self.reads is not None:
                return await self.reads.mget(list(keys))
            values = await self.client.mget(list(keys))
        except (redis.RedisError, RespError) as exc:
            raise _unavailable(self.settings, exc) from exc
        return [_bytes(v) for v in values]

    async def last_run(self, project: str) -> ForecastRun | None:
        raw = await self.get(run_key(project))
        if raw is None:
            return None
        try:
            return ForecastRun.decode(raw)
        except ValueError:
            return None

    async def error_sums(self, project: str) -> dict[int, tuple[int, float, float]]:
        try:
            raw = await self.client.hgetall(error_key(project))
        except redis.RedisError as exc:
            raise _unavailable(self.settings, exc) from exc
        return error_sums(raw)

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except redis.RedisError:
            return False

    async def close(self) -> None:
        if self.reads is not None:
            self.reads.close()
        if self.lean is not None:
            self.lean.close()
        await self.client.aclose()
