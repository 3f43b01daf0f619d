"""The collector's core: ack after the WAL fsync, join halves, flush to Parquet.

Flow: `submit` -> WAL queue -> one writer thread appends a group and fsyncs it
(group commit: while one fsync runs, the next group gathers) -> the futures
resolve on the event loop and the handlers answer 2xx -> requests and responses
are joined by `ce-id` in memory -> the flush task writes Parquet and releases WAL
segments.
Everything in memory is counted against one bound; past it, `submit` raises
`QueueFullError` (503) so the sender keeps the event and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from castml.errors import CastmlError
from monitoring.group_commit import GroupCommit
from monitoring.metrics import CollectorMetrics
from monitoring.parquet_sink import (
    FEEDBACK_DIR,
    FEEDBACK_SCHEMA,
    ORPHANS_DIR,
    day_of,
    inference_schema,
    partition,
    remove_temp_files,
    write_atomically,
)
from monitoring.settings import CollectorSettings
from monitoring.wal import WriteAheadLog


class QueueFullError(CastmlError):
    """The bounded in-memory queue is full; retry after a moment."""

    status_code = 503


class StorageUnavailableError(CastmlError):
    """The write-ahead log cannot be written (disk full, unwritable); nothing was acked."""

    status_code = 503


@dataclass(slots=True)
class Held:
    """A durable record waiting for Parquet."""

    record: dict[str, Any]
    segment: int
    key: str


@dataclass
class _Batches:
    joined: list[tuple[Held, Held]] = field(default_factory=list)
    feedback: list[Held] = field(default_factory=list)
    orphans: list[Held] = field(default_factory=list)


class Collector:
    def __init__(
        self, settings: CollectorSettings, features_of: Callable[[str], list[str]]
    ) -> None:
        self.settings = settings
        self.features_of = features_of
        self.logs_root = settings.logs_dir
        self.wal = WriteAheadLog(settings.wal_dir)
        self.metrics = CollectorMetrics(settings.gauges_dir)
        self._commit: GroupCommit[tuple[dict[str, Any], asyncio.Future[str]]] = GroupCommit(
            self.wal, self._durable, self._not_durable
        )
        self._unacked = 0  # submitted, not yet durable or refused
        # Segments below this one hold only accepted records (see _release_segments).
        self._accepted_floor = 0
        self._inflight: dict[str, asyncio.Future[str]] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._known_requests: OrderedDict[str, None] = OrderedDict()
        self._requests: dict[str, Held] = {}
        self._responses: dict[str, Held] = {}
        self._ready = _Batches()
        self._segment_live: dict[int, set[str]] = defaultdict(set)  # keys not yet in Parquet
        self._segment_all: dict[int, set[str]] = defaultdict(set)  # every key, for compaction
        self._flush_wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._flush_lock = asyncio.Lock()

    # --- life cycle -----------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self._recover)
        self._accepted_floor = self.wal.next_segment  # recovered segments are all accepted
        self._commit.start()
        self._tasks = [asyncio.create_task(self._flush_loop())]

    def _recover(self) -> None:
        committed = self.wal.committed(self.logs_root)
        remove_temp_files(self.logs_root)
        for segment, payload in self.wal.recover():
            record = orjson.loads(payload)
            key = str(record["key"])
            self._segment_all[segment].add(key)
            self._segment_live.setdefault(segment, set())  # so a fully written one is released
            if key in committed or key in self._seen:
                self._remember(key)
                continue
            self._accept(record, segment)
            self.metrics.recovered.inc()

    async def stop(self) -> None:
        """Write what is joined; unjoined halves stay in the WAL for the next start."""
        await self._commit.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(OSError):
            await self.flush(expire_orphans=False)
        self.wal.close()

    # --- ingest ---------------------------------------------------------------------
    @property
    def depth(self) -> int:
        ready = self._ready
        return (
            self._unacked
            + len(self._requests)
            + len(self._responses)
            + 2 * len(ready.joined)
            + len(ready.feedback)
            + len(ready.orphans)
        )

    def knows_request(self, request_id: str) -> bool:
        return request_id in self._known_requests

    async def submit(self, record: dict[str, Any]) -> str:
        """Make `record` durable; 'accepted', or 'duplicate' if its key was seen."""
        key = str(record["key"])
        if key in self._seen:
            self.metrics.duplicates.inc()
            return "duplicate"
        if key in self._inflight:  # the same event retried before the first ack
            self.metrics.duplicates.inc()
            await asyncio.shield(self._inflight[key])
            return "duplicate"
        if self.depth >= self.settings.collector_queue_size:
            self.metrics.rejected.labels("queue_full").inc()
            raise QueueFullError(f"collector queue is full ({self.depth} events); retry later")
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        self._unacked += 1
        self._commit.put(orjson.dumps(record), (record, future))
        try:
            # Unshielded (a shield per event showed in the profile): only a shutdown
            # cancels a handler, and `_durable` still accepts the record of a cancelled
            # future; a duplicate waiting on it then answers an error and is retried.
            return await future
        finally:
            self._inflight.pop(key, None)

    def _durable(
        self, group: list[tuple[dict[str, Any], asyncio.Future[str]]], segment: int
    ) -> None:
        """On the event loop, once the group's fsync returned: accept, then acknowledge."""
        self._unacked -= len(group)
        self._accepted_floor = max(self._accepted_floor, segment)
        received: dict[tuple[str, str], int] = defaultdict(int)
        for record, future in group:
            self._accept(record, segment)
            received[(str(record["k"]), str(record["p"]))] += 1
            if not future.done():
                future.set_result("accepted")
        # Counted per group: a `.labels()` lookup per event showed in the profile.
        for labels, count in received.items():
            self.metrics.received.labels(*labels).inc(count)
        joined, feedback = len(self._ready.joined), len(self._ready.feedback)
        # Flush once half the memory bound is writable, too (the default batch, 5,000
        # rows, is 10,000 events: the whole bound): a burst should meet a Parquet write
        # while there is room, not a 503. Unjoined halves alone never trigger it.
        settings = self.settings
        if (
            joined + feedback >= settings.collector_batch_rows
            or 2 * (2 * joined + feedback) >= settings.collector_queue_size
        ):
            self._flush_wakeup.set()

    def _not_durable(
        self, group: list[tuple[dict[str, Any], asyncio.Future[str]]], exc: OSError
    ) -> None:
        self._unacked -= len(group)
        self.metrics.write_errors.labels("wal").inc()
        self.metrics.rejected.labels("storage").inc(len(group))
        error = StorageUnavailableError(f"write-ahead log not writable: {exc.strerror}")
        for _, future in group:
            if not future.done():
                future.set_exception(error)

    def _remember(self, key: str) -> None:
        self._seen[key] = None
        if len(self._seen) > self.settings.collector_dedupe_keys:
            self._seen.popitem(last=False)

    def _accept(self, record: dict[str, Any], segment: int) -> None:
        held = Held(record, segment, str(record["key"]))
        self._remember(held.key)
        self._segment_live[segment].add(held.key)
        self._segment_all[segment].add(held.key)
        kind = record["k"]
        if kind == "feedback":
            self._ready.feedback.append(held)
            return
        event_id = str(record["id"])
        # Halves pair within one component ("j", see collector_app.event_record): the
        # transformer and the predictor log one request under the same id.
        pair_key = str(record.get("j") or event_id)
        if kind == "request":
            self._known_requests[event_id] = None
            if len(self._known_requests) > self.settings.collector_dedupe_keys:
                self._known_requests.popitem(last=False)
            partner = self._responses.pop(pair_key, None)
            if partner is None:
                self._requests[pair_key] = held
            else:
                self._ready.joined.append((held, partner))
        else:
            partner = self._requests.pop(pair_key, None)
            if partner is None:
                self._responses[pair_key] = held
            else:
                self._ready.joined.append((partner, held))

    # --- flush ----------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_wakeup.wait(), self.settings.collector_flush_s)
            self._flush_wakeup.clear()
            # A failed write is counted in flush; its records stay in memory and the WAL.
            with contextlib.suppress(OSError):
                await self.flush()

    def _expire_orphans(self) -> None:
        cutoff = time.time() - self.settings.collector_orphan_s
        for pending in (self._requests, self._responses):
            for event_id in [i for i, h in pending.items() if h.record["rt"] < cutoff]:
                self._ready.orphans.append(pending.pop(event_id))

    def oldest_age(self) -> float:
        held = [h.record["rt"] for h in self._requests.values()]
        held += [h.record["rt"] for h in self._responses.values()]
        held += [p[0].record["rt"] for p in self._ready.joined]
        held += [h.record["rt"] for h in self._ready.feedback + self._ready.orphans]
        return max(0.0, time.time() - min(held)) if held else 0.0

    async def flush(self, expire_orphans: bool = True) -> None:
        """Write everything ready; on a write error keep it and re-raise the last error."""
        async with self._flush_lock:
            if expire_orphans:
                self._expire_orphans()
            batches, self._ready = self._ready, _Batches()
            failed = _Batches()
            error: OSError | None = None
            for write, items, keep in self._plans(batches, failed):
                try:
                    await asyncio.to_thread(write)
                except OSError as exc:
                    self.metrics.write_errors.labels("parquet").inc()
                    keep.extend(items)
                    error = exc
                    continue
                self._committed(items)
            self._ready.joined[:0] = failed.joined
            self._ready.feedback[:0] = failed.feedback
            self._ready.orphans[:0] = failed.orphans
            await self._release_segments()
            self.metrics.queue_depth.set(self.depth)
            self.metrics.lag.set(self.oldest_age())
            if error is not None:
                raise error

    def _plans(
        self, batches: _Batches, failed: _Batches
    ) -> list[tuple[Callable[[], str], list[Any], list[Any]]]:
        from monitoring.parquet_rows import feedback_columns, inference_columns

        plans: list[tuple[Callable[[], str], list[Any], list[Any]]] = []
        groups: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
        for pair in batches.joined:
            request, response = pair
            version = str(response.record.get("mv") or "unknown")
            groups[(request.record["p"], version, _day(request.record["rt"]))].append(pair)
        for held in batches.orphans:
            groups[(held.record["p"], ORPHANS_DIR, _day(held.record["rt"]))].append(held)
        for held in batches.feedback:
            groups[(held.record["p"], FEEDBACK_DIR, _day(held.record["rt"]))].append(held)
        for (project, group, day), items in groups.items():
            rel_dir = partition(project, group, day)
            keys = [k for item in items for k in _keys(item)]
            keep: list[Any]
            if group == FEEDBACK_DIR:
                columns, schema, keep = feedback_columns(items), FEEDBACK_SCHEMA, failed.feedback
            else:
                features = self.features_of(project)
                columns, schema = inference_columns(items, features), inference_schema(features)
                keep = failed.orphans if group == ORPHANS_DIR else failed.joined
            plans.append((_writer(self, rel_dir, columns, schema, keys), items, keep))
        return plans

    def _committed(self, items: list[Any]) -> None:
        # Counted per file, not per item: a `.labels()` lookup per item showed in the profile.
        written: dict[tuple[str, str], int] = defaultdict(int)
        orphans: dict[str, int] = defaultdict(int)
        live = self._segment_live
        for item in items:
            if isinstance(item, tuple):
                written[("inference", str(item[0].record["p"]))] += len(item[0].record["rows"])
            elif item.record["k"] == "feedback":
                written[("feedback", str(item.record["p"]))] += 1
            else:
                orphans[str(item.record["k"])] += 1
                written[("orphan", str(item.record["p"]))] += max(1, len(_rows_of(item)))
            for held in item if isinstance(item, tuple) else (item,):
                live[held.segment].discard(held.key)
        for labels, count in written.items():
            self.metrics.written.labels(*labels).inc(count)
        for kind, count in orphans.items():
            self.metrics.orphans.labels(kind).inc(count)

    async def _release_segments(self) -> None:
        # The writer thread may already have moved on to a new segment while groups it
        # wrote to the previous one wait on the event loop to be accepted; such a segment
        # looks fully written but holds durable, acknowledged-soon records. Groups are
        # accepted in the order they were written, so every segment below the last
        # accepted group's segment is complete.
        floor = self._accepted_floor
        done = [
            s
            for s, live in self._segment_live.items()
            if not live and s != self.wal.active and s < floor
        ]
        for segment in done:
            del self._segment_live[segment]
            self._segment_all.pop(segment, None)
        if done:
            live_keys = set().union(*self._segment_all.values()) if self._segment_all else set()
            for segment in done:
                await asyncio.to_thread(self.wal.release, segment, live_keys)


def _day(epoch_s: float) -> str:
    """`day_of`, formatted once per UTC day (POSIX days are 86,400 s) instead of per item."""
    return _day_name(int(epoch_s // 86_400))


@functools.lru_cache(maxsize=16)
def _day_name(day_number: int) -> str:
    return day_of(day_number * 86_400.0)


def _keys(item: Any) -> list[str]:
    return [h.key for h in item] if isinstance(item, tuple) else [item.key]


def _rows_of(held: Held) -> list[Any]:
    return list(held.record.get("rows") or held.record.get("prob") or [])


def _writer(
    collector: Collector, rel_dir: str, columns: dict[str, list[Any]], schema: Any, keys: list[str]
) -> Callable[[], str]:
    def write() -> str:
        return write_atomically(collector.logs_root, rel_dir, columns, schema, collector.wal, keys)

    return write
