"""Realised error: each served forecast against the observation of its target hour.

Observations are the forecasts' delayed labels (issue 14 §3). The forecasts one run makes
at one horizon from one window end wait together under one key,
`forecast-log:<project>:<horizon>:<target epoch seconds>` (a JSON object of `series` and
`values`, written in the run's transaction with an expiry; a later run from the same end
replaces it). At each run, the keys whose target hour can lie in some series' window are
read in one MGET; their forecasts whose target hour is observed are matched with the
value there, their absolute and squared errors are added to the per-horizon sums in
`forecast-error:<project>` (what `/metrics` exposes, so a dashboard plots the MAE and RMSE
over any range) and they are dropped, as are those whose target hour fell out of their
series' window unobserved (a gap: never matched). A key whose forecasts are all done is
deleted; one with some left is rewritten with those.

One key per target hour, not a hash field per forecast: a run writes and reads a few keys
whatever the number of series, and the matching is numpy over each key's arrays (with a
field per forecast, writing 800 fields took 1.2 ms of Redis time a run, and reading a
day of 24-hour forecasts meant parsing 9,600 fields).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import orjson

from castml.protocol.forecast_record import error_key, log_key
from serving.forecast_history import WindowBatch
from serving.forecast_resp import Reply, command_bytes
from serving.forecast_table import ForecastTable

log = logging.getLogger("serving.forecast")

WAIT_EXTRA_S = 48 * 3600  # a log key outlives its target by this much

# How the cache sends packed commands: (payload, count) -> their replies.
Request = Callable[[bytes, int], list[Reply]]


@dataclass(frozen=True)
class Realised:
    """This run's matches for one horizon."""

    horizon: int
    matched: int
    abs_sum: float
    sq_sum: float

    @property
    def mae(self) -> float:
        return self.abs_sum / self.matched if self.matched else float("nan")

    @property
    def rmse(self) -> float:
        return float(np.sqrt(self.sq_sum / self.matched)) if self.matched else float("nan")


def wait_seconds(horizon: int) -> int:
    """How long a log key outlives its write."""
    return horizon * 3600 + WAIT_EXTRA_S


def waiting_blob(series: Sequence[str], values: Sequence[float]) -> bytes:
    return orjson.dumps({"series": list(series), "values": list(values)})


def waiting_commands(table: ForecastTable) -> list[bytes]:
    """`SET <log key> <blob> EX <wait>` per horizon and window end of the table."""
    return [
        command_bytes(
            b"SET",
            log_key(table.project, horizon, target).encode(),
            waiting_blob(names, values),
            b"EX",
            b"%d" % wait_seconds(horizon),
        )
        for horizon, target, names, values in table.by_target()
    ]


def due_targets(windows: WindowBatch) -> list[int]:
    """Every target hour (epoch seconds) that lies in some series' window: those whose
    forecasts this run can match, or find fallen out of their window."""
    step = windows.step_ms // 1000
    starts, ends = windows.start_ms // 1000, windows.end_ms // 1000
    phases = starts % step
    if (phases == phases[0]).all():  # every series on the same minute of the hour
        return list(range(int(starts.min()), int(ends.max()) + 1, step))
    out: set[int] = set()
    for phase in np.unique(phases).tolist():  # series on another minute of the hour
        same = phases == phase
        out.update(range(int(starts[same].min()), int(ends[same].max()) + 1, step))
    return sorted(out)


@dataclass(frozen=True)
class Waiting:
    """The log keys a run asked Redis for (`waiting_keys`), whose replies it reads later."""

    due: list[tuple[int, int]]  # (horizon, target epoch seconds) of each key
    keys: list[bytes]

    @property
    def command(self) -> bytes:
        return command_bytes(b"MGET", *self.keys)


def waiting_keys(project: str, windows: WindowBatch, horizons: Sequence[int]) -> Waiting:
    """Every log key whose forecasts the windows can match now (or find unobservable)."""
    if not len(windows):
        return Waiting([], [])
    targets = due_targets(windows)
    due = [(h, t) for h in horizons for t in targets]
    prefix = log_key(project, 0, 0)[: -len("0:0")].encode()  # b"forecast-log:<project>:"
    return Waiting(due, [prefix + b"%d:%d" % pair for pair in due])


def realise(
    request: Request,
    project: str,
    windows: WindowBatch,
    horizons: Sequence[int],
    target: str,
) -> list[Realised]:
    """Match waiting forecasts with the windows' observations; add their errors to the sums."""
    waiting = waiting_keys(project, windows, horizons)
    blobs: list[Reply] = []
    if waiting.keys:
        (found,) = request(waiting.command, 1)
        assert isinstance(found, list)
        blobs = found
    out, updates = settle(project, windows, horizons, target, waiting, blobs)
    if updates:
        request(b"".join(updates), len(updates))
    return out


