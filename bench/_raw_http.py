"""A raw-socket HTTP/1.1 client for the latency benches.

Pre-built request bytes over one keep-alive connection with TCP_NODELAY: a p50 measured
this way is the server's, not an HTTP client library's (httpx adds a few hundred
microseconds a request on these cores, more than some endpoints take).
"""

from __future__ import annotations

import socket
import time


def request_bytes(method: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nhost: bench\r\n"
    if body:
        head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def connect_when_up(port: int, timeout_s: float = 30.0) -> socket.socket:
    """A keep-alive connection to 127.0.0.1:`port`, retried until the server listens."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port))
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send one request, read its whole response; the body (a non-200 raises)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    if not head.startswith(b"HTTP/1.1 200"):
        answer = (head + b" " + body[:300]).decode(errors="replace")
        raise RuntimeError(answer)
    return body
