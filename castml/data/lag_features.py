"""Lags and rolling means over a series' time-ordered rows: the one feature function a
forecast's training and serving both call (numpy only; bundled into the pyfunc).

A series is laid on its regular time grid first (`on_grid`): one slot per step, NaN in a
slot no row fills, so a lag of k rows always means k steps back in time, even across a gap.
`design_rows` then builds, for each forecast origin (the newest row known) and each horizon
h, one design row:

- `horizon`: h, which routes the row to that horizon's model (one model per horizon);
- calendar parts of the time being forecast, origin + h steps (known in advance);
- each lag: the value `lag` rows before its anchor, the target row (origin + h) or the
  origin. A target-anchored lag shorter than the horizon lies after the origin, unknown
  when the forecast is made: that horizon's rows hold NaN for it (its model never sees a
  value there, in training or serving);
- each rolling mean: the mean of the present values of the `window` rows ending `lag`
  rows before its anchor (NaN when none is present).

Rows are never looped over in Python: every feature is one gather over all origins. A
rolling window's values are gathered into a C-contiguous `[rows, window]` block and summed
along its rows, so a row's sum does not depend on which other rows were computed with it:
the training path (every origin of years of data) and the serving path (one origin) give
the same bits (`tests/unit/test_forecast_parity.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from castml.data.calendar_features import CalendarPart, calendar_part
from castml.errors import CastmlError

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
HORIZON_COLUMN = "horizon"
PLAN_VERSION = 1


class HistoryError(CastmlError):
    """A series' history cannot feed a forecast (a 422 on a server, one line in the CLI)."""

    status_code = 422


class HistoryTooShortError(HistoryError):
    """Fewer rows than the features need, ending at the forecast origin."""

    def __init__(self, needed: int, given: int, detail: str = "") -> None:
        self.needed, self.given = needed, given
        super().__init__(
            f"history too short: a forecast needs the {needed} rows ending at its origin, "
            f"given {given}" + (f" ({detail})" if detail else "")
        )


class HistoryGapError(HistoryError):
    """Rows missing inside the history window, more in a row than the spec tolerates."""

    def __init__(self, start: str, end: str, missing: int, tolerated: int) -> None:
        self.start, self.end, self.missing, self.tolerated = start, end, missing, tolerated
        super().__init__(
            f"history has a gap of {missing} missing row(s) from {start} to {end} "
            f"(at most {tolerated} tolerated): no forecast from it"
        )


class HistoryInvalidError(HistoryError):
    """A history that is not a series: columns missing, unequal lengths, times unordered."""


@dataclass(frozen=True)
class LagFeature:
    """One lag or rolling mean of `source` (see the module docstring for `anchor`)."""

    name: str
    source: str
    kind: Literal["lag", "rolling_mean"]
    lag: int
    window: int  # 1 for a lag
    anchor: Literal["target", "origin"]

    def newest(self, horizon: int) -> int | None:
        """Rows from the origin back to the newest row read at `horizon`; None when that row
        lies after the origin (unknown at forecast time)."""
        back = self.lag - horizon if self.anchor == "target" else self.lag
        return back if back >= 0 else None

    def reach(self, horizon: int) -> int:
        """Rows from the origin back to the oldest row read at `horizon` (-1: none read)."""
        newest = self.newest(horizon)
        return -1 if newest is None else newest + self.window - 1

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> LagFeature:
        return cls(
            str(raw["name"]),
            str(raw["source"]),
            raw["kind"],
            int(raw["lag"]),
            int(raw["window"]),
            raw["anchor"],
        )


