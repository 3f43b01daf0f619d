"""Read a time window of logged traffic (and its delayed labels), or of a forecast
project's observations, back from Parquet."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from castml.errors import CastmlError
from castml.protocol.forecast_record import OBSERVATIONS_DIR, RECEIVED_COLUMN, SERIES_COLUMN
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


def latest_observation(logs_root: Path, project: str, time_column: str) -> datetime | None:
    """The newest observation time of a forecast project (its latest partition's)."""
    directory = logs_root / project / OBSERVATIONS_DIR
    days = sorted(directory.glob("date=*")) if directory.is_dir() else []
    for part in reversed(days):
        frame = _read(sorted(p for p in part.glob("*.parquet") if not p.name.startswith(".")))
        if frame is not None and len(frame):
            newest: datetime = pd.Timestamp(frame[time_column].max()).to_pydatetime()
            return newest
    return None


def read_observations(
    logs_root: Path, project: str, time_column: str, window: Window
) -> pd.DataFrame:
    """A forecast project's observations whose own time falls in the window: the last one
    received of each (series, time), as the forecast job reads them (possibly empty)."""
    frame = _read(partition_files(logs_root / project / OBSERVATIONS_DIR, window))
    if frame is None:
        return pd.DataFrame()
    times = frame[time_column]
    frame = frame[(times >= window.start) & (times < window.end)]
    frame = frame.sort_values(RECEIVED_COLUMN).drop_duplicates(
        [SERIES_COLUMN, time_column], keep="last"
    )
    return frame.sort_values(time_column).reset_index(drop=True)
