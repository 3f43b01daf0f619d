"""Rows of joined events -> Parquet files placed atomically (temp file, fsync, rename).

Readers (the drift job, pyarrow datasets) skip names that start with "." so a
half-written temp file is never read, and a crash leaves no corrupt `.parquet`.
"""

from __future__ import annotations

import os
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from castml.errors import CastmlError
from castml.protocol.payload_record import LoggedFeatures, check_project, check_version
from monitoring.wal import WriteAheadLog, fsync_dir

FEEDBACK_DIR = "feedback"
ORPHANS_DIR = "orphans"
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")
META_COLUMNS = ("inference_service", "namespace", "endpoint", "component")


def inference_schema(features: LoggedFeatures) -> pa.Schema:
    """One row per instance of a request; outputs are null on a request orphan. A text
    feature (categorical, datetime) is a string column, every other a float32 one."""
    ts = pa.timestamp("ms", tz="UTC")
    return pa.schema(
        [pa.field("request_id", pa.string(), nullable=False), pa.field("row", pa.int32())]
        + [
            pa.field(name, pa.string() if name in features.text else pa.float32())
            for name in features.names
        ]
        + [
            pa.field("probability", pa.float32()),
            pa.field("label", pa.int64()),
            pa.field("model_name", pa.string()),
            pa.field("model_version", pa.string()),
            pa.field("request_time", ts),
            pa.field("response_time", ts),
            pa.field("logged_at", ts),
        ]
        + [pa.field(name, pa.string()) for name in META_COLUMNS]
    )


FEEDBACK_SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("label", pa.float64()),
        pa.field("observed_at", pa.timestamp("ms", tz="UTC")),
        pa.field("received_at", pa.timestamp("ms", tz="UTC")),
        pa.field("known_request", pa.bool_()),
    ]
)


class PathEscapeError(CastmlError):
    """A partition that would lie outside the logs root: never written (issue 10 §3)."""


def partition(project: str, group: str, day: str) -> str:
    """`<project>/<version|feedback|orphans>/date=YYYY-MM-DD` (DESIGN.md §4).

    The names came from requests: each must be a plain name (checked again here, not only
    at ingest, so that a record replayed from an older collector's WAL is held to it too).
    """
    check_project(project)
    if group not in (FEEDBACK_DIR, ORPHANS_DIR):
        check_version(group)
    if not _DAY.match(day):
        raise PathEscapeError(f"partition day {day!r} is not YYYY-MM-DD")
    return f"{project}/{group}/date={day}"


def inside(logs_root: Path, rel_dir: str) -> Path:
    """`logs_root / rel_dir`, resolved, or PathEscapeError if that lies outside the root."""
    root = logs_root.resolve()
    directory = (root / rel_dir).resolve()
    if directory == root or not directory.is_relative_to(root):
        raise PathEscapeError(f"partition {rel_dir!r} lies outside the logs folder")
    return directory


def day_of(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d")


def write_atomically(
    logs_root: Path,
    rel_dir: str,
    columns: dict[str, list[Any]],
    schema: pa.Schema,
    wal: WriteAheadLog,
    keys: list[str],
) -> str:
    """Write one file; returns its path relative to `logs_root`. Raises OSError."""
    table = pa.Table.from_pydict(columns, schema=schema)
    directory = inside(logs_root, rel_dir)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"part-{uuid.uuid4().hex}.parquet"
    relative = f"{rel_dir}/{name}"
    tmp = directory / f".{name}.tmp"
    wal.record_commit(relative, keys)
    try:
        pq.write_table(table, tmp, compression="zstd")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, directory / name)
        fsync_dir(directory)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return relative


def remove_temp_files(logs_root: Path) -> int:
    """Delete temp files a crash left behind; their keys are still in the WAL."""
    count = 0
    if logs_root.exists():
        for path in logs_root.rglob(".part-*.tmp"):
            path.unlink(missing_ok=True)
            count += 1
    return count