@dataclass(frozen=True)
class LagPlan:
    """Everything `design_rows` needs: what a forecast model carries as `forecast.json`."""

    time_column: str
    target: str
    exogenous: tuple[str, ...]  # raw numeric columns a history holds beside the target
    step_seconds: int
    horizons: tuple[int, ...]
    calendar: tuple[CalendarPart, ...]
    lags: tuple[LagFeature, ...]
    max_gap: int = 0
    relative_to: str | None = None  # the models learn the target relative to this column
    floor: float | None = None  # the lowest value a forecast takes (0 for counts)
    # Derived once (serving builds rows per call): the rows one forecast reads, and every
    # plain lag (window 1) as arrays: its source's position in `plain_sources`, its design
    # column, its lag and whether it counts from the target.
    _history_rows: int = field(init=False, repr=False, compare=False)
    _plain: tuple[tuple[str, ...], Ints, Ints, Ints, npt.NDArray[np.bool_]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        reach = max(f.reach(h) for f in self.lags for h in self.horizons) if self.lags else 0
        object.__setattr__(self, "_history_rows", 1 + max(reach, 0))
        first = 1 + len(self.calendar)
        plain = [(first + i, f) for i, f in enumerate(self.lags) if f.window == 1]
        sources = tuple(dict.fromkeys(f.source for _, f in plain))
        object.__setattr__(
            self,
            "_plain",
            (
                sources,
                np.asarray([sources.index(f.source) for _, f in plain], dtype=np.intp),
                np.asarray([i for i, _ in plain], dtype=np.intp),
                np.asarray([f.lag for _, f in plain], dtype=np.int64),
                np.asarray([f.anchor == "target" for _, f in plain], dtype=bool),
            ),
        )

    @property
    def columns(self) -> list[str]:
        """The design matrix's columns, in order."""
        return [HORIZON_COLUMN, *(c.name for c in self.calendar), *(f.name for f in self.lags)]

    @property
    def relative_column(self) -> int | None:
        """The design column the target is learned relative to (None: the target itself)."""
        return None if self.relative_to is None else self.columns.index(self.relative_to)

    @property
    def sources(self) -> tuple[str, ...]:
        """The raw value columns a history must hold: the target, then the exogenous ones."""
        return (self.target, *self.exogenous)

    @property
    def history_rows(self) -> int:
        """Rows one forecast reads, ending at (and including) its origin."""
        return self._history_rows

    def to_json(self) -> dict[str, Any]:
        return {
            "version": PLAN_VERSION,
            "time_column": self.time_column,
            "target": self.target,
            "exogenous": list(self.exogenous),
            "step_seconds": self.step_seconds,
            "horizons": list(self.horizons),
            "calendar": [c.to_json() for c in self.calendar],
            "lags": [f.to_json() for f in self.lags],
            "max_gap": self.max_gap,
            "relative_to": self.relative_to,
            "floor": self.floor,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> LagPlan:
        if raw.get("version") != PLAN_VERSION:
            raise CastmlError(f"forecast plan version {raw.get('version')} is not supported")
        return cls(
            time_column=str(raw["time_column"]),
            target=str(raw["target"]),
            exogenous=tuple(str(c) for c in raw["exogenous"]),
            step_seconds=int(raw["step_seconds"]),
            horizons=tuple(int(h) for h in raw["horizons"]),
            calendar=tuple(CalendarPart.from_json(c) for c in raw["calendar"]),
            lags=tuple(LagFeature.from_json(f) for f in raw["lags"]),
            max_gap=int(raw.get("max_gap", 0)),
            relative_to=raw.get("relative_to"),
            floor=raw.get("floor"),
        )


def seconds(times: npt.NDArray[Any]) -> Ints:
    """datetime64 (any unit, no NaT) or numbers as whole seconds since the epoch (UTC)."""
    times = np.asarray(times)
    if times.dtype.kind == "M":
        if np.isnat(times).any():
            raise HistoryInvalidError("the time column holds a missing time (NaT)")
        return np.asarray(times.astype("datetime64[s]").astype(np.int64))
    if times.dtype.kind in "iu":
        return np.asarray(times, dtype=np.int64)
    if times.dtype.kind == "f" and np.isfinite(times).all():
        return np.asarray(np.floor(times), dtype=np.int64)
    raise HistoryInvalidError(f"the time column must be datetime64, not {times.dtype}")


def stamp(second: int) -> str:
    return str(np.datetime64(int(second), "s"))


def on_grid(
    times: Ints, values: Mapping[str, npt.NDArray[Any]], start: int, length: int, step: int
) -> tuple[dict[str, Floats], npt.NDArray[np.bool_]]:
    """`values` laid on the `length` slots from `start`, `step` seconds apart: NaN where no
    row falls; rows before `start` are left out. Also whether each slot holds a row.

    `times` must be strictly increasing, on the grid and not after its last slot.
    """
    keep = times >= start
    offsets = times[keep] - start
    slots = offsets // step
    if (offsets % step).any() or (np.diff(times) <= 0).any():
        raise HistoryInvalidError(
            f"times must increase by whole steps of {step} s (found unordered, repeated or "
            "off-step times)"
        )
    if slots.size and slots[-1] >= length:
        raise HistoryInvalidError("times run past the end of the grid")
    filled = np.zeros(length, dtype=bool)
    filled[slots] = True
    grid: dict[str, Floats] = {}
    for name, column in values.items():
        out = np.full(length, np.nan)
        out[slots] = np.asarray(column, dtype=np.float64)[keep]
        grid[name] = out
    return grid, filled


def design_rows(
    grid: Mapping[str, Floats], origins: Ints, origin_seconds: Ints, plan: LagPlan
) -> Floats:
    """The design rows of every origin at every horizon, horizon-major: rows
    `[i * len(origins) : (i + 1) * len(origins)]` are horizon `plan.horizons[i]`'s.

    `grid`: each source's values on the series' grid (`on_grid`); `origins`: slots in it;
    `origin_seconds`: their times. Every slot a feature reads must lie inside the grid
    (an origin needs `plan.history_rows - 1` slots before it).
    """
    origins = np.asarray(origins, dtype=np.int64)
    if origins.size and origins.min() < plan.history_rows - 1:
        raise HistoryTooShortError(plan.history_rows, int(origins.min()) + 1)
    n, count = len(origins), len(plan.horizons)
    horizons = np.repeat(np.asarray(plan.horizons, dtype=np.int64), n)
    at = np.broadcast_to(origins, (count, n)).reshape(-1)
    out = np.empty((n * count, len(plan.columns)), dtype=np.float64)
    out[:, 0] = horizons
    starts = np.broadcast_to(np.asarray(origin_seconds, dtype=np.int64), (count, n)).reshape(-1)
    target_seconds = (starts + horizons * plan.step_seconds).astype(np.float64)
    for index, part in enumerate(plan.calendar, start=1):
        out[:, index] = calendar_part(target_seconds, part)
    sources, source_of, columns, lags, from_target = plan._plain
    if len(columns):
        # Every plain lag at every horizon: a gather per column from its source's grid
        # (stacking the sources first copied every grid whole: most of a job's features).
        back = lags[None, :] - np.where(from_target[None, :], horizons[:, None], 0)
        unknown = back < 0
        slots = at[:, None] - np.where(unknown, 0, back)
        for j, column in enumerate(columns.tolist()):
            values = grid[sources[source_of[j]]][slots[:, j]]
            values[unknown[:, j]] = np.nan
            out[:, column] = values
    first = 1 + len(plan.calendar)
    for index, feature in enumerate(plan.lags, start=first):
        if feature.window == 1:
            continue
        if feature.anchor == "origin":  # the same at every horizon: computed once
            mean = _window_mean(grid[feature.source], origins, feature.lag, feature.window)
            out[:, index] = np.broadcast_to(mean, (count, n)).reshape(-1)
            continue
        for block, horizon in enumerate(plan.horizons):
            newest = feature.newest(horizon)
            rows = slice(block * n, (block + 1) * n)
            out[rows, index] = (
                np.nan
                if newest is None
                else _window_mean(grid[feature.source], origins, newest, feature.window)
            )
    return out


def _window_mean(values: Floats, origins: Ints, newest: int, window: int) -> Floats:
    """The mean of the present values among the `window` slots ending `newest` slots before
    each origin (NaN when none is present)."""
    ends = origins - newest
    # One C-contiguous [rows, window] block, each row summed on its own: the same bits
    # whichever other origins are computed alongside (training's all, serving's one).
    block = values[ends[:, None] - np.arange(window)[::-1]]
    total = block.sum(axis=1)
    if not np.isnan(total).any():  # every slot present: the same sums, no masking
        return np.asarray(total / window, dtype=np.float64)
    present = ~np.isnan(block)
    count = present.sum(axis=1)
    total = np.where(present, block, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def check_window(
    times: Ints, filled: npt.NDArray[np.bool_], start: int, plan: LagPlan, given: int
) -> None:
    """Refuse a history window that would feed a forecast wrong or made-up values: too few
    rows before the origin, or a gap longer than the spec's `max_gap`."""
    needed = plan.history_rows
    if times[0] > start:
        covered = int((times[-1] - times[0]) // plan.step_seconds) + 1
        raise HistoryTooShortError(
            needed,
            given,
            f"they cover {covered} step(s) of {plan.step_seconds} s from {stamp(int(times[0]))};"
            f" the window starts at {stamp(start)}",
        )
    if filled.all():
        return
    longest, first = _longest_gap(filled)
    if longest > plan.max_gap:
        step = plan.step_seconds
        raise HistoryGapError(
            stamp(start + first * step),
            stamp(start + (first + longest - 1) * step),
            longest,
            plan.max_gap,
        )


def _longest_gap(filled: npt.NDArray[np.bool_]) -> tuple[int, int]:
    """(length, first slot) of the longest run of empty slots."""
    edges = np.diff(np.concatenate([[0], (~filled).astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    lengths = ends - starts
    best = int(np.argmax(lengths))
    return int(lengths[best]), int(starts[best])


def history_window(
    history: Mapping[str, npt.NDArray[Any]], plan: LagPlan
) -> tuple[dict[str, Floats], int]:
    """One series' latest rows (ending at the forecast origin) on the grid of the
    `plan.history_rows` slots the features read, and the origin's time in seconds.

    Raises `HistoryInvalidError`, `HistoryTooShortError` or `HistoryGapError`.
    """
    names = (plan.time_column, *plan.sources)
    absent = [n for n in names if n not in history]
    if absent:
        raise HistoryInvalidError(f"history lacks column(s): {', '.join(absent)}")
    times = seconds(history[plan.time_column])
    lengths = {len(times), *(len(np.asarray(history[n])) for n in plan.sources)}
    if len(lengths) > 1:
        raise HistoryInvalidError(f"history columns differ in length: {sorted(lengths)}")
    if times.size == 0:
        raise HistoryTooShortError(plan.history_rows, 0)
    width, origin = plan.history_rows, int(times[-1])
    start = origin - (width - 1) * plan.step_seconds
    values = {n: np.asarray(history[n]) for n in plan.sources}
    grid, filled = on_grid(times, values, start, width, plan.step_seconds)
    check_window(times, filled, start, plan, len(times))
    return grid, origin


def stacked_windows(
    histories: Sequence[Mapping[str, npt.NDArray[Any]]], plan: LagPlan
) -> tuple[dict[str, Floats], Ints, Ints]:
    """Several series' windows end to end on one grid: (grid, origin slots, origin seconds),
    so `design_rows` builds every series' rows in one pass."""
    windows = [history_window(h, plan) for h in histories]
    width = plan.history_rows
    grid = {n: np.concatenate([w[0][n] for w in windows]) for n in plan.sources}
    origins = np.arange(1, len(windows) + 1, dtype=np.int64) * width - 1
    return grid, origins, np.asarray([w[1] for w in windows], dtype=np.int64)


def grid_windows(
    grid: Mapping[str, npt.NDArray[np.float64]],
    filled: npt.NDArray[np.bool_],
    origin_seconds: npt.NDArray[Any],
    plan: LagPlan,
) -> tuple[dict[str, Floats], Ints, Ints]:
    """`stacked_windows` for windows already on their grids: `grid[source]` and `filled`
    are `[S, plan.history_rows]` (NaN, and False, where a slot holds no row), the last slot
    each series' origin at `origin_seconds`. Each window is checked as `check_window`
    checks one history (the first series refused raises); the check and the layout are
    numpy over all series, with no per-series Python for a window without gaps.
    """
    width = plan.history_rows
    filled = np.asarray(filled, dtype=bool)
    absent = [n for n in plan.sources if n not in grid]
    if absent:
        raise HistoryInvalidError(f"history lacks column(s): {', '.join(absent)}")
    count = len(filled)
    shapes = {filled.shape, *(np.shape(grid[n]) for n in plan.sources)}
    if filled.ndim != 2 or shapes != {(count, width)}:
        raise HistoryInvalidError(
            f"windows must be [series, {width}] for every column, got {sorted(shapes)}"
        )
    starts = np.asarray(origin_seconds, dtype=np.int64) - (width - 1) * plan.step_seconds
    if count and not filled[:, -1].all():
        raise HistoryInvalidError("a window's last slot (its origin) holds no row")
    for row in np.flatnonzero(~filled.all(axis=1)).tolist():  # only windows with a hole
        held = np.flatnonzero(filled[row])
        times = int(starts[row]) + held * plan.step_seconds
        check_window(times, filled[row], int(starts[row]), plan, len(held))
    flat = {n: np.ascontiguousarray(grid[n], dtype=np.float64).reshape(-1) for n in plan.sources}
    origins = np.arange(1, count + 1, dtype=np.int64) * width - 1
    return flat, origins, np.asarray(origin_seconds, dtype=np.int64)


def parts_of(plan_calendar: Sequence[Any]) -> tuple[CalendarPart, ...]:
    """Spec calendar entries (name, source, part, country, subdivision) as `CalendarPart`s."""
    return tuple(
        CalendarPart(d.name, d.source, d.part, d.country, d.subdivision) for d in plan_calendar
    )


def series_design(
    times: Ints, values: Mapping[str, npt.NDArray[Any]], plan: LagPlan
) -> tuple[Floats, Floats, Ints]:
    """Training's side, for one whole series: the design rows of every origin with a full
    history and a known target, per horizon, and those targets and target times.

    Returns `(x, y, target_seconds)`, horizon-major like `design_rows`; `y` is NaN where the
    target row is missing, and for an origin serving would refuse (no row at the origin, or
    a gap longer than `plan.max_gap` in its window): callers drop those rows.
    """
    step = plan.step_seconds
    length = int((times[-1] - times[0]) // step) + 1
    grid, filled = on_grid(times, values, int(times[0]), length, step)
    first = plan.history_rows - 1
    origins = np.arange(first, length, dtype=np.int64)
    origin_seconds = times[0] + origins * step
    x = design_rows(grid, origins, origin_seconds, plan)
    usable = filled[origins] & ~_spans_long_gap(filled, origins, plan)
    target = grid[plan.target]
    ys, stamps = [], []
    for horizon in plan.horizons:
        ahead = origins + horizon
        inside = (ahead < length) & usable
        ys.append(np.where(inside, target[np.minimum(ahead, length - 1)], np.nan))
        stamps.append(origin_seconds + horizon * step)
    return x, np.concatenate(ys), np.concatenate(stamps)


def _spans_long_gap(
    filled: npt.NDArray[np.bool_], origins: Ints, plan: LagPlan
) -> npt.NDArray[np.bool_]:
    """Whether each origin's window holds more than `plan.max_gap` empty slots in a row, as
    `check_window` counts them in serving: a gap cut by the window's start counts only
    the part inside it."""
    window = plan.history_rows
    refused = np.zeros(len(filled), dtype=bool)
    edges = np.diff(np.concatenate([[0], (~filled).astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):  # per gap, not row
        after = np.arange(end, min(end + window - 1, len(filled)))  # origins that see it
        inside = end - np.maximum(start, after - window + 1)
        refused[after[inside > plan.max_gap]] = True
    return refused[origins]
