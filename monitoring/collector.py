"""The collector's core: ack after the WAL fsync, join halves, flush to Parquet.

Flow: `submit` -> WAL queue -> one writer thread appends a group and fsyncs it
(group commit: while one fsync runs, the next group gathers) -> the futures
resolve on the event loop and the handlers answer 2xx -> requests and responses
are joined by `ce-id` in memory -> the flush task writes Parquet and releases WAL
segments.
Everything in memory is counted against one bound; past it, `submit` raises
`QueueFullError` (503) so the sender keeps the event and retries, except for a half whose
partner is held: it turns a held half into a pair, and refusing it would leave both to
expire as orphans (issue 10 §6).
A record that Parquet still refuses goes to the dead-letter file (`monitoring.deadletter`)
with its error, so no record can stop the writer (issue 10 §1).
The knowledge role's query log (`castml.protocol.kb_record`, halves scoped `kb:`) takes the
same path, WAL, join and flush, into its own dataset: `logs/<project>-kb/<version>/...`,
one row per query (`monitoring.kb_rows`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from castml.protocol import kb_record
from castml.protocol.kb_record import KbAnswer, KbHalf, KbQuery, kb_base
from castml.protocol.payload_record import (
    UNKNOWN_VERSION,
    Feedback,
    LoggedFeatures,
    PayloadRecord,
    RequestHalf,
    ResponseHalf,
    UndecodableRecordError,
    decode,
    encode,
)
from castml.web.errors import UnavailableError
from monitoring.deadletter import DeadLetters
from monitoring.group_commit import GroupCommit
from monitoring.kb_rows import KB_SCHEMA, kb_columns
from monitoring.metrics import CollectorMetrics
from monitoring.parquet_sink import (
    FEEDBACK_DIR,
    FEEDBACK_SCHEMA,
    ORPHANS_DIR,
    day_of,
    inference_schema,
    inside,
    partition,
    remove_temp_files,
    write_atomically,
)
from monitoring.settings import CollectorSettings
from monitoring.wal import WriteAheadLog

log = logging.getLogger(__name__)


class QueueFullError(UnavailableError):
    """The bounded in-memory queue is full; retry after a moment."""


class StorageUnavailableError(UnavailableError):
    """The write-ahead log cannot be written (disk full, unwritable); nothing was acked."""


# What the WAL holds: the predictor's payload-log records and the knowledge role's halves.
LogRecord = PayloadRecord | KbHalf


def encode_record(record: LogRecord) -> bytes:
    if isinstance(record, KbQuery | KbAnswer):
        return kb_record.encode(record)
    return encode(record)


def decode_record(payload: bytes) -> LogRecord:
    """A WAL payload of either kind; `UndecodableRecordError` (the payload record's) else."""
    try:
        return decode(payload)
    except UndecodableRecordError as first:
        try:
            return kb_record.decode(payload)
        except UndecodableRecordError:
            raise first from None


@dataclass(slots=True)
class Held:
    """A durable record waiting for Parquet."""

    record: LogRecord
    segment: int
    key: str


@dataclass
class _Batches:
    joined: list[tuple[Held, Held]] = field(default_factory=list)
    feedback: list[Held] = field(default_factory=list)
    orphans: list[Held] = field(default_factory=list)


class Collector:
    def __init__(
        self, settings: CollectorSettings, features_of: Callable[[str], LoggedFeatures]
    ) -> None:
        self.settings = settings
        self.features_of = features_of
        self.logs_root = settings.logs_dir
        self.wal = WriteAheadLog(settings.wal_dir)
        self.deadletters = DeadLetters(settings.wal_dir)
        self.metrics = CollectorMetrics(settings.gauges_dir)
        self._commit: GroupCommit[tuple[LogRecord, asyncio.Future[str]]] = GroupCommit(
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
        unreadable: list[tuple[str, str, bytes]] = []
        for segment, payload in self.wal.recover():
            self._segment_live.setdefault(segment, set())  # so a fully written one is released
            try:
                record = decode_record(payload)
            except UndecodableRecordError as exc:
                # Replaying it would fail again at every start: set it aside instead.
                unreadable.append((f"undecodable:{segment}:{len(unreadable)}", str(exc), payload))
                continue
            key = record.key
            self._segment_all[segment].add(key)
            if key in committed or key in self._seen:
                self._remember(key)
                continue
            self._accept(record, segment)
            self.metrics.recovered.inc()
        if unreadable:
            self.deadletters.append(unreadable)
            self.metrics.deadlettered.labels("undecodable").inc(len(unreadable))

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

    def _completes_pair(self, record: LogRecord) -> bool:
        """Whether `record` is the partner of a half held (or being made durable) now."""
        if isinstance(record, KbQuery | KbAnswer):
            held = self._responses if isinstance(record, KbQuery) else self._requests
            return record.pair in held or record.partner_key in self._inflight
        if isinstance(record, ResponseHalf):
            return record.pair in self._requests or (
                f"{record.scope}request:{record.event_id}" in self._inflight
            )
        if isinstance(record, RequestHalf):
            return record.pair in self._responses or (
                f"{record.scope}response:{record.event_id}" in self._inflight
            )
        return False

    async def submit(self, record: LogRecord) -> str:
        """Make `record` durable; 'accepted', or 'duplicate' if its key was seen."""
        key = record.key
        if key in self._seen:
            self.metrics.duplicates.inc()
            return "duplicate"
        if key in self._inflight:  # the same event retried before the first ack
            self.metrics.duplicates.inc()
            await asyncio.shield(self._inflight[key])
            return "duplicate"
        # The partner of a held half is always admitted: it is bounded by the halves held,
        # and refusing it would leave both halves to expire as orphans (issue 10 §6).
        if self.depth >= self.settings.collector_queue_size and not self._completes_pair(record):
            self.metrics.rejected.labels("queue_full").inc()
            raise QueueFullError(
                f"collector queue is full ({self.depth} events); retry later",
                self.settings.collector_retry_after_s,
            )
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        self._unacked += 1
        self._commit.put(encode_record(record), (record, future))
        try:
            # Unshielded (a shield per event showed in the profile): only a shutdown
            # cancels a handler, and `_durable` still accepts the record of a cancelled
            # future; a duplicate waiting on it then answers an error and is retried.
            return await future
        finally:
            self._inflight.pop(key, None)

    def _durable(self, group: list[tuple[LogRecord, asyncio.Future[str]]], segment: int) -> None:
        """On the event loop, once the group's fsync returned: accept, then acknowledge."""
        self._unacked -= len(group)
        self._accepted_floor = max(self._accepted_floor, segment)
        received: dict[tuple[str, str], int] = defaultdict(int)
        for record, future in group:
            self._accept(record, segment)
            received[(_KIND[type(record)], record.project)] += 1
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
        self, group: list[tuple[LogRecord, asyncio.Future[str]]], exc: OSError
    ) -> None:
        self._unacked -= len(group)
        self.metrics.write_errors.labels("wal").inc()
        self.metrics.rejected.labels("storage").inc(len(group))
        error = StorageUnavailableError(
            f"write-ahead log not writable: {exc.strerror}", self.settings.collector_retry_after_s
        )
        for _, future in group:
            if not future.done():
                future.set_exception(error)

    def _remember(self, key: str) -> None:
        self._seen[key] = None
        if len(self._seen) > self.settings.collector_dedupe_keys:
            self._seen.popitem(last=False)

    def _accept(self, record: LogRecord, segment: int) -> None:
        held = Held(record, segment, record.key)
        self._remember(held.key)
        self._segment_live[segment].add(held.key)
        self._segment_all[segment].add(held.key)
        if isinstance(record, Feedback):
            self._ready.feedback.append(held)
            return
        event_id = record.event_id
        pair_key = record.pair
        if isinstance(record, RequestHalf | KbQuery):
            if isinstance(record, RequestHalf):  # a kb query is no request feedback labels
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
            try:
                await self.flush()
            except OSError:
                pass  # counted in flush; its records stay in memory and the WAL, and retry
            except Exception:  # a bug: the loop must outlive it, or nothing is written again
                self.metrics.write_errors.labels("flush").inc()
                log.exception("collector flush failed; retrying at the next flush")

    def _expire_orphans(self) -> None:
        cutoff = time.time() - self.settings.collector_orphan_s
        for pending in (self._requests, self._responses):
            for event_id in [i for i, h in pending.items() if h.record.received_at < cutoff]:
                self._ready.orphans.append(pending.pop(event_id))

    def oldest_age(self) -> float:
        held = [h.record.received_at for h in self._requests.values()]
        held += [h.record.received_at for h in self._responses.values()]
        held += [p[0].record.received_at for p in self._ready.joined]
        held += [h.record.received_at for h in self._ready.feedback + self._ready.orphans]
        return max(0.0, time.time() - min(held)) if held else 0.0

    async def flush(self, expire_orphans: bool = True) -> None:
        """Write everything ready; on a storage error keep it and re-raise the last error.

        A record Parquet refuses for any other reason goes to the dead-letter file, and
        the rest of its group is written without it.
        """
        async with self._flush_lock:
            if expire_orphans:
                self._expire_orphans()
            batches, self._ready = self._ready, _Batches()
            failed = _Batches()
            error: OSError | None = None
            for (project, group, day), items in _groups(batches).items():
                keep: list[Any] = (
                    failed.feedback
                    if group == FEEDBACK_DIR
                    else failed.orphans
                    if group == ORPHANS_DIR
                    else failed.joined
                )
                try:
                    await self._write_group(project, group, day, items)
                except OSError as exc:
                    self.metrics.write_errors.labels("parquet").inc()
                    keep.extend(items)
                    error = exc
            self._ready.joined[:0] = failed.joined
            self._ready.feedback[:0] = failed.feedback
            self._ready.orphans[:0] = failed.orphans
            await self._release_segments()
            self.metrics.queue_depth.set(self.depth)
            self.metrics.lag.set(self.oldest_age())
            if error is not None:
                raise error

    def _write_plan(
        self, project: str, group: str, day: str
    ) -> Callable[[list[Item]], Callable[[], str]]:
        """What writes a group's items, once its partition and schema are known.

        Raises (anything but OSError) when no item of the group can be written: a
        partition outside the logs, a project without a spec.
        """
        from monitoring.parquet_rows import feedback_columns, inference_columns

        rel_dir = partition(project, group, day)
        inside(self.logs_root, rel_dir)
        if kb_base(project) is not None:  # a knowledge base's queries (monitoring.kb_rows)

            def kb(items: list[Item]) -> Callable[[], str]:
                return _writer(self, rel_dir, kb_columns(items), KB_SCHEMA, _all_keys(items))

            return kb
        if group == FEEDBACK_DIR:

            def feedback(items: list[Item]) -> Callable[[], str]:
                columns = feedback_columns(items)  # type: ignore[arg-type]
                return _writer(self, rel_dir, columns, FEEDBACK_SCHEMA, _all_keys(items))

            return feedback
        features = self.features_of(project)
        schema = inference_schema(features)

        def inference(items: list[Item]) -> Callable[[], str]:
            columns = inference_columns(items, list(features.names))
            return _writer(self, rel_dir, columns, schema, _all_keys(items))

        return inference

    async def _write_group(self, project: str, group: str, day: str, items: list[Item]) -> None:
        try:
            plan = self._write_plan(project, group, day)
        except Exception as exc:  # no item of the group can be written
            await self._deadletter(items, "unwritable", exc)
            return
        try:
            await asyncio.to_thread(plan(items))
        except OSError:
            raise
        except Exception as exc:
            # Some record of the group is one Parquet refuses (a value its column cannot
            # hold): find which, set them aside, and write the rest.
            good: list[Item] = []
            for item in items:
                try:
                    _table_check(self, project, group, item)
                except Exception as item_exc:
                    await self._deadletter([item], "unwritable", item_exc)
                else:
                    good.append(item)
            if not good:
                return
            log.warning("%d record(s) of %s set aside: %s", len(items) - len(good), group, exc)
            try:
                await asyncio.to_thread(plan(good))
            except OSError:
                raise
            except Exception as again:
                await self._deadletter(good, "unwritable", again)
                return
            items = good
        self._committed(items)

    async def _deadletter(self, items: list[Item], reason: str, exc: BaseException) -> None:
        """Append `items` to the dead-letter file, then count them as done. Raises OSError."""
        helds = [h for item in items for h in (item if isinstance(item, tuple) else (item,))]
        error = f"{type(exc).__name__}: {exc}"
        entries = [(h.key, error, _encoded(h.record)) for h in helds]

        def store() -> None:
            self.deadletters.append(entries)
            # A commit line naming the dead-letter file: a replay of the WAL skips these
            # records instead of failing on them again.
            self.wal.record_commit(str(self.deadletters.path), [h.key for h in helds])

        await asyncio.to_thread(store)
        log.error("%d record(s) dead-lettered to %s: %s", len(helds), self.deadletters.path, error)
        self.metrics.deadlettered.labels(reason).inc(len(helds))
        for held in helds:
            self._segment_live[held.segment].discard(held.key)

    def _committed(self, items: list[Item]) -> None:
        # Counted per file, not per item: a `.labels()` lookup per item showed in the profile.
        written: dict[tuple[str, str], int] = defaultdict(int)
        orphans: dict[str, int] = defaultdict(int)
        live = self._segment_live
        for item in items:
            if isinstance(item, tuple):
                request = item[0].record
                if isinstance(request, KbQuery):
                    written[("kb_query", request.project)] += 1
                else:
                    assert isinstance(request, RequestHalf)
                    written[("inference", request.project)] += len(request.rows)
            elif isinstance(item.record, Feedback):
                written[("feedback", item.record.project)] += 1
            else:
                orphans[_KIND[type(item.record)]] += 1
                written[("orphan", item.record.project)] += max(1, _width(item.record))
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


def _groups(batches: _Batches) -> dict[tuple[str, str, str], list[Item]]:
    """Items by Parquet partition: (project, version | feedback | orphans, day)."""
    groups: dict[tuple[str, str, str], list[Item]] = defaultdict(list)
    for pair in batches.joined:
        request, response = pair[0].record, pair[1].record
        assert isinstance(response, ResponseHalf | KbAnswer)
        version = response.model_version or UNKNOWN_VERSION
        groups[(request.project, version, _day(request.received_at))].append(pair)
    for held in batches.orphans:
        record = held.record
        groups[(record.project, ORPHANS_DIR, _day(record.received_at))].append(held)
    for held in batches.feedback:
        record = held.record
        groups[(record.project, FEEDBACK_DIR, _day(record.received_at))].append(held)
    return groups


def _all_keys(items: list[Item]) -> list[str]:
    return [h.key for item in items for h in (item if isinstance(item, tuple) else (item,))]


def _width(record: LogRecord) -> int:
    if isinstance(record, RequestHalf):
        return len(record.rows)
    return len(record.scores) if isinstance(record, ResponseHalf) else 1


def _encoded(record: LogRecord) -> bytes:
    try:
        return encode_record(record)
    except Exception:  # the dead-letter entry must be written whatever the record holds
        return repr(record).encode()


def _table_check(collector: Collector, project: str, group: str, item: Item) -> None:
    """Build the one-item table a write would build: raises what the writer would."""
    from monitoring.parquet_rows import feedback_columns, inference_columns

    if kb_base(project) is not None:
        pa.Table.from_pydict(kb_columns([item]), schema=KB_SCHEMA)
    elif group == FEEDBACK_DIR:
        pa.Table.from_pydict(feedback_columns([item]), schema=FEEDBACK_SCHEMA)  # type: ignore[list-item]
    else:
        features = collector.features_of(project)
        columns = inference_columns([item], list(features.names))
        pa.Table.from_pydict(columns, schema=inference_schema(features))


_KIND: dict[type, str] = {
    RequestHalf: "request",
    ResponseHalf: "response",
    Feedback: "feedback",
    KbQuery: "kb_query",
    KbAnswer: "kb_answer",
}
Item = tuple[Held, Held] | Held


def _writer(
    collector: Collector, rel_dir: str, columns: dict[str, list[Any]], schema: Any, keys: list[str]
) -> Callable[[], str]:
    def write() -> str:
        return write_atomically(collector.logs_root, rel_dir, columns, schema, collector.wal, keys)

    return write
