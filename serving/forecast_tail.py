"""The observation rows a long-lived forecast job keeps between runs (issue 14).

`ObservationTail.read` answers exactly what `serving.forecast_history.read_recent` answers
on the same files, but reads only the files written since its last call and merges them
into the rows it kept: a run of 400 series x 200 hours read ~10 ms of Parquet again and
again for one new hour. The collector's files are immutable and named once (a new
`part-<uuid>.parquet` per post and day), so a file is known by its path; each row keeps
when it was received and from which file, so a merge picks the row `read_recent` would
(the later received; of two received at once, the later file in a day's sorted names).

Whenever it cannot show that the answer is the same, it reads as `read_recent` does and
starts again from that: the first call, another query (project, columns, rows, step,
lookback, series asked for), a file it read that is gone, a file with rows outside its
own day (the days could then no longer be dropped whole), a time span too wide for its
merge key. The one-shot job (a CronJob, the CLI) has no earlier call: a full read, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt

from serving.forecast_history import (
    Kept,
    Observed,
    SeriesIndex,
    day_ms,
    lookback_listing,
    read_kept,
    reads_every_day,
    recent_since,
)


@dataclass(frozen=True)
class _Query:
    logs_root: Path
    project: str
    lookback_days: int
    columns: tuple[str, ...]
    rows: int
    freq_ms: int
    only: frozenset[str] | None


# A row's (series, time) as one int64 key, ordered as the rows: code << 42 | epoch ms
# (times from 1970 to 2109, up to 2**21 series; beyond, the tail reads as read_recent).
TIME_BITS = 42
MAX_CODES = 1 << (63 - TIME_BITS)


class _CannotMergeError(Exception):
    """The merge cannot show it gives `read_recent`'s rows: read them all instead."""


