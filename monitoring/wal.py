"""Append-only write-ahead log: an event is fsynced here before the collector acks it.

Frames are `<length:u32><crc32:u32><payload>`, so a torn tail left by kill -9 or a
full disk is detected on recovery and cut off; everything before it was acked
only after its fsync returned, so nothing acknowledged sits in a torn frame.

Which records already reached Parquet is kept in `commits.log`: before a Parquet
file is renamed into place, an intent line naming the file and the keys it holds
is fsynced. On recovery a key counts as written only if its file exists, which
makes the WAL-to-Parquet hand-off exactly-once across crashes.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import orjson

_HEADER = struct.Struct("<II")
_SEGMENT_GLOB = "segment-*.wal"


def fsync_dir(path: Path) -> None:
    """Make a rename or create in `path` durable (POSIX needs the directory fsynced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _segment_number(path: Path) -> int:
    return int(path.stem.split("-")[1])


def read_frames(path: Path) -> tuple[list[bytes], int]:
    """Intact payloads of a segment and the byte offset where the intact part ends."""
    data = path.read_bytes()
    payloads: list[bytes] = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        end = start + length
        if end > len(data) or zlib.crc32(data[start:end]) != crc:
            break
        payloads.append(data[start:end])
        offset = end
    return payloads, offset


class WriteAheadLog:
    """Numbered segments; the active one takes appends, older ones wait to be released."""

    def __init__(self, directory: Path, segment_bytes: int = 8 << 20) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self.commits_path = directory / "commits.log"
        existing = sorted(directory.glob(_SEGMENT_GLOB), key=_segment_number)
        self._next = (_segment_number(existing[-1]) + 1) if existing else 1
        self._fd: int | None = None
        self.active = 0
        self._size = 0
        self._good_size = 0  # end of the last frame known durable: where a failed write is cut back
        # record_commit and compact run on different worker threads; both touch commits.log.
        self._commits_lock = threading.Lock()

    # --- recovery -------------------------------------------------------------------
    def recover(self) -> Iterator[tuple[int, bytes]]:
        """(segment, payload) of every intact record left by earlier runs, oldest first.

        A torn tail is truncated so that the segment can later be read cleanly again.
        """
        for path in sorted(self.directory.glob(_SEGMENT_GLOB), key=_segment_number):
            payloads, good = read_frames(path)
            if good < path.stat().st_size:
                os.truncate(path, good)
            number = _segment_number(path)
            for payload in payloads:
                yield number, payload

    def committed(self, logs_root: Path) -> set[str]:
        """Keys whose Parquet file is in place (see the module doc)."""
        keys: set[str] = set()
        if not self.commits_path.exists():
            return keys
        for line in self.commits_path.read_bytes().splitlines():
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a torn last line: its file was never renamed into place
            if (logs_root / entry["file"]).exists():
                keys.update(entry["keys"])
        return keys

    @property
    def next_segment(self) -> int:
        """The number the next new segment will get: above every existing one."""
        return self._next

    # --- appends --------------------------------------------------------------------
    def _open_new(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self.active = self._next
        self._next += 1
        path = self.directory / f"segment-{self.active:08d}.wal"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fsync_dir(self.directory)
        self._size = self._good_size = 0

    def append(self, payloads: list[bytes]) -> int:
        """Write and fsync a group of records; returns their segment. Raises OSError.

        On failure the segment is cut back to its last durable frame, so that a
        later successful append does not sit behind garbage.
        """
        if self._fd is None or self._size >= self.segment_bytes:
            self._open_new()
        assert self._fd is not None
        blob = b"".join(_HEADER.pack(len(p), zlib.crc32(p)) + p for p in payloads)
        try:
            written = 0
            while written < len(blob):
                written += os.write(self._fd, blob[written:])
            os.fsync(self._fd)
        except OSError:
            try:
                os.ftruncate(self._fd, self._good_size)
            finally:
                self._size = self._good_size
            raise
        self._size += len(blob)
        self._good_size = self._size
        return self.active

    def record_commit(self, relative_file: str, keys: list[str]) -> None:
        """Fsync the intent to place `relative_file` holding `keys` (before its rename)."""
        line = orjson.dumps({"file": relative_file, "keys": keys}) + b"\n"
        with self._commits_lock:
            fd = os.open(self.commits_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def release(self, segment: int, live_keys: set[str]) -> None:
        """Delete a fully written segment and drop commit lines no live segment needs."""
        if segment == self.active:
            return
        (self.directory / f"segment-{segment:08d}.wal").unlink(missing_ok=True)
        self.compact(live_keys)

    def compact(self, live_keys: set[str]) -> None:
        with self._commits_lock:
            self._compact(live_keys)

    def _compact(self, live_keys: set[str]) -> None:
        if not self.commits_path.exists():
            return
        kept: list[bytes] = []
        for line in self.commits_path.read_bytes().splitlines():
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            keys = [k for k in entry["keys"] if k in live_keys]
            if keys:
                kept.append(orjson.dumps({"file": entry["file"], "keys": keys}))
        tmp = self.commits_path.with_suffix(".tmp")
        tmp.write_bytes(b"".join(line + b"\n" for line in kept))
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, self.commits_path)
        fsync_dir(self.directory)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
