"""What serving has concluded about versions: refused ones, and folders that passed a trial.

A refused version (digests do not match, the trial load crashed or failed, the smoke
prediction failed) is marked so that the next load of it, from the API, a restart or the
reconciler, answers 422 at once instead of downloading and crashing a trial again. With a
registry cache the marks persist in `<cache>/<project>/refused/<version>.json`; delete the
file to let serving try the version again. Only verdicts on the version's bytes are
marked; an unreachable MLflow is never one.

A folder whose files passed a trial load is trusted while its files keep the same
digests: `.trusted` in the folder holds the digest of its digests. A restart from the
cache then loads in process at once, without a second trial.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from castml import model_digests

TRUSTED_MARKER = ".trusted"
REFUSED_DIR = "refused"


def fingerprint(digests: dict[str, str]) -> str:
    return hashlib.sha256(model_digests.encode(digests).encode()).hexdigest()


class Verdicts:
    """Refusal marks (on disk under `root`, or in memory when `root` is None)."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._refused: dict[str, str] = {}

    def refused(self, version: str) -> str | None:
        if version in self._refused:
            return self._refused[version]
        if self.root is None:
            return None
        try:
            record = json.loads((self.root / REFUSED_DIR / f"{version}.json").read_text())
        except (OSError, ValueError):
            return None
        reason = record.get("reason") if isinstance(record, dict) else None
        return str(reason) if reason else None

    def refuse(self, version: str, reason: str) -> None:
        self._refused[version] = reason
        if self.root is None:
            return
        folder = self.root / REFUSED_DIR
        try:
            folder.mkdir(parents=True, exist_ok=True)
            staging = folder / f".{version}.{os.getpid()}.json"
            staging.write_text(json.dumps({"version": version, "reason": reason}))
            staging.replace(folder / f"{version}.json")
        except OSError:  # a read-only cache still refuses in memory
            pass


def trusted(folder: Path, digests: dict[str, str]) -> bool:
    marker = folder / TRUSTED_MARKER
    try:
        return marker.read_text().strip() == fingerprint(digests)
    except OSError:
        return False


def trust(folder: Path, digests: dict[str, str]) -> None:
    with contextlib.suppress(OSError):  # a read-only store: the next start trial-loads again
        (folder / TRUSTED_MARKER).write_text(fingerprint(digests))
