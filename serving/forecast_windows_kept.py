"""The forecast job's windows kept from one run to the next (issue 14).

In the steady state of the embedded scheduler every series is dense (its last `rows`
hours all there, none skipped) and a run finds one new collector file holding the next
hour of each series. Then `window_batch(read_recent(...))` is the last run's batch with
each grid shifted left by the new hours and those appended: `KeptWindows.windows` gives
that batch from the new files alone, in numpy over `[series, rows]`, without the
O(rows held) merge of `serving.forecast_tail` and the windowing of every row.

It answers only when it can show the answer is the one `window_batch(read_recent(...))`
gives (see `windows` for the conditions), else None: the job then reads as before
(tail + window_batch) and hands the result to `keep`, which keeps it when it is dense.

Why the windows of the files (`read_recent` may read only the recent days) equal those of
every file of the lookback: a file holds only its own day's rows (checked for each file,
new or kept, once: a file is immutable and known by its path, as the tail assumes), so
`read_recent`'s recent days hold every row a window of theirs can reach, and it reads
every day whenever a series could reach further. A dense series' window is then its last
`rows` rows among all the lookback's files; new rows that are exactly its next hours make
the new window the old one shifted, and a series without new rows keeps its window as
long as that window lies in the days still in the lookback.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from serving.forecast_history import (
    DAY_MS,
    Observed,
    Skipped,
    WindowBatch,
    day_ms,
    lookback_listing,
    read_kept,
)


@dataclass(frozen=True)
class WindowQuery:
    """What a batch was made for: another query is another batch (and `only` is None)."""

    logs_root: Path
    project: str
    lookback_days: int
    columns: tuple[str, ...]  # the time column first, as the batch's `time_column`
    rows: int
    step_ms: int
    max_gap: int


@dataclass(frozen=True)
class _Listing:
    paths: list[str]
    days: list[date]
    first: date | None  # the oldest day of the lookback


@dataclass(frozen=True)
class _State:
    query: WindowQuery
    batch: WindowBatch  # dense: every series whole, every slot filled, none skipped
    names: npt.NDArray[np.str_]  # batch.series as an array, sorted as window_batch sorts
    seen: dict[str, date]  # the lookback's files when the batch was made, with their day


class _CannotShiftError(Exception):
    """The new files do not just extend the kept windows: the job reads as before."""


class KeptWindows:
    """`window_batch(read_recent(...))` run after run, from the files new since the last."""

    LIMIT = 65_536  # files whose own-day check is remembered; past it the memory starts again

    def __init__(self) -> None:
        self._state: _State | None = None
        self._pending: tuple[WindowQuery, _Listing] | None = None  # for `keep`
        self._own_day: dict[tuple[str, str], bool] = {}  # (path, time column) -> in its day?
        self.answered = False  # whether the last `windows` call answered
        self.reason = ""  # why it did not (for tests and logs)

    def windows(
        self,
        logs_root: Path,
        project: str,
        lookback_days: int,
        columns: list[str],
        rows: int,
        step_ms: int,
        only: set[str] | None,
        max_gap: int,
    ) -> tuple[WindowBatch, list[Skipped]] | None:
        """What `window_batch(read_recent(logs_root, project, lookback_days, columns, rows,
        step_ms, only), columns[0], rows, step_ms, only, max_gap)` answers now, or None when
        that cannot be shown from the kept batch and the new files. It answers when: a batch
        is kept for the same query (`only` None); no file kept of a day still in the
        lookback is gone; every new file holds rows of its own day only, of series of the
        batch only, and a series' new rows (one per hour, the last received kept) are
        exactly its next hours after its window's end; every window, shifted, starts on or
        after the lookback's first day. The listing it takes is the one `keep` remembers:
        taken before the job's read, a file written meanwhile is a new file next time."""
        self._pending, self.answered = None, False
        if only is not None:
            self.reason = "series asked for by name"
            return None
        query = WindowQuery(
            logs_root, project, lookback_days, tuple(columns), rows, step_ms, max_gap
        )
        paths, days, first = lookback_listing(logs_root, project, lookback_days)
        listing = _Listing(paths, days, first)
        self._pending = (query, listing)
        state, self._state = self._state, None  # kept again only if it moves on
        if state is None or state.query != query or first is None:
            self.reason = "no batch kept for this query"
            return None
        try:
            batch = self._advance(state, listing, first)
        except _CannotShiftError as exc:
            self.reason = str(exc)
            return None
        except (OSError, pa.ArrowException) as exc:  # a file that went, or is unreadable
            self.reason = f"a new file unreadable ({type(exc).__name__})"
            return None
        seen = dict(zip(paths, days, strict=True))
        self._state = _State(query, batch, state.names, seen)
        self.answered, self.reason = True, ""
        return batch, []

    def keep(self, batch: WindowBatch, skipped: list[Skipped]) -> None:
        """The batch the job made for its last `windows` call's query when it did not
        answer: kept if dense (no series skipped, every slot filled), with that call's
        listing as the files it was made from."""
        pending, self._pending = self._pending, None
        self._state = None
        if pending is None:
            return
        query, listing = pending
        dense = (
            not skipped
            and len(batch) > 0
            and batch.time_column == query.columns[0]
            and batch.step_ms == query.step_ms
            and batch.filled.shape == (len(batch), query.rows)
            and list(batch.grid) == list(query.columns[1:])
            and bool(batch.filled.all())
        )
        if not dense:
            return
        seen = dict(zip(listing.paths, listing.days, strict=True))
        time_column = query.columns[0]
        if not all(self._in_own_day(path, day, time_column) for path, day in seen.items()):
            return
        names = np.asarray(batch.series, dtype=str)
        if not bool((names[:-1] < names[1:]).all()):  # new rows are found by a binary search
            return
        self._state = _State(query, batch, names, seen)

    def _advance(self, state: _State, listing: _Listing, first: date) -> WindowBatch:
        present = set(listing.paths)
        if any(day >= first and path not in present for path, day in state.seen.items()):
            raise _CannotShiftError("a file of the lookback is gone")
        new = [
            (path, day)
            for path, day in zip(listing.paths, listing.days, strict=True)
            if path not in state.seen
        ]
        batch = state.batch
        if new:
            kept = read_kept(
                [Path(p) for p, _ in new], [d for _, d in new], list(state.query.columns)
            )
            if not kept.in_own_day:
                raise _CannotShiftError("a new file with rows outside its day")
            self._remember([p for p, _ in new], state.query.columns[0], True)
            batch = _shifted(batch, state.names, kept.observed)
        if int(batch.start_ms.min()) < day_ms(first):
            raise _CannotShiftError("a window starts before the lookback")
        return batch

    def _in_own_day(self, path: str, day: date, time_column: str) -> bool:
        """Whether every row of `path` lies in `day`: its time column's statistics (the
        footer only), remembered per path."""
        verdict = self._own_day.get((path, time_column))
        if verdict is None:
            try:
                verdict = _stats_in_day(path, day, time_column)
            except (OSError, pa.ArrowException):
                return False  # gone or unreadable: not remembered
            self._remember([path], time_column, verdict)
        return verdict

    def _remember(self, paths: list[str], time_column: str, verdict: bool) -> None:
        if len(self._own_day) + len(paths) > self.LIMIT:
            self._own_day = {}
        self._own_day.update(dict.fromkeys(((p, time_column) for p in paths), verdict))


