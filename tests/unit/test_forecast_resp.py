"""The read endpoint's lean Redis client (serving.forecast_resp) on a real redis-server:
GET and MGET, pipelined commands answered in order, replies split across reads, and every
failure (wrong password, server gone, an error reply) as `RespError`, never a hang."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from serving.forecast_resp import (
    RespClient,
    RespError,
    RespLink,
    command_bytes,
    lean_target,
    parse_reply,
)
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


def test_the_jobs_link_sends_many_commands_and_checks_their_replies(tmp_path: Path) -> None:
    """RespLink: a transaction answered as expected is not parsed; anything else is, and
    its first error is raised with the connection still in step."""
    from serving.forecast_cache import transaction

    with redis_server(tmp_path / "redis") as server:
        link = RespLink(server.host, server.port, server.password, timeout_s=2)
        sets = [command_bytes(b"SET", b"k%d" % i, b"v" * i) for i in range(300)]
        payload, expect = transaction(sets, len(sets))
        assert link.request(payload, len(sets) + 2, expect) == []
        assert client_of(server).get("k299") == b"v" * 299
        # Replies other than expected (here: told to expect another count) are parsed.
        wrong_expect = transaction(sets[:2], 3)[1]
        replies = link.request(transaction(sets[:2], 2)[0], 4, wrong_expect)
        assert replies[-1] == [b"OK", b"OK"]
        # A command refused while queued: the whole transaction is refused, nothing written.
        bad = [command_bytes(b"SET", b"k0", b"new"), command_bytes(b"NOSUCHCOMMAND")]
        payload, expect = transaction(bad, 2)
        with pytest.raises(RespError, match="unknown command"):
            link.request(payload, 4, expect)
        assert client_of(server).get("k0") == b""
        # A command that fails when run (INCR of text): an error value inside EXEC's reply.
        payload, expect = transaction([command_bytes(b"INCR", b"k5")], 1)
        with pytest.raises(RespError, match="not an integer"):
            link.request(payload, 3, expect)
        assert link.request(command_bytes(b"GET", b"k3"), 1) == [b"vvv"]  # still in step

        wrong = RespLink(server.host, server.port, "wrong", timeout_s=2)
        with pytest.raises(RespError, match="refused the connection"):
            wrong.request(command_bytes(b"PING"), 1)
        server.stop()
        with pytest.raises(RespError):
            link.request(command_bytes(b"PING"), 1)
        with pytest.raises(RespError, match="cannot connect"):
            link.request(command_bytes(b"PING"), 1)
        link.close()


def test_replies_read_later_and_a_send_whose_replies_were_never_read(tmp_path: Path) -> None:
    """RespLink.send/receive: the job scores between them; a run that fails between the
    two leaves replies unread, and the next send starts a fresh connection in step."""
    with redis_server(tmp_path / "redis") as server:
        client_of(server).set("k", b"v")
        link = RespLink(server.host, server.port, server.password, timeout_s=2)
        link.send(command_bytes(b"GET", b"k"))
        assert link.receive(1) == [b"v"]
        link.send(command_bytes(b"PING"))  # never read
        link.send(command_bytes(b"GET", b"k"))
        assert link.receive(1) == [b"v"]
        with pytest.raises(RespError, match="no commands"):
            link.receive(1)
        assert link.request(command_bytes(b"PING"), 1, b"+PONG\r\n") == []
        link.close()
