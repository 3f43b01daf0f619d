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

import os
from collections.abc import Callable
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
    return [Path(p) for p in lookback_listing(logs_root, project, lookback_days)[0]]


def lookback_listing(
    logs_root: Path, project: str, lookback_days: int
) -> tuple[list[str], list[date], date | None]:
    """`partition_files` as path strings, with each file's partition day and the oldest day
    of the lookback (None when there is no day): one `scandir` a folder, no `Path` a file
    (the listing is a fair part of a run that reads one file)."""
    base = logs_root / project / OBSERVATIONS_DIR
    try:
        with os.scandir(base) as entries:
            folders = sorted(
                (e.name, e.path) for e in entries if e.name.startswith("date=") and e.is_dir()
            )
    except (FileNotFoundError, NotADirectoryError):
        return [], [], None
    if not folders:
        return [], [], None
    last = date.fromisoformat(folders[-1][0].removeprefix("date="))
    oldest = last - timedelta(days=lookback_days - 1)
    first = oldest.isoformat()
    paths: list[str] = []
    days: list[date] = []
    for name, folder in folders:
        if name.removeprefix("date=") < first:
            continue
        with os.scandir(folder) as entries:
            found = sorted(
                e.path
                for e in entries
                if e.name.endswith(".parquet") and not e.name.startswith(".")
            )
        paths += found
        days += [date.fromisoformat(name.removeprefix("date="))] * len(found)
    return paths, days, oldest


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
    reading everything. (serving.forecast_tail gives the same answer reading only the
    files written since its last call.)
    """
    files = partition_files(logs_root, project, lookback_days)
    if not files:
        return _empty(columns)
    since, since_ms = recent_since(files, rows, freq_ms)
    recent = [f for f in files if partition_day(f) >= since]
    if len(recent) == len(files):
        return read_columns(files, columns)
    observed = read_columns(recent, columns)
    older = files[: len(files) - len(recent)]
    if reads_every_day(observed, lambda: _SERIES.names(older), rows, freq_ms, since_ms, only):
        return read_columns(files, columns)
    return observed


def recent_since(files: list[Path], rows: int, freq_ms: int) -> tuple[date, int]:
    """The first day a window ending on the newest day of `files` can reach, and its
    midnight in epoch milliseconds: `read_recent` reads the files of that day on first."""
    newest = partition_day(files[-1])
    since = (
        datetime.combine(newest, datetime.min.time(), UTC)
        - timedelta(milliseconds=(rows - 1) * freq_ms)
    ).date()
    return since, day_ms(since)


def day_ms(day: date) -> int:
    """The day's midnight (UTC), epoch milliseconds."""
    return int(datetime.combine(day, datetime.min.time(), UTC).timestamp() * 1000)


def reads_every_day(
    observed: Observed,
    older_series: Callable[[], frozenset[str]],
    rows: int,
    freq_ms: int,
    since_ms: int,
    only: set[str] | None,
) -> bool:
    """`read_recent`'s choice: whether the older days could change a window or a skip of
    `observed` (the rows of the days from `since_ms` on), `older_series` giving the series
    names of the older days' files (asked only when the rows do not decide)."""
    return _reaches_back(observed, rows, freq_ms, since_ms, only) or bool(
        older_series() - set(observed.names.tolist())
    )


class SeriesIndex:
    """The series names of observation files, each file's read once: their series
    column's dictionaries only (a fraction of a millisecond a file), to find a series seen
    only before the days read. A file is never rewritten (the collector writes a new one
    per post), so a path is its identity; `verify` adds its size and mtime to that, for
    callers that see files of any origin."""

    LIMIT = 8192  # files remembered; past it the memory starts again

    def __init__(self, verify: bool = False) -> None:
        self.verify = verify
        self.reads = 0  # files whose dictionaries were read: what the cache saves shows here
        self._of: dict[tuple[str, int, int], frozenset[str]] = {}
        self._last: tuple[tuple[tuple[str, int, int], ...], frozenset[str]] | None = None

    def names(self, files: list[Path]) -> frozenset[str]:
        """The union of the series names of `files`."""
        keys = tuple(self._key(f) for f in files)
        if self._last is not None and self._last[0] == keys:
            return self._last[1]  # the same older files as the last call: one comparison
        if len(self._of) > self.LIMIT:
            self._of = {}
        union: set[str] = set()
        for file, key in zip(files, keys, strict=True):
            names = self._of.get(key)
            if names is None:
                names = self._of[key] = _series_of(file)
                self.reads += 1
            union |= names
        self._last = (keys, frozenset(union))
        return self._last[1]

    def _key(self, file: Path) -> tuple[str, int, int]:
        if not self.verify:
            return str(file), 0, 0
        stat = file.stat()
        return str(file), stat.st_size, stat.st_mtime_ns


_SERIES = SeriesIndex(verify=True)  # read_recent's: across calls of one process


def _series_of(file: Path) -> frozenset[str]:
    """The series names in `file`: its series column's dictionaries only."""
    names: set[str] = set()
    column = (
        pq.ParquetFile(file, read_dictionary=[SERIES_COLUMN])
        .read([SERIES_COLUMN], use_threads=False)
        .column(SERIES_COLUMN)
    )
    for chunk in column.chunks:
        names.update(chunk.dictionary.to_pylist())
    return frozenset(names)


def partition_day(file: Path) -> date:
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
    table = _read_table(files, columns)
    if table is None:
        return _empty(columns)
    return _sorted_unique(table, columns).observed


@dataclass(frozen=True)
class Kept:
    """`read_columns` of `files`, with what a later merge of more files needs of each row:
    when it was received, which of the files it came from, and whether every row read lay
    in its file's own day (the collector's layout, which lets a reader drop a day whole)."""

    observed: Observed
    received: npt.NDArray[np.int64]
    file_of: npt.NDArray[np.intp]  # index into `files`
    in_own_day: bool


