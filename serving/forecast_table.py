"""One forecast run's output as columns: what the job scores, caches and returns.

A run forecasts S series at H horizons. Holding them as arrays (series names, window ends,
`values[S, H]`) rather than S x H `ForecastRecord` objects lets the cache write be built in
one pass of byte formatting: at 400 series, making the records and encoding them through
orjson took 1.4 ms of a run whose model call takes 6 ms. `records()` still gives the
records, for callers that want them one by one.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import orjson

from castml.protocol.forecast_record import (
    HOUR_S,
    ForecastRecord,
    forecast_key,
    iso,
    record_template,
)


@dataclass(frozen=True)
class ForecastTable:
    """Forecasts of `series` (each from its `window_end`, epoch seconds) at `horizons`."""

    project: str
    version: str
    horizons: tuple[int, ...]
    series: list[str]
    window_end: npt.NDArray[np.float64]  # [S]
    values: npt.NDArray[np.float64]  # [S, H]
    made_at: float
    ttl_s: int

    def __len__(self) -> int:
        """Cells: one per series and horizon, each a cache key."""
        return len(self.series) * len(self.horizons)

    def records(self) -> list[ForecastRecord]:
        ends = self.window_end.tolist()
        return [
            ForecastRecord(
                self.project, name, horizon, value, self.version, self.made_at, end, self.ttl_s
            )
            for name, end, row in zip(self.series, ends, self.values.tolist(), strict=True)
            for horizon, value in zip(self.horizons, row, strict=True)
        ]

    def cells(self) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) of every cell, the value being `ForecastRecord.encode`'s bytes."""
        for key, value, _ in self._parts():
            yield key, value

    def set_commands(self) -> bytes:
        """`SET <key> <value> EX <ttl>` of every cell, as RESP bytes, end to end.

        Written for speed (a run's 800 cells in about 0.4 ms; through records and orjson
        it took 1.4 ms): the values' texts come from one orjson call on the whole list; a
        cell's command is joined from the bytes before its value (its key and its record's
        opening: the same run after run, so kept), its value and the bytes after it (one
        per window end and horizon); lengths are summed, not measured on a joined value."""
        ttl = b"%d" % self.ttl_s
        tail = b"\r\n$2\r\nEX\r\n$%d\r\n%b\r\n" % (len(ttl), ttl)
        template = record_template(self.project, self.version, self.made_at, self.ttl_s)
        pieces = _record_pieces(template)
        opening, closing = pieces[:3], pieces[3:]
        prefix = self._key_prefix()
        heads = _heads_of(prefix, opening, self.horizons)
        afters: dict[bytes, list[bytes]] = {}
        out: list[bytes] = []
        append = out.append
        for name, end, target, row in self._rows():
            cell = heads.get(name)
            if cell is None:  # a series not seen by an earlier run: its heads, kept
                cell = heads[name] = _cell_heads(prefix, name, self.horizons, opening)
            after = afters.get(end)
            if after is None:
                after = afters[end] = [
                    closing[0] + end + closing[1] + target[h] + closing[2] for h in self.horizons
                ]
            for (head, before), closed, text in zip(cell, after, row, strict=True):
                size = len(before) + len(text) + len(closed)
                append(b"".join((head, b"%d\r\n" % size, before, text, closed, tail)))
        return b"".join(out)

    def _key_prefix(self) -> bytes:
        return forecast_key(self.project, "", 0)[:-2].encode()  # b"forecast:<project>:"

    def _rows(self) -> Iterator[tuple[str, bytes, dict[int, bytes], list[bytes]]]:
        """Per series: its name, its window end's ISO bytes, its target times' by
        horizon, and its values as JSON number texts (one per horizon)."""
        ends = self.window_end.tolist()
        end_iso = {end: iso(end).encode() for end in set(ends)}
        targets = {
            end: {h: iso(end + h * HOUR_S).encode() for h in self.horizons} for end in end_iso
        }
        # Every value's JSON text (`json_number`'s) from one orjson call on the whole list:
        # 0.02 ms for 800, where `repr` of each took 0.4 ms.
        flat = self.values.ravel().tolist()
        texts = orjson.dumps(flat)[1:-1].split(b",") if flat else []
        width = len(self.horizons)
        for i, (name, end) in enumerate(zip(self.series, ends, strict=True)):
            row = texts[i * width : (i + 1) * width]
            yield name, end_iso[end], targets[end], row

    def _parts(self) -> Iterator[tuple[bytes, bytes, int]]:
        template = record_template(self.project, self.version, self.made_at, self.ttl_s)
        prefix = self._key_prefix()
        for name, end, target, row in self._rows():
            series_json = orjson.dumps(name)
            for horizon, text in zip(self.horizons, row, strict=True):
                value = template % (series_json, horizon, text, end, target[horizon])
                yield prefix + name.encode() + b":%d" % horizon, value, horizon

    def by_target(self) -> Iterator[tuple[int, int, list[str], list[float]]]:
        """(horizon, target epoch seconds, series, values): the cells grouped as they wait
        for their observation (one group per horizon and window end; usually one end)."""
        ends = self.window_end.astype(np.int64)
        for end in np.unique(ends).tolist():
            rows = np.flatnonzero(ends == end)
            names = [self.series[i] for i in rows.tolist()]
            for j, horizon in enumerate(self.horizons):
                yield horizon, end + horizon * HOUR_S, names, self.values[rows, j].tolist()


_MARKS = (b"\x00s\x00", 918273645, b"\x00v\x00", b"\x00e\x00", b"\x00t\x00")


@functools.lru_cache(maxsize=64)
def _record_pieces(template: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes, bytes]:
    """`record_template`'s constant bytes around its slots (series, horizon, value,
    window_end, target_time): `%` escapes resolved, so a value is the pieces and the slots'
    bytes in turn. The marks are bytes no JSON text holds (orjson escapes control bytes)."""
    marked = template % _MARKS
    pieces: list[bytes] = []
    for mark in (b"\x00s\x00", b"918273645", b"\x00v\x00", b"\x00e\x00", b"\x00t\x00"):
        before, found, marked = marked.partition(mark)
        if not found:
            raise ValueError("a record template without its slots")
        pieces.append(before)
    c0, c1, c2, c3, c4 = pieces
    return c0, c1, c2, c3, c4, marked


_HEADS: dict[tuple[bytes, tuple[bytes, ...], tuple[int, ...]], dict[str, list[Head]]] = {}
Head = tuple[bytes, bytes]


def _heads_of(
    prefix: bytes, opening: tuple[bytes, ...], horizons: tuple[int, ...]
) -> dict[str, list[Head]]:
    """The kept cell heads of one project's keys and records (series name -> its cells'),
    the same run after run: a run only joins its values to them (at most 16 projects and
    100,000 series are kept)."""
    slot = (prefix, opening, horizons)
    found = _HEADS.get(slot)
    if found is None or len(found) >= 100_000:
        if len(_HEADS) >= 16:
            _HEADS.clear()
        found = _HEADS[slot] = {}
    return found


def _cell_heads(
    prefix: bytes, name: str, horizons: tuple[int, ...], opening: tuple[bytes, ...]
) -> list[Head]:
    """Per horizon: a cell's `SET` up to its value's length, and its record up to its value."""
    series_json = orjson.dumps(name)
    out: list[Head] = []
    for horizon in horizons:
        key = prefix + name.encode() + b":%d" % horizon
        head = b"*5\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$" % (len(key), key)
        out.append((head, opening[0] + series_json + opening[1] + b"%d" % horizon + opening[2]))
    return out
