"""Stopping a child process the platform started (a server, Redis, a studio predictor)."""

from __future__ import annotations

import subprocess


def stop_child(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace_s`; a no-op once exited."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