def _keys(codes: npt.NDArray[np.intp], times: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    if len(times) and (int(times.min()) < 0 or int(times.max()) >> TIME_BITS):
        raise _CannotMergeError("a time out of the merge key's range")
    return np.asarray((codes.astype(np.int64) << TIME_BITS) | times, dtype=np.int64)


@dataclass(frozen=True)
class _Held:
    """The rows of every file of the days from `low` on (and of no other), as `read_columns`
    reads them, with each row's key, `received` and file (`paths[file_ids]`)."""

    query: _Query
    low: date
    files: dict[str, tuple[int, date]]  # path -> (its index in `paths`, its day)
    paths: list[str]
    observed: Observed
    keys: npt.NDArray[np.int64]
    received: npt.NDArray[np.int64]
    file_ids: npt.NDArray[np.intp]

    @staticmethod
    def of(query: _Query, low: date, files: list[tuple[str, date]], kept: Kept) -> _Held:
        observed = kept.observed
        if len(observed.names) >= MAX_CODES:
            raise _CannotMergeError("too many series for the merge key")
        return _Held(
            query,
            low,
            {p: (i, d) for i, (p, d) in enumerate(files)},
            [p for p, _ in files],
            observed,
            _keys(observed.codes, observed.times),
            kept.received,
            kept.file_of,
        )

    def since(self, day: date) -> _Held:
        """Only the rows of the days from `day` on; their files renumbered from 0."""
        if day <= self.low:
            return self
        files = {p: at for p, at in self.files.items() if at[1] >= day}
        # Every row lies in its file's day (checked when read): a day goes whole.
        keep = self.observed.times >= day_ms(day)
        renumber = np.zeros(len(self.paths), dtype=np.intp)
        old_ids = np.asarray([i for i, _ in files.values()], dtype=np.intp)
        renumber[old_ids] = np.arange(len(old_ids))
        observed = Observed(
            self.observed.names,
            self.observed.codes[keep],
            self.observed.times[keep],
            {name: values[keep] for name, values in self.observed.values.items()},
        )
        trimmed = _dropping_unseen(observed)
        return _Held(
            self.query,
            day,
            {p: (j, at[1]) for j, (p, at) in enumerate(files.items())},
            [self.paths[i] for i in old_ids.tolist()],
            trimmed,
            self.keys[keep] if trimmed is observed else _keys(trimmed.codes, trimmed.times),
            self.received[keep],
            renumber[self.file_ids[keep]],
        )


@dataclass(frozen=True)
class _Listing:
    paths: list[str]
    days: list[date]
    first: date
    since_ms: int


class ObservationTail:
    """`read_recent` for a job that runs again in the same process: held across runs."""

    def __init__(self) -> None:
        self._held: _Held | None = None
        self.series = SeriesIndex()  # the older days' series names, each file's read once
        self.last_read: tuple[Path, ...] = ()  # the data files the last call read
        self.last_full = False  # whether the last call read as `read_recent` does

    def read(
        self,
        logs_root: Path,
        project: str,
        lookback_days: int,
        columns: list[str],
        rows: int,
        freq_ms: int,
        only: set[str] | None = None,
    ) -> Observed:
        """What `read_recent(logs_root, project, lookback_days, columns, rows, freq_ms, only)`
        answers now, reading only the files not read by an earlier call when it can."""
        query = _Query(
            logs_root,
            project,
            lookback_days,
            tuple(columns),
            rows,
            freq_ms,
            None if only is None else frozenset(only),
        )
        self.last_read, self.last_full = (), False
        try:
            observed, self._held = self._read(query, only)
        except BaseException:
            self._held = None  # half a merge is not kept: the next call reads everything
            raise
        return observed

    def _read(self, query: _Query, only: set[str] | None) -> tuple[Observed, _Held | None]:
        paths, days, first = lookback_listing(query.logs_root, query.project, query.lookback_days)
        if not paths or first is None:
            return read_kept([], [], list(query.columns)).observed, None
        since, since_ms = recent_since([Path(paths[-1])], query.rows, query.freq_ms)
        bound = max(since, first)  # read_recent reads the days from `bound` on first
        listing = _Listing(paths, days, first, since_ms)
        held = self._held
        if held is None or held.query != query:
            return self._full(query, listing, bound, only)
        start = max(held.low, first)  # the days held that are still in the lookback
        if start > bound:  # the newest day went back: days never read are needed
            return self._full(query, listing, bound, only)
        current = {p for p, d in zip(paths, days, strict=True) if d >= start}
        if any(d >= start and p not in current for p, (_, d) in held.files.items()):
            return self._full(query, listing, bound, only)  # a file read is gone
        new = [
            (p, d) for p, d in zip(paths, days, strict=True) if d >= start and p not in held.files
        ]
        try:
            state = held.since(start)
            if new:
                read = [Path(p) for p, _ in new]
                kept = read_kept(read, [d for _, d in new], list(query.columns))
                self.last_read = tuple(read)
                if not kept.in_own_day:
                    raise _CannotMergeError("a file with rows outside its day")
                state = _merge(state, kept, new)
        except _CannotMergeError:
            return self._full(query, listing, bound, only)
        older = [Path(p) for p, d in zip(paths, days, strict=True) if d < bound]
        if not older:  # read_recent reads every file: all held
            return state.observed, state
        view = state.since(bound)
        if not reads_every_day(
            view.observed,
            lambda: self.series.names(older),
            query.rows,
            query.freq_ms,
            since_ms,
            only,
        ):
            return view.observed, view
        if start == first:  # every day of the lookback is held already
            return state.observed, state
        return self._full(query, listing, first, only)

    def _full(
        self, query: _Query, listing: _Listing, bound: date, only: set[str] | None
    ) -> tuple[Observed, _Held | None]:
        """`read_recent`'s own reads (the days from `bound` on, then every day if a series
        reaches back), kept as the rows held from now on."""
        self.last_full = True
        columns = list(query.columns)
        files = list(zip(listing.paths, listing.days, strict=True))
        recent = [(p, d) for p, d in files if d >= bound]
        older = [Path(p) for p, _ in files[: len(files) - len(recent)]]
        low = bound
        kept = read_kept([Path(p) for p, _ in recent], [d for _, d in recent], columns)
        self.last_read += tuple(Path(p) for p, _ in recent)
        if older and reads_every_day(
            kept.observed,
            lambda: self.series.names(older),
            query.rows,
            query.freq_ms,
            listing.since_ms,
            only,
        ):
            kept = read_kept([Path(p) for p, _ in files], listing.days, columns)
            self.last_read += tuple(Path(p) for p, _ in files)
            recent, low = files, listing.first
        if not kept.in_own_day:  # days cannot be dropped whole: nothing held
            return kept.observed, None
        try:
            return kept.observed, _Held.of(query, low, recent, kept)
        except _CannotMergeError:
            return kept.observed, None


def _merge(held: _Held, kept: Kept, new: list[tuple[str, date]]) -> _Held:
    """`held` and the rows of the files `new` (read as `kept`), one row per (series, time):
    the later received, or the later file of the day when received at once. O(rows) in
    numpy: both sides are sorted by (series, time), so the new rows are scattered in place."""
    base = len(held.paths)
    paths = held.paths + [p for p, _ in new]
    files = dict(held.files)
    files.update({p: (base + j, d) for j, (p, d) in enumerate(new)})
    old, add = held.observed, kept.observed
    if not len(add.codes):
        return _Held(
            held.query, held.low, files, paths, old, held.keys, held.received, held.file_ids
        )
    at_names = np.searchsorted(old.names, add.names)
    known = at_names < len(old.names)
    known[known] = old.names[at_names[known]] == add.names[known]
    old_keys, names = held.keys, old.names
    if not known.all():  # new series: codes index the union of the names, sorted
        names = np.union1d(old.names, add.names)
        if len(names) >= MAX_CODES:
            raise _CannotMergeError("too many series for the merge key")
        old_keys = _keys(np.searchsorted(names, old.names)[old.codes], old.times)
        at_names = np.searchsorted(names, add.names)
    add_keys = _keys(at_names[add.codes], add.times)
    add_ids = base + kept.file_of
    add_received, add_values = kept.received, add.values
    old_received, old_ids = held.received, held.file_ids
    old_values = old.values
    # New rows of a (series, time) held already: the later received wins.
    at = np.searchsorted(old_keys, add_keys)
    same = at < len(old_keys)
    same[same] = old_keys[at[same]] == add_keys[same]
    if same.any():
        take = ~same
        old_at = at[same]
        new_received, was_received = add_received[same], old_received[old_at]
        wins = new_received > was_received
        ties = new_received == was_received
        if ties.any():  # read_recent's order: the later name in the day's folder
            rank = np.empty(len(paths), dtype=np.intp)
            rank[sorted(range(len(paths)), key=paths.__getitem__)] = np.arange(len(paths))
            wins |= ties & (rank[add_ids[same]] > rank[old_ids[old_at]])
        take[same] = wins
        keep = np.ones(len(old_keys), dtype=bool)
        keep[old_at[wins]] = False
        # A new row that wins replaces the old one; one that loses is not added.
        add_keys, add_ids, add_received = add_keys[take], add_ids[take], add_received[take]
        add_values = {name: v[take] for name, v in add_values.items()}
        old_keys, old_ids, old_received = old_keys[keep], old_ids[keep], old_received[keep]
        old_values = {name: v[keep] for name, v in old_values.items()}
    # The merged order: each new row goes before the first old row of a greater key (new
    # rows of one place keep their order). np.insert copies the runs between the places
    # whole: half the time of scattering through a mask at 69,000 rows.
    before = np.searchsorted(old_keys, add_keys)

    def merged(old_side: np.ndarray, new_side: np.ndarray) -> np.ndarray:
        return np.insert(old_side, before, new_side)

    keys = merged(old_keys, add_keys)
    observed = Observed(  # a row replaced is of the same series: no name goes
        names,
        (keys >> TIME_BITS).astype(np.intp, copy=False),  # cheaper than scattering them
        keys & ((1 << TIME_BITS) - 1),
        {name: merged(v, add_values[name]) for name, v in old_values.items()},
    )
    return _Held(
        held.query,
        held.low,
        files,
        paths,
        observed,
        keys,
        merged(old_received, add_received),
        merged(old_ids, add_ids),
    )


def _dropping_unseen(observed: Observed) -> Observed:
    """`observed` without the names no row has any more (read_recent names only those)."""
    seen = np.bincount(observed.codes, minlength=len(observed.names)) > 0
    if seen.all():
        return observed
    renumber = np.cumsum(seen) - 1
    return Observed(
        np.asarray(observed.names[seen].tolist(), dtype=str),
        renumber[observed.codes].astype(np.intp),
        observed.times,
        observed.values,
    )
