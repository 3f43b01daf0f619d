"""What `castml up` started, kept under `$CASTML_HOME/platform/`: pids, ports, logs, secrets.

Standard library only at import time: the CLI loads in every image (tests/unit/test_cli.py).

`state.json` says where each part is; `secrets.json` (mode 0600) holds the tokens the
parts share (collector ingest, retrain endpoint, MLflow webhook signature), so a second
`castml up` reuses them and the running parts keep trusting one another.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SECRET_NAMES = ("collector_token", "retrain_token", "webhook_secret")


@dataclass
class Part:
    """One running part: its process, where it answers, how to probe it, where it logs."""

    name: str
    pid: int
    url: str
    probe: str  # path answering 200 when the part is ready
    log: str
    marker: str  # a word of its command line: a reused pid is never taken for the part
    extra: dict[str, str] = field(default_factory=dict)  # e.g. the gRPC address

    def running(self) -> bool:
        return pid_matches(self.pid, self.marker)

    def healthy(self) -> bool:
        import httpx

        if not self.running():
            return False
        try:
            return httpx.get(self.url + self.probe, timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False


@dataclass
class PlatformState:
    project: str
    tracking_uri: str
    mlflow_started: bool  # False: external MLflow, or one this platform did not start
    parts: dict[str, Part] = field(default_factory=dict)
    webhook_id: str | None = None  # the project reconciler's MLflow webhook
    kb_webhook_id: str | None = None  # the knowledge base reconciler's, when it runs

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> PlatformState:
        data: dict[str, Any] = json.loads(raw)
        parts = {name: Part(**part) for name, part in data.pop("parts", {}).items()}
        return cls(**data, parts=parts)


@dataclass(frozen=True)
class PlatformDir:
    root: Path  # $CASTML_HOME/platform

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def load(self) -> PlatformState | None:
        if not self.state_file.exists():
            return None
        return PlatformState.from_json(self.state_file.read_bytes())

    def save(self, state: PlatformState) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_bytes(state.to_json())
        tmp.replace(self.state_file)

    def forget(self) -> None:
        self.state_file.unlink(missing_ok=True)

    def secrets(self) -> dict[str, str]:
        """The platform's shared tokens, made once and kept readable by the owner only."""
        if self.secrets_file.exists():
            kept: dict[str, str] = json.loads(self.secrets_file.read_bytes())
            if set(SECRET_NAMES) <= set(kept):
                return kept
        self.root.mkdir(parents=True, exist_ok=True)
        made = {name: secrets.token_urlsafe(24) for name in SECRET_NAMES}
        fd = os.open(self.secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(json.dumps(made, indent=2).encode())
        return made


def pid_matches(pid: int, marker: str) -> bool:
    """The pid is alive and its command line names `marker` (pids are reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        try:
            os.kill(pid, 0)  # no /proc (macOS): aliveness is all we can tell
        except (ProcessLookupError, PermissionError):
            return False
        return True
    return marker.encode() in cmdline


def stop_pid(pid: int, marker: str, timeout_s: float = 15.0) -> bool:
    """SIGTERM to the part's process group, SIGKILL after `timeout_s`; False if not running."""
    if not pid_matches(pid, marker):
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_matches(pid, marker) or _zombie(pid):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False
