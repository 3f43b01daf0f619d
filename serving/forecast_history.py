"""Recent observations (the collector's Parquet) -> one history window per series, in numpy.

The layout is the contract of `castml.protocol.forecast_record`: partitions
`logs/<project>/observations/date=YYYY-MM-DD/` by the observations' own day. Only the
latest `lookback_days` partitions are read. A (series, time) sent twice keeps the row
received last. A window is the `rows` hours that end at the series' last observed hour;
one with a missing hour, or too few hours, is not scored: its series is skipped with a
reason (issue 14 §5), never filled in silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from castml.protocol.forecast_record import (
    OBSERVATIONS_DIR,
    RECEIVED_COLUMN,
    SERIES_COLUMN,
    check_series,
)

SKIP_GAP = "gap"
SKIP_SHORT = "too_short"
SKIP_INVALID = "invalid"  # the model refused the window for another reason
SKIP_REASONS = (SKIP_GAP, SKIP_SHORT, SKIP_INVALID)


@dataclass(frozen=True)
class Window:
    """One series' history: `columns[name]` arrays of `rows` values, oldest first."""

    series: str
    end_ms: int  # the last observed hour, epoch milliseconds
    columns: dict[str, np.ndarray]


@dataclass(frozen=True)
class Skipped:
    series: str
    reason: str  # one of SKIP_REASONS
    detail: str


def partition_files(logs_root: Path, project: str, lookback_days: int) -> list[Path]:
    """Parquet files of the latest `lookback_days` days that hold observations."""
    base = logs_root / project / OBSERVATIONS_DIR
    if not base.is_dir():
        return []
    days = sorted(p for p in base.glob("date=*") if p.is_dir())
    if not days:
        return []
    last = date.fromisoformat(days[-1].name.removeprefix("date="))
    first = (last - timedelta(days=lookback_days - 1)).isoformat()
    return [
        f
        for part in days
        if part.name.removeprefix("date=") >= first
        for f in sorted(part.glob("*.parquet"))
        if not f.name.startswith(".")
    ]


def read_observations(files: list[Path], columns: list[str]) -> pa.Table:
    """The files' rows, one per (series, time), the last received kept; sorted by both."""
    time_column = columns[0]
    wanted = [SERIES_COLUMN, *columns, RECEIVED_COLUMN]
    # One dataset read: pyarrow reads the files on its threads (one read per file took
    # about 6 ms each, most of a run's reading).
    table = pq.read_table([str(f) for f in files], columns=wanted) if files else None
    if table is None or table.num_rows == 0:
        return pa.table({name: pa.array([], pa.float64()) for name in wanted})
    table = table.sort_by(
        [(SERIES_COLUMN, "ascending"), (time_column, "ascending"), (RECEIVED_COLUMN, "ascending")]
    )
    series = table.column(SERIES_COLUMN).to_numpy(zero_copy_only=False)
    times = pc.cast(table.column(time_column), pa.int64()).to_numpy()
    # The last row of each (series, time) run: the one received last.
    last = np.ones(len(times), dtype=bool)
    last[:-1] = (series[1:] != series[:-1]) | (times[1:] != times[:-1])
    return table.filter(pa.array(last))


def windows(
    table: pa.Table,
    columns: list[str],
    rows: int,
    freq_ms: int,
    only: set[str] | None = None,
    max_gap: int = 0,
) -> tuple[list[Window], list[Skipped]]:
    """The last `rows` hours of each series, or why a series has none.

    `max_gap`: the most missing hours in a row the model tolerates (its spec's `max_gap`).
    """
    time_column = columns[0]
    if table.num_rows == 0:
        return [], []
    series = table.column(SERIES_COLUMN).to_numpy(zero_copy_only=False)
    times = pc.cast(table.column(time_column), pa.int64()).to_numpy()
    values = {name: table.column(name).to_numpy(zero_copy_only=False) for name in columns[1:]}
    # Rows are sorted by series: each series is one contiguous run [start, stop).
    starts = np.flatnonzero(np.r_[True, series[1:] != series[:-1]])
    stops = np.r_[starts[1:], len(series)]
    found: list[Window] = []
    skipped: list[Skipped] = []
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        name = str(series[start])
        if only is not None and name not in only:
            continue
        check_series(name)
        end = int(times[stop - 1])
        first = end - (rows - 1) * freq_ms
        begin = start + int(np.searchsorted(times[start:stop], first))
        held = stop - begin
        if int(times[start]) > first:  # the series does not reach back far enough
            skipped.append(Skipped(name, SKIP_SHORT, f"{stop - start} of the {rows} hours needed"))
            continue
        if held < rows:  # hours missing: more in a row than the model tolerates is a gap
            edges = np.r_[first - freq_ms, times[begin:stop], end + freq_ms]
            steps = np.diff(edges) // freq_ms - 1
            widest = int(np.argmax(steps))
            if int(steps[widest]) > max_gap:
                after = np.datetime64(int(edges[widest]), "ms")
                skipped.append(
                    Skipped(
                        name,
                        SKIP_GAP,
                        f"{rows - held} of the last {rows} hours missing "
                        f"(widest gap {int(steps[widest])} h after {after}; "
                        f"{max_gap} tolerated)",
                    )
                )
                continue
        columns_of = {time_column: times[begin:stop].astype("datetime64[ms]")}
        columns_of.update(
            {k: np.asarray(v[begin:stop], dtype=np.float64) for k, v in values.items()}
        )
        found.append(Window(name, end, columns_of))
    if only is not None:
        seen = {w.series for w in found} | {s.series for s in skipped}
        skipped += [Skipped(name, SKIP_SHORT, "no observations") for name in sorted(only - seen)]
    return found, skipped