def settle(
    project: str,
    windows: WindowBatch,
    horizons: Sequence[int],
    target: str,
    waiting: Waiting,
    blobs: Sequence[Reply],
) -> tuple[list[Realised], list[bytes]]:
    """The matches of the waiting forecasts read (`blobs`, the MGET of `waiting.keys`), and
    the commands that record them: errors added to the sums, the keys done deleted, the
    keys partly done rewritten (the caller sends them, with its next commands)."""
    if not len(windows):
        return [Realised(h, 0, 0.0, 0.0) for h in horizons], []
    matcher = _Matcher(windows, target)
    sums = {h: [0.0, 0.0, 0.0] for h in horizons}  # matched, absolute and squared errors
    updates: list[bytes] = []
    for (horizon, at), key, blob in zip(waiting.due, waiting.keys, blobs, strict=True):
        if blob is None:
            continue
        try:
            if not isinstance(blob, bytes):
                raise TypeError(type(blob).__name__)
            body = orjson.loads(blob)
            names = [str(name) for name in body["series"]]
            values = np.asarray(body["values"], dtype=np.float64)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("forecast log %s is unreadable: dropped", key.decode())
            updates.append(command_bytes(b"DEL", key))
            continue
        hit, observed, done = matcher.match(names, at)
        found = values[hit] - observed
        sums[horizon][0] += len(found)
        sums[horizon][1] += float(np.abs(found).sum())
        sums[horizon][2] += float((found**2).sum())
        if done.all():
            updates.append(command_bytes(b"DEL", key))
        elif done.any():
            left = np.flatnonzero(~done).tolist()
            blob = waiting_blob([names[i] for i in left], values[left].tolist())
            updates.append(command_bytes(b"SET", key, blob, b"KEEPTTL"))
    out = [Realised(h, int(n), float(a), float(q)) for h, (n, a, q) in sums.items()]
    return out, updates + list(_sum_commands(project, out))


class _Matcher:
    """Forecasts of one target hour against the windows' observed values, in numpy."""

    def __init__(self, windows: WindowBatch, target: str) -> None:
        self.index = {name: i for i, name in enumerate(windows.series)}
        self.starts = windows.start_ms // 1000
        self.step = windows.step_ms // 1000
        self.width = windows.filled.shape[1]
        self.filled = windows.filled
        self.observed = windows.grid[target]
        self.oldest = int(self.starts.min())

    def match(self, names: list[str], at: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hit, the observed values of the hits, done): done = hit or never to be hit."""
        row = np.fromiter((self.index.get(n, -1) for n in names), np.intp, len(names))
        known = row >= 0
        row = np.where(known, row, 0)
        after = at - self.starts[row]
        slot = np.where(after >= 0, after // self.step, self.width)
        inside = known & (after % self.step == 0) & (slot < self.width)
        slot = np.where(inside, slot, 0)
        hit = inside & self.filled[row, slot]
        stale = np.where(known, at < self.starts[row], at < self.oldest)
        return hit, self.observed[row[hit], slot[hit]], hit | stale


def _sum_commands(project: str, realised: Sequence[Realised]) -> Iterator[bytes]:
    key = error_key(project).encode()
    for r in realised:
        if r.matched:
            h = r.horizon
            yield command_bytes(b"HINCRBY", key, b"h%d:n" % h, b"%d" % r.matched)
            yield command_bytes(b"HINCRBYFLOAT", key, b"h%d:abs" % h, repr(r.abs_sum).encode())
            yield command_bytes(b"HINCRBYFLOAT", key, b"h%d:sq" % h, repr(r.sq_sum).encode())


def error_sums(raw: Mapping[bytes | str, bytes | str]) -> dict[int, tuple[int, float, float]]:
    """`forecast-error:<project>` as horizon -> (n, abs sum, squared sum)."""
    out: dict[int, list[float]] = {}
    for field, value in raw.items():
        text = field.decode() if isinstance(field, bytes) else field
        name, _, kind = text.partition(":")
        if not name.startswith("h") or kind not in ("n", "abs", "sq"):
            continue
        slot = out.setdefault(int(name[1:]), [0.0, 0.0, 0.0])
        slot[("n", "abs", "sq").index(kind)] = float(value)
    return {h: (int(v[0]), v[1], v[2]) for h, v in sorted(out.items())}
