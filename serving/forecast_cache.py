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

import redis
import redis.asyncio as aioredis

from castml.protocol.forecast_record import (
    ForecastRecord,
    ForecastRun,
    error_key,
    forecast_key,
    run_key,
)
from castml.web.errors import UnavailableError
from serving.forecast_history import Window
from serving.forecast_realised import Realised, error_sums, realise, remember
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


# KEYS: the records' keys, then the run summary's; ARGV: their values, then the TTL.
_WRITE_SCRIPT = """
local n = #KEYS
for i = 1, n - 1 do
  redis.call('SET', KEYS[i], ARGV[i], 'EX', ARGV[n + 1])
end
redis.call('SET', KEYS[n], ARGV[n])
return n
"""


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

    def write(self, records: Sequence[ForecastRecord], run: ForecastRun) -> None:
        """Every record (with its TTL) and the run summary, atomically: one script call.

        A Lua script runs atomically on the server like MULTI/EXEC, in one round trip with
        one reply; MULTI/EXEC queued one reply per key (a third of a run's time at 800
        keys, measured with `make bench`).
        """
        keys = [r.key for r in records] + [run_key(run.project)]
        values = [r.encode() for r in records] + [run.encode()]
        ttl = records[0].ttl_s if records else 1
        try:
            self.client.eval(_WRITE_SCRIPT, len(keys), *keys, *values, ttl)
        except redis.RedisError as exc:
            raise _unavailable(self.settings, exc) from exc

    def realise(
        self, project: str, windows: Sequence[Window], horizons: Sequence[int], target: str
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


class AsyncForecastCache:
    """The read endpoint's side: redis.asyncio on the server's event loop."""

    def __init__(self, settings: ForecastSettings) -> None:
        self.settings = settings
        self.client = aioredis.Redis.from_url(
            settings.redis_url,
            password=settings.redis_password,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
        )

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self.client.get(key)
        except redis.RedisError as exc:
            raise _unavailable(self.settings, exc) from exc
        return _bytes(value)

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        try:
            values = await self.client.mget(list(keys))
        except redis.RedisError as exc:
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
        await self.client.aclose()