def _stats_in_day(path: str, day: date, time_column: str) -> bool:
    """Whether the statistics of `path`'s time column show every row in `day`. Without
    statistics, or in another unit than the collector's milliseconds, it says no: the batch
    is then not kept (the job reads as before)."""
    meta = pq.read_metadata(path)
    if meta.num_rows == 0:
        return True
    names = meta.schema.names
    if time_column not in names:
        return False
    at = names.index(time_column)
    column = meta.schema.column(at)
    if column.physical_type != "INT64" or "milliseconds" not in str(column.logical_type):
        return False
    low, high = day_ms(day), day_ms(day) + DAY_MS
    for group in range(meta.num_row_groups):
        if meta.row_group(group).num_rows == 0:
            continue
        stats = meta.row_group(group).column(at).statistics
        if stats is None or not stats.has_min_max:
            return False
        if not low <= int(stats.min_raw) <= int(stats.max_raw) < high:
            return False
    return True


def _shifted(batch: WindowBatch, names: npt.NDArray[np.str_], add: Observed) -> WindowBatch:
    """`batch` with the rows `add` (sorted by series and time, one per pair) appended to
    their series' windows, each window shifted left by its new rows."""
    if not len(add.codes):
        return batch
    at = np.searchsorted(names, add.names)
    inside = at < len(names)
    if not inside.all() or not bool((names[at] == add.names).all()):
        raise _CannotShiftError("a new series")
    step, rows = batch.step_ms, batch.filled.shape[1]
    series_of_row = at[add.codes]  # names are sorted alike: rows stay sorted by series
    counts = np.bincount(series_of_row, minlength=len(names))
    firsts = np.cumsum(counts) - counts
    rank = np.arange(1, len(series_of_row) + 1) - firsts[series_of_row]  # 1, 2, ... a series
    if not np.array_equal(add.times, batch.end_ms[series_of_row] + rank * step):
        raise _CannotShiftError("new rows that are not the next hours of their series")
    grid: dict[str, npt.NDArray[np.float64]] = {}
    if bool((counts == counts[0]).all()):  # the usual run: the same hours for every series
        m = int(counts[0])
        for name, values in batch.grid.items():
            grid[name] = np.concatenate(
                (values[:, m:], add.values[name].reshape(len(names), m)[:, max(0, m - rows) :]),
                axis=1,
            )
    else:  # windows shifted by their own counts: one gather over [series, rows + most new]
        widest = int(counts.max())
        take = counts[:, None] + np.arange(rows)
        slot = rows - 1 + rank
        for name, values in batch.grid.items():
            wide = np.empty((len(names), rows + widest))
            wide[:, :rows] = values
            wide[series_of_row, slot] = add.values[name]
            grid[name] = np.take_along_axis(wide, take, axis=1)
    return WindowBatch(
        batch.series,
        np.asarray(batch.end_ms + counts * step, dtype=np.int64),
        grid,
        batch.filled,
        step,
        batch.time_column,
    )
