"""Realised error: each served forecast against the observation of its target hour.

Observations are the forecasts' delayed labels (issue 14 §3). Every forecast the job writes
also waits in `forecast-log:<project>:<horizon>` (field `<series>@<target epoch seconds>`;
one hash per horizon, so a run costs a few Redis commands whatever the number of series).
At each run, the waiting forecasts whose target hour is now in their series' window are
matched with the observed value; their absolute and squared errors are added to the
per-horizon sums in `forecast-error:<project>` (what `/metrics` exposes, so a dashboard
plots the MAE and RMSE over any range) and they are dropped, as are those whose target
hour fell out of the window unobserved (a gap: never matched).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import redis

from castml.protocol.forecast_record import ForecastRecord, error_key, log_key
from serving.forecast_history import WindowBatch

WAIT_EXTRA_S = 48 * 3600  # a log key outlives its farthest target by this much


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


# Each log hash as one bulk string, `field\nvalue\n...`: one reply per horizon, not two
# per waiting forecast (redis-py parsed 1600 replies at 400 series in a third of a run).
# Fields are `<series>@<seconds>` and values `repr(float)`: neither holds a newline.
_WAITING_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = table.concat(redis.call('HGETALL', key), '\\n')
end
return out
"""


def _pairs(blob: bytes) -> dict[bytes, bytes]:
    items = blob.split(b"\n") if blob else []
    return dict(zip(items[0::2], items[1::2], strict=True))


def realise(
    client: redis.Redis,
    project: str,
    windows: WindowBatch,
    horizons: Sequence[int],
    target: str,
) -> list[Realised]:
    """Match waiting forecasts with the windows' observations; add their errors to the sums.

    The waiting fields are parsed in one pass each; the matching is numpy over them all:
    a forecast's target hour is a slot of its series' window grid.
    """
    if not len(windows):
        return [Realised(h, 0, 0.0, 0.0) for h in horizons]
    blobs: list[bytes] = client.eval(  # sync client: a list of bulk strings
        _WAITING_SCRIPT, len(horizons), *(log_key(project, h) for h in horizons)
    )
    waiting = [_pairs(blob) for blob in blobs]
    index = {name.encode(): i for i, name in enumerate(windows.series)}
    starts = windows.start_ms // 1000
    step = windows.step_ms // 1000
    width = windows.filled.shape[1]
    observed = windows.grid[target]
    oldest = int(starts.min())
    out: list[Realised] = []
    with client.pipeline(transaction=False) as pipe:
        for horizon, pending in zip(horizons, waiting, strict=True):
            fields = list(pending)
            parts = [field.rpartition(b"@") for field in fields]
            row = np.fromiter((index.get(p[0], -1) for p in parts), np.intp, len(parts))
            at = np.fromiter((int(p[2]) for p in parts), np.int64, len(parts))
            known = row >= 0
            row = np.where(known, row, 0)
            after = at - starts[row]
            slot = np.where(after >= 0, after // step, width)
            inside = known & (after % step == 0) & (slot < width)
            slot = np.where(inside, slot, 0)
            hit = inside & windows.filled[row, slot]
            stale = np.where(known, at < starts[row], at < oldest)  # never to be matched
            matched = np.flatnonzero(hit)
            forecasts = np.fromiter(
                (float(pending[fields[i]]) for i in matched.tolist()), np.float64, len(matched)
            )
            found = forecasts - observed[row[matched], slot[matched]]
            done = [fields[i] for i in np.flatnonzero(hit | (stale & ~hit)).tolist()]
            if done:
                pipe.hdel(log_key(project, horizon), *done)
            realised = Realised(
                horizon, len(found), float(np.abs(found).sum()), float((found**2).sum())
            )
            if realised.matched:
                pipe.hincrby(error_key(project), f"h{horizon}:n", realised.matched)
                pipe.hincrbyfloat(error_key(project), f"h{horizon}:abs", realised.abs_sum)
                pipe.hincrbyfloat(error_key(project), f"h{horizon}:sq", realised.sq_sum)
            out.append(realised)
        pipe.execute()
    return out


def waiting_fields(records: Sequence[ForecastRecord]) -> dict[int, dict[str, str]]:
    """horizon -> the log fields (`<series>@<target seconds>` -> value) of `records`."""
    by_horizon: dict[int, dict[str, str]] = {}
    for record in records:
        field = f"{record.series}@{int(record.target_time)}"
        by_horizon.setdefault(record.horizon, {})[field] = repr(record.value)
    return by_horizon


def wait_seconds(horizon: int) -> int:
    """How long a log hash outlives its last write."""
    return horizon * 3600 + WAIT_EXTRA_S


def remember(client: redis.Redis, records: Sequence[ForecastRecord]) -> None:
    """Each written forecast waits for its target hour's observation."""
    by_horizon = waiting_fields(records)
    with client.pipeline(transaction=False) as pipe:
        for horizon, fields in by_horizon.items():
            key = log_key(records[0].project, horizon)
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]  # str -> str is fine
            pipe.expire(key, wait_seconds(horizon))
        pipe.execute()


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
