"""Where an acknowledged record goes when it still cannot be written to Parquet.

Ingest validation refuses what the writer could not write, so this store should stay
empty. It is the guarantee that one record never stops the writer (issue 10 §1): a
record a write fails on for any reason other than storage (a bug, a record replayed from
an older collector's WAL) is appended here with its error, counted in
`castml_collector_events_deadlettered_total`, and the flush goes on.

One JSON line per record: `{"key", "error", "at", "record"}`, where `record` is the WAL
form (`castml.protocol.payload_record.encode`) or, for a WAL payload that did not even
decode, `raw_base64`. An operator can fix and re-post them; nothing reads them back.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from pathlib import Path

import orjson

from monitoring.wal import fsync_dir

FILE_NAME = "deadletter.jsonl"


class DeadLetters:
    """An append-only JSONL file, fsynced per batch (the WAL may then drop the records)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / FILE_NAME
        self._lock = threading.Lock()

    def append(self, entries: list[tuple[str, str, bytes]]) -> None:
        """(key, error, WAL payload) of each record; durable when this returns. Raises OSError."""
        now = time.time()
        lines = []
        for key, error, payload in entries:
            line: dict[str, object] = {"key": key, "error": error[:2000], "at": now}
            try:
                line["record"] = orjson.loads(payload)
            except orjson.JSONDecodeError:
                line["raw_base64"] = base64.b64encode(payload).decode()
            lines.append(orjson.dumps(line) + b"\n")
        with self._lock:
            created = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, b"".join(lines))
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                fsync_dir(self.path.parent)
