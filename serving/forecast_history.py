"""Recent observations (the collector's Parquet) -> one history window per series, in numpy.

The layout is the contract of `castml.protocol.forecast_record`: partitions
`logs/<project>/observations/date=YYYY-MM-DD/` by the observations' own day. Of the
latest `lookback_days` partitions, only the days a window can reach are read, unless a
series reaches further back (`read_recent`). A (series, time) sent twice keeps the row
received last. A window is the `rows` hours that end at the series' last observed hour;
one with a missing hour, or too few hours, is not scored: its series is skipped with a
reason (issue 14 §5), never filled in silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
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
class WindowBatch:
    """Many series' windows on one grid each: `grid[name]` is `[S, rows]` (NaN where no row
    falls), `filled` says where a row is, `end_ms` is each series' last observed hour (the
    grid's last slot). What the job scores in one pass, with no per-series Python."""

    series: list[str]
    end_ms: npt.NDArray[np.int64]
    grid: dict[str, npt.NDArray[np.float64]]
    filled: npt.NDArray[np.bool_]
    step_ms: int
    time_column: str

    def __len__(self) -> int:
        return len(self.series)

    @property
    def start_ms(self) -> npt.NDArray[np.int64]:
        return np.asarray(self.end_ms - (self.filled.shape[1] - 1) * self.step_ms, np.int64)

    def window(self, i: int) -> Window:
        """Series `i` as a `Window` (its observed rows only, oldest first)."""
        held = self.filled[i]
        slots = np.flatnonzero(held)
        times = int(self.start_ms[i]) + slots * self.step_ms
        columns = {self.time_column: times.astype("datetime64[ms]")}
        columns.update({name: values[i][held] for name, values in self.grid.items()})
        return Window(self.series[i], int(self.end_ms[i]), columns)

    def windows(self) -> list[Window]:
        return [self.window(i) for i in range(len(self))]

    def subset(self, keep: npt.NDArray[np.intp]) -> WindowBatch:
        return WindowBatch(
            [self.series[i] for i in keep.tolist()],
            self.end_ms[keep],
            {name: values[keep] for name, values in self.grid.items()},
            self.filled[keep],
            self.step_ms,
            self.time_column,
        )


@dataclass(frozen=True)
class Observed:
    """Observation rows sorted by (series, time), one per pair: `names[codes]` is each row's
    series (`names` sorted), `times` epoch milliseconds, `values` float64 (NaN for null)."""

    names: npt.NDArray[np.str_]
    codes: npt.NDArray[np.intp]
    times: npt.NDArray[np.int64]
    values: dict[str, npt.NDArray[np.float64]]


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


def read_recent(
    logs_root: Path,
    project: str,
    lookback_days: int,
    columns: list[str],
    rows: int,
    freq_ms: int,
    only: set[str] | None = None,
) -> Observed:
    """What the windows need of the latest `lookback_days` partitions, as `read_columns`.

    A window of `rows` hours ending on the newest day starts at most `rows - 1` hours
    before that day's midnight, and a partition holds its own day's rows: only those days
    are read first (8 of a 30-day lookback for a week's window). Every partition is read
    only when what was read shows a series that may reach further back (its window starts
    before the first day read, it looks too short, a series asked for is not in it, or the
    older days' series names hold one it lacks), so the windows and the skips are those of
    reading everything.
    """
    files = partition_files(logs_root, project, lookback_days)
    if not files:
        return _empty(columns)
    newest = _day_of(files[-1])
    since = datetime.combine(newest, datetime.min.time(), UTC) - timedelta(
        milliseconds=(rows - 1) * freq_ms
    )
    recent = [f for f in files if _day_of(f) >= since.date()]
    if len(recent) == len(files):
        return read_columns(files, columns)
    observed = read_columns(recent, columns)
    since_ms = int(datetime.combine(since.date(), datetime.min.time(), UTC).timestamp() * 1000)
    older = files[: len(files) - len(recent)]
    if _reaches_back(observed, rows, freq_ms, since_ms, only) or _series_of(older) - set(
        observed.names.tolist()
    ):
        return read_columns(files, columns)
    return observed


def _series_of(files: list[Path]) -> set[str]:
    """The series names in `files`: their series column's dictionaries only (a fraction
    of a millisecond a file), to find a series seen only before the days read."""
    names: set[str] = set()
    for file in files:
        column = (
            pq.ParquetFile(file, read_dictionary=[SERIES_COLUMN])
            .read([SERIES_COLUMN], use_threads=False)
            .column(SERIES_COLUMN)
        )
        for chunk in column.chunks:
            names.update(chunk.dictionary.to_pylist())
    return names