def read_kept(files: list[Path], days: list[date], columns: list[str]) -> Kept:
    """`Kept` rows of `files`, `days[i]` being the partition day of `files[i]`."""
    counts: list[int] = []
    table = _read_table(files, columns, counts)
    if table is None:
        return Kept(_empty(columns), _NO_TIMES, np.array([], dtype=np.intp), True)
    rows = _sorted_unique(table, columns)
    file_of_row = np.repeat(np.arange(len(files)), counts)
    midnight = np.asarray([day_ms(day) for day in days], dtype=np.int64)[file_of_row]
    offsets = rows.all_times - midnight
    in_own_day = bool(((offsets >= 0) & (offsets < DAY_MS)).all())
    return Kept(rows.observed, rows.received, file_of_row[rows.kept], in_own_day)


DAY_MS = 86_400_000
_NO_TIMES = np.array([], dtype=np.int64)


def _read_table(
    files: list[Path], columns: list[str], counts: list[int] | None = None
) -> pa.Table | None:
    """The files' columns in one table (None when no row); `counts` gets each file's rows."""
    if not files:
        return None
    wanted = [SERIES_COLUMN, *columns, RECEIVED_COLUMN]
    # The series column as a dictionary: a few hundred names repeated, so sorting and
    # grouping use int codes, not strings (a string sort was a quarter of a run). One file
    # at a time on this thread: pyarrow's dataset read on its thread pool took 3x as long
    # on a busy 2-core machine (17 ms against 5 ms for 9 days of 400 series).
    # pre_buffer off: coalesced read-ahead pays for itself on object stores, not on a
    # local disk (0.53 -> 0.38 ms for a one-hour file; 21 -> 17 ms for 25 days).
    tables = [
        pq.ParquetFile(f, read_dictionary=[SERIES_COLUMN], pre_buffer=False).read(
            wanted, use_threads=False
        )
        for f in files
    ]
    if counts is not None:
        counts.extend(t.num_rows for t in tables)
    table = pa.concat_tables(tables)
    return table if table.num_rows else None


def _empty(columns: list[str]) -> Observed:
    return Observed(
        np.array([], dtype=str),
        np.array([], dtype=np.intp),
        np.array([], dtype=np.int64),
        {name: np.array([], dtype=np.float64) for name in columns[1:]},
    )


@dataclass(frozen=True)
class _Unique:
    observed: Observed
    received: npt.NDArray[np.int64]  # of each row kept
    kept: npt.NDArray[np.intp]  # each row kept's index in the table
    all_times: npt.NDArray[np.int64]  # of every row of the table


def _sorted_unique(table: pa.Table, columns: list[str]) -> _Unique:
    """Rows sorted by (series, time), the last received of each pair kept (of two received
    at once, the later in the table)."""
    series = table.column(SERIES_COLUMN)
    if not pa.types.is_dictionary(series.type):
        series = series.dictionary_encode()
    series = pa.chunked_array(series.chunks, series.type).unify_dictionaries().combine_chunks()
    names = np.asarray(series.dictionary.to_numpy(zero_copy_only=False), dtype=str)
    order_of_names = np.argsort(names, kind="stable")
    rank = np.empty(len(names), dtype=np.intp)
    rank[order_of_names] = np.arange(len(names))
    codes = rank[series.indices.to_numpy(zero_copy_only=False)]
    all_times = times = _millis(table.column(columns[0]))
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
    observed = Observed(names[order_of_names], codes[last], times[last], values)
    return _Unique(observed, received[keep], keep, all_times)


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
        _sorted_unique(table, columns).observed, columns[0], rows, freq_ms, only, max_gap
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
    series = _checked_names(names[codes[starts]].tolist())
    ends = times[stops - 1]
    firsts = ends - (rows - 1) * freq_ms
    if source is None:
        dense = _dense_windows(observed, starts, stops, rows, freq_ms)
        if dense is not None:
            return WindowBatch(
                series, ends, dense, np.ones((len(starts), rows), dtype=bool), freq_ms, time_column
            ), []
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


def _dense_windows(
    observed: Observed,
    starts: npt.NDArray[np.intp],
    stops: npt.NDArray[np.intp],
    rows: int,
    freq_ms: int,
) -> dict[str, npt.NDArray[np.float64]] | None:
    """Every series' grid when each one's last `rows` rows are `rows` hours in a row, as
    they are run after run in the steady state (None otherwise: the general path).

    Then a window is those rows as they are: one gather per column, where laying rows on
    grids slot by slot was most of the job's window time. The general path gives the same
    batch: every series whole, every slot filled."""
    if bool(((stops - starts) < rows).any()):
        return None
    times = observed.times
    steady = np.diff(times) == freq_ms
    # Hours in a row within a window: its rows - 1 steps of exactly one hour each.
    steps = np.concatenate(([0], np.cumsum(steady)))
    firsts = stops - rows
    if not bool((steps[stops - 1] - steps[firsts] == rows - 1).all()):
        return None
    at = firsts[:, None] + np.arange(rows)
    return {name: column[at] for name, column in observed.values.items()}


_VALID_NAMES: set[str] = set()  # series names already checked (bounded: 100,000 kept)


def _checked_names(names: list[str]) -> list[str]:
    """`check_series` of each name, once per process for a name that passed."""
    fresh = [name for name in names if name not in _VALID_NAMES]
    for name in fresh:
        check_series(name)
    if len(_VALID_NAMES) + len(fresh) > 100_000:
        _VALID_NAMES.clear()
    _VALID_NAMES.update(fresh)
    return names


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
