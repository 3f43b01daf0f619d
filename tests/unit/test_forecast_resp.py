"""The read endpoint's lean Redis client (serving.forecast_resp) on a real redis-server:
GET and MGET, pipelined commands answered in order, replies split across reads, and every
failure (wrong password, server gone, an error reply) as `RespError`, never a hang."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from serving.forecast_resp import RespClient, RespError, lean_target, parse_reply
from tests.support.redis_server import client_of, redis_server


def test_replies_are_parsed_only_once_whole() -> None:
    reply = b"*3\r\n$3\r\nabc\r\n$-1\r\n:42\r\n"
    for cut in range(len(reply)):
        assert parse_reply(reply[:cut], 0) is None
    assert parse_reply(reply, 0) == ([b"abc", None, 42], len(reply))
    error, _ = parse_reply(b"-WRONGTYPE nope\r\n", 0) or (None, 0)
    assert isinstance(error, RespError) and "WRONGTYPE" in str(error)


def test_only_plain_redis_urls_are_spoken() -> None:
    assert lean_target("redis://127.0.0.1:6390/2") == ("127.0.0.1", 6390, 2, None)
    assert lean_target("redis://user:pw@cache:6379") == ("cache", 6379, 0, "user")
    assert lean_target("rediss://cache:6379") is None
    assert lean_target("unix:///tmp/redis.sock") is None


def test_get_and_mget_on_a_real_server_and_its_failures(tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as server:
        client_of(server).mset({"a": b"1" * 70_000, "b": b"\r\n-x"})

        async def run() -> None:
            client = RespClient(server.host, server.port, server.password, timeout_s=2)
            # Concurrent commands share the connection; each gets its own reply.
            got = await asyncio.gather(
                client.get("a"), client.mget(["b", "none", "a"]), client.get("none")
            )
            assert list(got) == [b"1" * 70_000, [b"\r\n-x", None, b"1" * 70_000], None]
            with pytest.raises(RespError, match="Redis answered an error"):
                await client.command(b"NOSUCHCOMMAND")
            assert await client.get("b") == b"\r\n-x"  # the connection is still in step

            wrong = RespClient(server.host, server.port, "wrong", timeout_s=2)
            with pytest.raises(RespError):
                await wrong.get("a")
            wrong.close()

            server.stop()
            with pytest.raises(RespError):
                await client.get("a")
            with pytest.raises(RespError, match="cannot connect"):
                await client.get("a")  # and the next one does not hang either
            client.close()

        asyncio.run(run())
