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
from serving.forecast_history import Window

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


def _observed(window: Window, target: str) -> dict[int, float]:
    times = window.columns[next(iter(window.columns))].astype("datetime64[s]").astype(np.int64)
    return dict(zip(times.tolist(), window.columns[target].tolist(), strict=True))


def realise(
    client: redis.Redis,
    project: str,
    windows: Sequence[Window],
    horizons: Sequence[int],
    target: str,
) -> list[Realised]:
    """Match waiting forecasts with the windows' observations; add their errors to the sums."""
    if not windows:
        return [Realised(h, 0, 0.0, 0.0) for h in horizons]
    with client.pipeline(transaction=False) as pipe:
        for horizon in horizons:
            pipe.hgetall(log_key(project, horizon))
        waiting: list[dict[bytes, bytes]] = pipe.execute()
    by_series = {w.series: w for w in windows}
    starts = {
        w.series: int(w.columns[next(iter(w.columns))][0].astype("datetime64[s]").astype(np.int64))
        for w in windows
    }
    oldest = min(starts.values())
    observed: dict[str, dict[int, float]] = {}
    out: list[Realised] = []
    with client.pipeline(transaction=False) as pipe:
        for horizon, pending in zip(horizons, waiting, strict=True):
            errors: list[float] = []
            done: list[bytes] = []
            for field, value in pending.items():
                series, _, at_text = field.decode().rpartition("@")
                at = int(at_text)
                if series in by_series:
                    if series not in observed:
                        observed[series] = _observed(by_series[series], target)
                    actual = observed[series].get(at)
                    if actual is not None:
                        errors.append(float(value) - actual)
                        done.append(field)
                    elif at < starts[series]:  # fell out of its window unobserved
                        done.append(field)
                elif at < oldest:  # a series no longer observed
                    done.append(field)
            if done:
                pipe.hdel(log_key(project, horizon), *done)
            found = np.asarray(errors)
            realised = Realised(
                horizon, len(errors), float(np.abs(found).sum()), float((found**2).sum())
            )
            if realised.matched:
                pipe.hincrby(error_key(project), f"h{horizon}:n", realised.matched)
                pipe.hincrbyfloat(error_key(project), f"h{horizon}:abs", realised.abs_sum)
                pipe.hincrbyfloat(error_key(project), f"h{horizon}:sq", realised.sq_sum)
            out.append(realised)
        pipe.execute()
    return out


def remember(client: redis.Redis, records: Sequence[ForecastRecord]) -> None:
    """Each written forecast waits for its target hour's observation."""
    by_horizon: dict[int, dict[str, str]] = {}
    for record in records:
        field = f"{record.series}@{int(record.target_time)}"
        by_horizon.setdefault(record.horizon, {})[field] = repr(record.value)
    with client.pipeline(transaction=False) as pipe:
        for horizon, fields in by_horizon.items():
            key = log_key(records[0].project, horizon)
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]  # str -> str is fine
            pipe.expire(key, horizon * 3600 + WAIT_EXTRA_S)
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
