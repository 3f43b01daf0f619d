"""The floor: a raw ASGI app that reads the body and returns a fixed v2-shaped reply."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

REPLY = (
    b'{"model_name":"diecast","model_version":"1","outputs":'
    b'[{"name":"probability","datatype":"FP32","shape":[1],"data":[0.5]}]}'
)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(REPLY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": REPLY})


def start_floor(port: int) -> subprocess.Popen[bytes]:
    """This app under uvicorn with the servers' settings (uvloop, httptools, no access log)."""
    args = ["--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools"]
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench._asgi_floor:app", *args, "--log-level",
         "warning", "--no-access-log"],
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
