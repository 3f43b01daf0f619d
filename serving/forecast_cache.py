"""The forecast cache in Redis: the job's atomic writes, the read endpoint's reads.

Keys and values are the contract of `castml.protocol.forecast_record`. One job run writes
every key in one atomic script call, each with its TTL, so a reader sees either the
whole previous run or the whole new one: a promotion between runs never leaves a gap
or a mix of versions across one series' horizons.

Any Redis failure (refused, timed out, wrong password) is `CacheUnavailableError`: 503
with Retry-After at the read endpoint, a non-zero exit of the job.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis

from castml.protocol.forecast_record import (
    ForecastRecord,
    ForecastRun,
    error_key,
    forecast_key,
    log_key,
    run_key,
)
from castml.web.errors import UnavailableError
from serving.forecast_history import WindowBatch
from serving.forecast_realised import (
    Realised,
    error_sums,
    realise,
    remember,
    wait_seconds,
    waiting_fields,
)
from serving.forecast_resp import RespClient, RespError, lean_target
from serving.settings import ForecastSettings


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


# KEYS: the records' keys, the run summary's, then the forecast logs' (one per horizon).
# ARGV: the records' values (one per line), the run summary, the TTL, then per log: its
# expiry and its fields and values (one per line, alternating). Lines, not one argument
# each: packing and parsing 3,000 arguments was most of the write at 400 series; neither a
# record (orjson escapes newlines), a log field (`<series>@<seconds>`) nor a value holds one.
_WRITE_SCRIPT = """
local function lines(blob)
  local out = {}
  for line in string.gmatch(blob, '[^\\n]+') do out[#out + 1] = line end
  return out
end
local values = lines(ARGV[1])
local n = #values
for i = 1, n do
  redis.call('SET', KEYS[i], values[i], 'EX', ARGV[3])
end
redis.call('SET', KEYS[n + 1], ARGV[2])
for j = n + 2, #KEYS do
  local at = 4 + 2 * (j - n - 2)
  local fields = lines(ARGV[at + 1])
  for i = 1, #fields, 1000 do  -- one HSET per 500 fields: Lua's unpack is bounded
    redis.call('HSET', KEYS[j], unpack(fields, i, math.min(i + 999, #fields)))
  end
  redis.call('EXPIRE', KEYS[j], ARGV[at])
end
return n
"""


def _command(parts: Sequence[bytes]) -> bytes:
    """One RESP command: what redis-py's `pack` makes, at a fraction of its cost per part
    (it was a tenth of a run at 400 series)."""
    head = b"*%d\r\n" % len(parts)
    return head + b"".join([b"$%d\r\n%b\r\n" % (len(p), p) for p in parts])


def _bytes(value: bytes | str | None) -> bytes | None:
    """Clients are made without `decode_responses`: values are bytes (str only in typing)."""
    return value.encode() if isinstance(value, str) else value


class ForecastCache:
    """The job's side: blocking redis-py."""

    def __init__(self, settings: ForecastSettings) -> None:
        self.settings = settings
        self.client = redis.Redis.from_url(
            settings.redis_url,
            password=settings.redis_password,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
        )

    def check(self) -> None:
        """Raises CacheUnavailableError unless Redis answers: the job checks before it scores."""
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise _unavailable(self.settings, exc) from exc

    def write(
        self, records: Sequence[ForecastRecord], run: ForecastRun, remember: bool = False
    ) -> None:
        """Every record (with its TTL) and the run summary, atomically: one script call;
        with `remember`, each record also waits in its horizon's forecast log (what
        `remember` does) in the same call.

        A Lua script runs atomically on the server like MULTI/EXEC, in one round trip with
        one reply; MULTI/EXEC queued one reply per key (a third of a run's time at 800
        keys, measured with `make bench`).
        """
        keys = [r.key.encode() for r in records] + [run_key(run.project).encode()]
        ttl = records[0].ttl_s if records else 1
        args = [b"\n".join([r.encode() for r in records]), run.encode(), b"%d" % ttl]
        if remember and records:
            for horizon, fields in waiting_fields(records).items():
                keys.append(log_key(run.project, horizon).encode())
                lines = "\n".join([f"{field}\n{value}" for field, value in fields.items()])
                args += [b"%d" % wait_seconds(horizon), lines.encode()]
        script = _WRITE_SCRIPT.encode()
        command = _command([b"EVAL", script, b"%d" % len(keys), *keys, *args])
        pool = self.client.connection_pool
        try:
            connection = pool.get_connection()
            try:
                connection.send_packed_command([command])  # type: ignore[no-untyped-call]
                connection.read_response()
            except BaseException:
                connection.disconnect()  # type: ignore[no-untyped-call]  # a reply may be on its way
                raise
            finally:
                pool.release(connection)
        except redis.RedisError as exc:
            raise _unavailable(self.settings, exc) from exc

    def realise(
        self, project: str, windows: WindowBatch, horizons: Sequence[int], target: str
    ) -> list[Realised]:
        """Errors of the waiting forecasts whose target hour is observed now."""
        try:
            return realise(self.client, project, windows, horizons, target)
        except redis.RedisError as exc:
            raise _unavailable(self.settings, exc) from exc

    def remember(self, records: Sequence[ForecastRecord]) -> None:
        try:
            remember(self.client, records)
        except redis.RedisError as exc:
            raise _unavailable(self.settings, exc) from exc

    def read(self, project: str, series: str, horizons: Sequence[int]) -> list[bytes | None]:
        try:
            values = self.client.mget([forecast_key(project, series, h) for h in horizons])
        except redis.RedisError as exc:
            raise _unavailable(self.settings, exc) from exc
        return [_bytes(v) for v in values]

    def close(self) -> None:
        self.client.close()


def lean_client(settings: ForecastSettings) -> RespClient | None:
    """The hot path's own client for a plain `redis://` URL (serving.forecast_resp)."""
    target = lean_target(settings.redis_url)
    if target is None:
        return None
    host, port, db, username = target
    in_url = urlsplit(settings.redis_url).password
    password = settings.redis_password or (unquote(in_url) if in_url else None)
    return RespClient(host, port, password, db, settings.redis_timeout_s, username)


class AsyncForecastCache:
    """The read endpoint's side, on the server's event loop: the forecast reads (GET,
    MGET) through the lean client where the URL allows, the rest through redis.asyncio."""

    def __init__(self, settings: ForecastSettings) -> None:
        self.settings = settings
        self.client = aioredis.Redis.from_url(
            settings.redis_url,
            password=settings.redis_password,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
        )
        self.lean = lean_client(settings)

    async def get(self, key: str) -> bytes | None:
        try:
            if self.lean is not None:
                return await self.lean.get(key)
            value = await self.client.get(key)
        except (redis.RedisError, RespError) as exc:
            raise _unavailable(self.settings, exc) from exc
        return _bytes(value)

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        try:
            if self.lean is not None:
                return await self.lean.mget(list(keys))
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
        if self.lean is not None:
            self.lean.close()
        await self.client.aclose()
