"""Calendar parts of a datetime, in numpy: the one function training and serving both call.

Input is what the encoder makes of a datetime: seconds since the Unix epoch (UTC), NaN
where a value is missing and refused. Output is one float64 column per part:

- hour 0-23, day_of_week 0-6 (Monday 0), month 1-12;
- holiday 1.0 on a public holiday of the configured country (and subdivision), else 0.0,
  from the `holidays` package (its rules are code in the wheel: no network).

A missing input gives NaN, never a made-up part.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from castml.errors import SpecError

SECONDS_PER_HOUR = 3_600
SECONDS_PER_DAY = 86_400
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday is 0)
Part = Literal["hour", "day_of_week", "month", "holiday"]


@dataclass(frozen=True)
class CalendarPart:
    """One derived calendar column: `part` of the datetime feature `source`."""

    name: str
    source: str
    part: Part
    country: str | None = None
    subdivision: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "part": self.part,
            "country": self.country,
            "subdivision": self.subdivision,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CalendarPart:
        return cls(raw["name"], raw["source"], raw["part"], raw["country"], raw["subdivision"])


def calendar_part(seconds: npt.NDArray[np.float64], part: CalendarPart) -> npt.NDArray[np.float64]:
    """`part` of each timestamp in `seconds` (since the epoch, UTC); NaN stays NaN."""
    seconds = np.asarray(seconds, dtype=np.float64)
    missing = np.isnan(seconds)
    whole = np.floor(np.where(missing, 0.0, seconds)).astype(np.int64)
    days = np.floor_divide(whole, SECONDS_PER_DAY)
    if part.part == "hour":
        values = np.floor_divide(whole % SECONDS_PER_DAY, SECONDS_PER_HOUR)
    elif part.part == "day_of_week":
        values = (days + EPOCH_WEEKDAY) % 7
    elif part.part == "month":
        values = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12 + 1
    else:
        values = _holiday_flags(days[~missing], part, len(seconds), missing)
    out = values.astype(np.float64)
    out[missing] = np.nan
    return out


def calendar_parts(
    seconds_by_source: dict[str, npt.NDArray[np.float64]], parts: Sequence[CalendarPart]
) -> list[npt.NDArray[np.float64]]:
    """Every part, in order, from its source's seconds."""
    return [calendar_part(seconds_by_source[p.source], p) for p in parts]


def _holiday_flags(
    days: npt.NDArray[np.int64], part: CalendarPart, rows: int, missing: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int64]:
    flags = np.zeros(rows, dtype=np.int64)
    if days.size == 0:
        return flags
    years = days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    known = np.concatenate(
        [
            _holiday_days(part.country or "", part.subdivision, int(year))
            for year in np.unique(years)
        ]
    )
    flags[~missing] = np.isin(days, known)
    return flags


@functools.lru_cache(maxsize=256)
def _holiday_days(country: str, subdivision: str | None, year: int) -> npt.NDArray[np.int64]:
    """The public holidays of one country-year, as days since the epoch (cached: serving
    asks for the same year on every request)."""
    import holidays

    try:
        calendar = holidays.country_holidays(country, subdiv=subdivision, years=year)
    except NotImplementedError as exc:
        raise SpecError(
            f"holidays has no calendar for country '{country}'"
            + (f" subdivision '{subdivision}'" if subdivision else "")
            + f" ({exc})"
        ) from exc
    dates = np.asarray(sorted(calendar), dtype="datetime64[D]")
    return dates.astype(np.int64)
