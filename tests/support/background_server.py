"""A test server on a daemon thread for the length of a `with` block.

Handlers that hold a request (to make a client time out) wait on `release`, which is set
at exit, so that the shutdown never waits on them.
"""

from __future__ import annotations

import socketserver
import threading
from types import TracebackType
from typing import Self

from tests.support.ports import free_port


class BackgroundServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.release = threading.Event()
        self._lock = threading.Lock()

    def _serve(self, server: socketserver.BaseServer) -> None:
        """The server this object runs in the background (made by the subclass)."""
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