def _day_of(file: Path) -> date:
    return date.fromisoformat(file.parent.name.removeprefix("date="))


def _reaches_back(
    observed: Observed, rows: int, freq_ms: int, since_ms: int, only: set[str] | None
) -> bool:
    """Whether older partitions could change a window or a skip of `observed`'s series."""
    codes, times = observed.codes, observed.times
    if not len(codes):
        return True
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    if only is not None and only - set(observed.names[codes[starts]].tolist()):
        return True
    stops = np.r_[starts[1:], len(codes)]
    firsts = times[stops - 1] - (rows - 1) * freq_ms
    return bool((firsts < since_ms).any() or (times[starts] > firsts).any())


def read_observations(files: list[Path], columns: list[str]) -> pa.Table:
    """The files' rows, one per (series, time), the last received kept; sorted by both."""
    observed = read_columns(files, columns)
    return pa.table(
        {
            SERIES_COLUMN: pa.array(observed.names[observed.codes], pa.string()),
            columns[0]: pa.array(observed.times.astype("datetime64[ms]")),
            **{name: pa.array(observed.values[name]) for name in columns[1:]},
        }
    )


def read_columns(files: list[Path], columns: list[str]) -> Observed:
    """`read_observations` as numpy columns: what the job builds its windows from."""
    wanted = [SERIES_COLUMN, *columns, RECEIVED_COLUMN]
    # The series column as a dictionary: a few hundred names repeated, so sorting and
    # grouping use int codes, not strings (a string sort was a quarter of a run). One file
    # at a time on this thread: pyarrow's dataset read on its thread pool took 3x as long
    # on a busy 2-core machine (17 ms against 5 ms for 9 days of 400 series).
    table = (
        pa.concat_tables(
            [
                pq.ParquetFile(f, read_dictionary=[SERIES_COLUMN]).read(wanted, use_threads=False)
                for f in files
            ]
        )
        if files
        else None
    )
    if table is None or table.num_rows == 0:
        return _empty(columns)
    return _sorted_unique(table, columns)


def _empty(columns: list[str]) -> Observed:
    return Observed(
        np.array([], dtype=str),
        np.array([], dtype=np.intp),
        np.array([], dtype=np.int64),
        {name: np.array([], dtype=np.float64) for name in columns[1:]},
    )


def _sorted_unique(table: pa.Table, columns: list[str]) -> Observed:
    """Rows sorted by (series, time), the last received of each pair kept."""
    series = table.column(SERIES_COLUMN)
    if not pa.types.is_dictionary(series.type):
        series = series.dictionary_encode()
    series = pa.chunked_array(series.chunks, series.type).unify_dictionaries().combine_chunks()
    names = np.asarray(series.dictionary.to_numpy(zero_copy_only=False), dtype=str)
    order_of_names = np.argsort(names, kind="stable")
    rank = np.empty(len(names), dtype=np.intp)
    rank[order_of_names] = np.arange(len(names))
    codes = rank[series.indices.to_numpy(zero_copy_only=False)]
    times = _millis(table.column(columns[0]))
    received = (
        _millis(table.column(RECEIVED_COLUMN))
        if RECEIVED_COLUMN in table.column_names
        else np.zeros(len(times), dtype=np.int64)
    )
    span = int(times.max()) - int(times.min()) + 1
    if len(names) * span < 2**62:  # (series, time) as one int64: a sort key 5x cheaper
        order = np.lexsort((received, codes * span + (times - times.min())))
    else:
        order = np.lexsort((received, times, codes))
    codes, times = codes[order], times[order]
    # The last row of each (series, time) run: the one received last.
    last = np.ones(len(times), dtype=bool)
    last[:-1] = (codes[1:] != codes[:-1]) | (times[1:] != times[:-1])
    keep = order[last]
    values = {
        name: np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)[keep]
        for name in columns[1:]
    }
    return Observed(names[order_of_names], codes[last], times[last], values)


def _millis(column: pa.ChunkedArray) -> npt.NDArray[np.int64]:
    return np.asarray(pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False), np.int64)


def windows(
    table: pa.Table,
    columns: list[str],
    rows: int,
    freq_ms: int,
    only: set[str] | None = None,
    max_gap: int = 0,
) -> tuple[list[Window], list[Skipped]]:
    """The last `rows` hours of each series, or why a series has none (`window_batch` on a
    table of `read_observations`, as one `Window` per series)."""
    if table.num_rows == 0:
        return [], []
    batch, skipped = window_batch(
        _sorted_unique(table, columns), columns[0], rows, freq_ms, only, max_gap
    )
    return batch.windows(), skipped


