"""The transformer's lean HTTP/1.1 client against small asyncio servers on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from serving.http_client import LeanHttpClient, UpstreamUnavailableError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[str, bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return head.split("\r\n")[0], await reader.readexactly(length)


def reply(body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


async def serve(handler: Handler, body: Callable[[LeanHttpClient], Awaitable[None]]) -> None:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = LeanHttpClient(f"http://127.0.0.1:{port}", timeout_s=2.0)
    try:
        await body(client)
    finally:
        await client.close()
        server.close()
        await server.wait_closed()


def test_keeps_the_connection_alive_and_frames_by_content_length() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                line, body = await read_request(reader)
            except asyncio.IncompleteReadError:
                break
            writer.write(reply(line.encode() + b"|" + body))
        writer.close()

    async def body(client: LeanHttpClient) -> None:
        for i in range(5):
            response = await client.request("POST", f"/x/{i}", b'{"a":1}', "application/json")
            assert response.status == 200
            assert response.body == f"POST /x/{i} HTTP/1.1|".encode() + b'{"a":1}'
        assert connections == 1

    asyncio.run(serve(handler, body))


def test_a_connection_closed_while_idle_is_replaced() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply(b"ok"))  # then close: the pooled connection goes stale
        await writer.drain()
        writer.close()

    async def body(client: LeanHttpClient) -> None:
        for _ in range(3):
            response = await client.request("GET", "/")
            assert response.body == b"ok"
            await asyncio.sleep(0.05)

    asyncio.run(serve(handler, body))


def test_decodes_a_chunked_reply() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
        writer.close()

    async def body(client: LeanHttpClient) -> None:
        response = await client.request("GET", "/")
        assert (response.status, response.body) == (404, b"hello world")

    asyncio.run(serve(handler, body))


def test_unreachable_silent_and_malformed_upstreams_are_errors() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-nope\r\n\r\n")
        writer.close()

    async def times_out(client: LeanHttpClient) -> None:
        client.timeout_s = 0.2
        with pytest.raises(UpstreamUnavailableError, match="no answer"):
            await client.request("GET", "/")

    async def malformed(client: LeanHttpClient) -> None:
        with pytest.raises(UpstreamUnavailableError, match="not an HTTP"):
            await client.request("GET", "/")

    async def refused() -> None:
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        with pytest.raises(UpstreamUnavailableError, match="cannot connect"):
            await LeanHttpClient(f"http://127.0.0.1:{port}", 1.0).request("GET", "/")

    asyncio.run(serve(silent, times_out))
    asyncio.run(serve(garbage, malformed))
    asyncio.run(refused())
