"""The read endpoint's local copies (serving.forecast_local) on a real redis-server: a key
read once is answered from memory (Redis counts no second GET), and every change Redis
reports (a write, an expiry, a flush) is seen by the next read; a closed invalidation
connection drops every copy; a Redis that refuses tracking still answers every read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis

from serving.forecast_local import LocalReads
from serving.forecast_resp import RespClient
from tests.support.redis_server import client_of, redis_server


def gets(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0)) + int(
        stats.get("cmdstat_mget", {}).get("calls", 0)
    )


async def until(read: Callable[[], Awaitable[object]], wanted: object) -> object:
    """Reads until `wanted` comes back (a report travels a socket), at most 2 s."""
    deadline = time.monotonic() + 2
    got = await read()
    while got != wanted and time.monotonic() < deadline:
        await asyncio.sleep(0.001)
        got = await read()
    return got


def test_copies_are_served_from_memory_until_redis_reports_a_change(tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as server:
        writer = client_of(server)
        writer.set("a", b"1")
        writer.set("b", b"2")

        async def scenario() -> None:
            reads = LocalReads(RespClient(server.host, server.port, server.password, timeout_s=2))
            assert await reads.get("a") == b"1"
            writer.config_resetstat()
            for _ in range(5):
                assert await reads.get("a") == b"1"
            assert gets(writer) == 0  # answered from memory

            writer.set("a", b"one")  # a write
            assert await until(lambda: reads.get("a"), b"one") == b"one"
            assert await reads.mget(["a", "b", "none"]) == [b"one", b"2", None]
            writer.config_resetstat()
            assert await reads.mget(["a", "b"]) == [b"one", b"2"]
            assert gets(writer) == 0

            writer.pexpire("b", 30)  # an expiry
            assert await until(lambda: reads.get("b"), None) is None
            writer.set("c", b"3")
            assert await reads.get("c") == b"3"
            writer.flushall()  # a flush reports every key at once
            assert await until(lambda: reads.get("c"), None) is None

            # The invalidation connection closed: every copy is dropped, tracking set up
            # again, and a later write is reported on the new connection.
            writer.set("a", b"x")
            assert await until(lambda: reads.get("a"), b"x") == b"x"
            writer.client_kill_filter(_type="pubsub")
            writer.set("a", b"y")
            assert await until(lambda: reads.get("a"), b"y") == b"y"
            writer.set("a", b"z")
            assert await until(lambda: reads.get("a"), b"z") == b"z"
            # So does the reading connection's: Redis forgot what it read.
            writer.client_kill_filter(_type="normal", skipme=True)
            writer.set("a", b"w")
            assert await until(lambda: reads.get("a"), b"w") == b"w"
            reads.close()
            reads.client.close()

        asyncio.run(scenario())


def test_a_redis_that_refuses_tracking_answers_every_read_itself(tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as server:
        admin = client_of(server)
        admin.acl_setuser(
            "reader", enabled=True, passwords=["+pw"], keys=["*"], commands=["+get", "+mget"]
        )
        admin.set("a", b"1")

        async def scenario() -> None:
            client = RespClient(server.host, server.port, "pw", timeout_s=2, username="reader")
            reads = LocalReads(client)
            assert await reads.get("a") == b"1" and reads.enabled is False
            admin.set("a", b"2")
            assert await reads.get("a") == b"2"  # no copy: read from Redis at once
            reads.close()
            client.close()

        asyncio.run(scenario())