def window_batch(
    observed: Observed,
    time_column: str,
    rows: int,
    freq_ms: int,
    only: set[str] | None = None,
    max_gap: int = 0,
) -> tuple[WindowBatch, list[Skipped]]:
    """The last `rows` hours of each series on its grid, or why a series has none.

    `max_gap`: the most missing hours in a row the model tolerates (its spec's `max_gap`).
    Every series is handled at once with numpy; only a series that is skipped, or that
    has a tolerated gap, is looked at on its own.
    """
    codes, times, names = observed.codes, observed.times, observed.names
    value_names = list(observed.values)
    source = None  # the rows of `observed` kept, when `only` names series
    if only is not None:
        source = np.flatnonzero(np.isin(names, np.asarray(sorted(only), dtype=str))[codes])
        codes, times = codes[source], times[source]
    if len(codes) == 0:
        return _no_windows(value_names, rows, freq_ms, time_column), _unseen(only, set())
    # Rows are sorted by series: each series is one contiguous run [start, stop).
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    stops = np.r_[starts[1:], len(codes)]
    series = [check_series(str(name)) for name in names[codes[starts]].tolist()]
    ends = times[stops - 1]
    firsts = ends - (rows - 1) * freq_ms
    # The rows from each series' window start on (times increase within a series).
    run_of_row = np.repeat(np.arange(len(starts)), stops - starts)
    window_rows = np.flatnonzero(times >= firsts[run_of_row])
    window_run = run_of_row[window_rows]
    held = np.bincount(window_run, minlength=len(starts))
    begins = stops - held
    short = times[starts] > firsts
    offsets = times[window_rows] - firsts[window_run]
    off_step = np.bincount(window_run[offsets % freq_ms != 0], minlength=len(starts)) > 0
    whole = ~short & (held == rows) & ~off_step
    skipped: list[Skipped] = []
    keep = whole.copy()
    for run in np.flatnonzero(~whole).tolist():  # the rare series not whole: one by one
        start, stop, begin = int(starts[run]), int(stops[run]), int(begins[run])
        name, first, end = series[run], int(firsts[run]), int(ends[run])
        if short[run]:  # the series does not reach back far enough
            skipped.append(Skipped(name, SKIP_SHORT, f"{stop - start} of the {rows} hours needed"))
            continue
        if off_step[run]:
            skipped.append(
                Skipped(name, SKIP_INVALID, f"times off the {freq_ms // 1000} s step in its window")
            )
            continue
        # hours missing: more in a row than the model tolerates is a gap
        edges = np.r_[first - freq_ms, times[begin:stop], end + freq_ms]
        steps = np.diff(edges) // freq_ms - 1
        widest = int(np.argmax(steps))
        if int(steps[widest]) > max_gap:
            after = np.datetime64(int(edges[widest]), "ms")
            skipped.append(
                Skipped(
                    name,
                    SKIP_GAP,
                    f"{rows - int(held[run])} of the last {rows} hours missing "
                    f"(widest gap {int(steps[widest])} h after {after}; "
                    f"{max_gap} tolerated)",
                )
            )
            continue
        keep[run] = True
    kept = np.flatnonzero(keep)
    # Each kept series' window rows, laid on its grid of `rows` slots in one scatter.
    taken = keep[window_run]
    at_rows, at_run = window_rows[taken], window_run[taken]
    slot_of_run = np.full(len(starts), -1, dtype=np.intp)
    slot_of_run[kept] = np.arange(len(kept))
    # Flat slots of the [kept, rows] grids: one 1-d scatter per column.
    flat = slot_of_run[at_run] * rows + offsets[taken] // freq_ms
    if source is not None:
        at_rows = source[at_rows]
    held_at = np.zeros(len(kept) * rows, dtype=bool)
    held_at[flat] = True
    grid: dict[str, npt.NDArray[np.float64]] = {}
    for name, column in observed.values.items():
        out = np.full(len(kept) * rows, np.nan)
        out[flat] = column[at_rows]
        grid[name] = out.reshape(len(kept), rows)
    filled = held_at.reshape(len(kept), rows)
    batch = WindowBatch(
        [series[i] for i in kept.tolist()], ends[kept], grid, filled, freq_ms, time_column
    )
    return batch, skipped + _unseen(only, set(series))


def _unseen(only: set[str] | None, seen: set[str]) -> list[Skipped]:
    if only is None:
        return []
    return [Skipped(name, SKIP_SHORT, "no observations") for name in sorted(only - seen)]


def _no_windows(values: list[str], rows: int, freq_ms: int, time_column: str) -> WindowBatch:
    return WindowBatch(
        [],
        np.array([], dtype=np.int64),
        {name: np.empty((0, rows)) for name in values},
        np.zeros((0, rows), dtype=bool),
        freq_ms,
        time_column,
    )
