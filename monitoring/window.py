"""Read a time window of logged traffic (and its delayed labels) back from Parquet."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from castml.errors import CastmlError
from monitoring.parquet_sink import FEEDBACK_DIR

_WINDOW = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class WindowError(CastmlError):
    """A window that is not like 30m, 12h, 1d or 2w."""


def parse_window(text: str) -> timedelta:
    match = _WINDOW.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise WindowError(f"window '{text}' is not like 30m, 12h, 1d or 2w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @classmethod
    def ending(cls, length: timedelta, end: datetime | None = None) -> Window:
        end = end or datetime.now(UTC)
        return cls(end - length, end)


def partition_files(directory: Path, window: Window) -> list[Path]:
    """Files of the `date=YYYY-MM-DD` partitions that can hold rows of `window`."""
    if not directory.is_dir():
        return []
    first, last = window.start.date().isoformat(), window.end.date().isoformat()
    files: list[Path] = []
    for part in sorted(directory.glob("date=*")):
        day = part.name.removeprefix("date=")
        if first <= day <= last:
            files.extend(sorted(p for p in part.glob("*.parquet") if not p.name.startswith(".")))
    return files


def _read(files: list[Path]) -> pd.DataFrame | None:
    if not files:
        return None
    return pa.concat_tables(
        [pq.read_table(f) for f in files], promote_options="default"
    ).to_pandas()


def read_traffic(logs_root: Path, project: str, version: str, window: Window) -> pd.DataFrame:
    """Rows served by `version` whose request time falls in the window (possibly empty).

    Payloads are logged once, at the predictor (DESIGN.md §4), so every row is one shot.
    """
    frame = _read(partition_files(logs_root / project / version, window))
    if frame is None:
        return pd.DataFrame()
    times = frame["request_time"]
    keep = (times >= window.start) & (times < window.end)
    return frame[keep].reset_index(drop=True)


def read_labels(logs_root: Path, project: str, window: Window) -> pd.DataFrame:
    """The latest label per request id, from feedback received since the window began.

    Labels arrive after the request, so any feedback partition from the window's
    first day on can hold labels for it.
    """
    later = Window(window.start, datetime.max.replace(tzinfo=UTC))
    frame = _read(partition_files(logs_root / project / FEEDBACK_DIR, later))
    if frame is None:
        return pd.DataFrame(columns=["request_id", "label"])
    frame = frame.sort_values("received_at").drop_duplicates("request_id", keep="last")
    return frame[["request_id", "label"]].reset_index(drop=True)
