"""One pinned version for every worker process of a predictor (`--workers > 1`).

uvicorn's workers are separate processes, each with its own `ModelSlot`; a load call
reaches only one of them. So the worker that takes the call, once the new version has
loaded and passed its smoke test, writes the version to a pin file in a folder the
parent process created for this server. Every worker follows that file (a `stat` per
poll) and writes back which version it serves; the load call answers once all live
workers serve the new version, or says how many do when the wait times out. A worker
that uvicorn restarts starts on the pinned version, not on a fresh alias lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from serving.model_slot import ModelSlot

log = logging.getLogger(__name__)

PIN_DIR_ENV = "CASTML_PIN_DIR"
WORKERS_ENV = "CASTML_WORKERS"
PIN_FILE = "pinned-version"
WORKER_PREFIX = "worker-"


@dataclass(frozen=True)
class Rollout:
    """How far a version has reached across the workers."""

    version: str
    serving: int
    workers: int

    @property
    def complete(self) -> bool:
        return self.serving >= self.workers


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class SharedPin:
    def __init__(self, directory: Path, workers: int, poll_s: float = 0.2) -> None:
        self.directory = directory
        self.workers = workers
        self.poll_s = poll_s
        self.path = directory / PIN_FILE
        self._mtime_ns = 0

    @classmethod
    def from_env(cls) -> SharedPin | None:
        from serving.settings import ServingSettings

        settings = ServingSettings()
        if settings.pin_dir is None:
            return None
        return cls(settings.pin_dir, settings.workers)

    def read(self) -> str | None:
        try:
            return self.path.read_text().strip() or None
        except FileNotFoundError:
            return None

    def pin(self, version: str) -> None:
        _write_atomically(self.path, version)

    def report(self, version: str) -> None:
        """Record the version this worker process serves."""
        _write_atomically(self.directory / f"{WORKER_PREFIX}{os.getpid()}", version)

    def rollout(self, version: str) -> Rollout:
        serving = 0
        for path in self.directory.glob(f"{WORKER_PREFIX}*"):
            pid = int(path.name.removeprefix(WORKER_PREFIX))
            if not _alive(pid):
                path.unlink(missing_ok=True)  # a worker uvicorn has replaced
                continue
            with contextlib.suppress(FileNotFoundError):
                serving += path.read_text().strip() == version
        return Rollout(version, serving, self.workers)

    async def wait(self, version: str, timeout_s: float) -> Rollout:
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.rollout(version)
            if state.complete or time.monotonic() >= deadline:
                return state
            await asyncio.sleep(self.poll_s / 2)

    def changed(self) -> bool:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return False
        if mtime == self._mtime_ns:
            return False
        self._mtime_ns = mtime
        return True

    async def follow(self, slot: ModelSlot) -> None:
        """Run for the worker's life: load whatever version another worker pins."""
        while True:
            await asyncio.sleep(self.poll_s)
            if not self.changed():
                continue
            version = self.read()
            if version is None or (slot.ready and slot.current.version == version):
                continue
            try:
                await slot.load(version)
            except Exception as exc:  # keep serving the old version; retry on the next poll
                self._mtime_ns = 0
                log.warning("worker %d: cannot switch to version %s: %s", os.getpid(), version, exc)
                continue
            self.report(version)
