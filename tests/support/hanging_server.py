"""A real HTTP server on 127.0.0.1 that hangs: it reads each request and, for the first
`hang_first` of them (all of them by default), never answers; later ones it forwards to
`upstream` (a real server) and relays the answer. It counts what it received, so a test
can see a client's timeout and retry from the server's side.
"""

from __future__ import annotations

import socketserver

import httpx

from tests.support.background_server import BackgroundServer

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True  # a hung handler must not keep the test process alive
    allow_reuse_address = True


class HangingServer(BackgroundServer):
    def __init__(self, upstream: str | None = None, hang_first: int | None = None) -> None:
        super().__init__()
        self.upstream, self.hang_first = upstream, hang_first
        self.received: list[str] = []  # request lines, in arrival order
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                outer._handle(self)

        self._serve(_Server(("127.0.0.1", self.port), Handler))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _handle(self, handler: socketserver.StreamRequestHandler) -> None:
        request_line = handler.rfile.readline().decode("latin-1").strip()
        if not request_line:
            return
        headers: dict[str, str] = {}
        while True:
            line = handler.rfile.readline().decode("latin-1")
            if line in ("\r\n", "\n", ""):
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = handler.rfile.read(int(headers.get("content-length", "0") or 0))
        with self._lock:
            self.received.append(request_line)
            number = len(self.received)
        if self.upstream is None or self.hang_first is None or number <= self.hang_first:
            self.release.wait()  # hang until the test ends
            return
        method, path, _ = request_line.split(" ", 2)
        forwarded = {k: v for k, v in headers.items() if k not in HOP_HEADERS}
        answer = httpx.request(
            method, self.upstream + path, content=body, headers=forwarded, timeout=60
        )
        head = [f"HTTP/1.1 {answer.status_code} {answer.reason_phrase}"]
        head += [f"{k}: {v}" for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS]
        head += [f"content-length: {len(answer.content)}", "connection: close", "", ""]
        handler.wfile.write("\r\n".join(head).encode("latin-1") + answer.content)
