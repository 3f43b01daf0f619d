"""Faults: a full disk and kill -9 lose nothing that was acknowledged, corrupt no Parquet."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from tests.support.collector_process import (
    CollectorProcess,
    limit_file_size,
    pair,
    read_logs,
    stray_files,
)

pytestmark = pytest.mark.integration


def _send_pairs(
    collector: CollectorProcess, prefix: str, count: int, acked: set[str], stop: threading.Event
) -> None:
    """Send request+response pairs; an id counts as acked only when both halves got 2xx."""
    for i in range(count):
        if stop.is_set():
            return
        event_id = f"{prefix}-{i}"
        request, response = pair(event_id, rows=2, seed=i % 7)
        try:
            if collector.post(*request).status_code != 202:
                continue
            if collector.post(*response).status_code == 202:
                acked.add(event_id)
        except httpx.TransportError:
            return  # the server died mid-request: that event was not acknowledged


def _everything_acked_is_written(home: Path, acked: set[str]) -> None:
    frame = read_logs(home)  # reads every file: a corrupt one would raise
    assert acked <= set(frame["request_id"])
    assert not frame.duplicated(["request_id", "row"]).any()
    assert not stray_files(home)


def test_full_disk_answers_503_and_loses_no_acknowledged_event(tmp_path: Path) -> None:
    collector = CollectorProcess(tmp_path, CASTML_COLLECTOR_FLUSH_S="30")
    collector.start(preexec=limit_file_size(256 * 1024))
    acked: set[str] = set()
    statuses: list[int] = []
    try:
        for i in range(400):
            request, response = pair(f"disk-{i}", rows=2)
            first = collector.post(*request).status_code
            second = collector.post(*response).status_code
            statuses += [first, second]
            if first == second == 202:
                acked.add(f"disk-{i}")
            if first == 503:
                break
        assert 503 in statuses, "the size limit never bit"
        refused = collector.post(*pair("disk-after")[0])
        assert refused.status_code == 503 and "retry-after" in refused.headers
        assert collector.metric("castml_collector_events_dropped_total") == 0
    finally:
        collector.kill()
    assert acked
    restarted = CollectorProcess(tmp_path, CASTML_COLLECTOR_ORPHAN_S="1").start()  # room again
    try:
        restarted.wait_for(lambda: acked <= set(read_logs(tmp_path).get("request_id", [])))
        restarted.wait_for(lambda: restarted.metric("castml_collector_queue_depth") == 0)
        _everything_acked_is_written(tmp_path, acked)
    finally:
        restarted.stop()


def test_kill_9_mid_write_recovers_everything_acknowledged(tmp_path: Path) -> None:
    # Tiny batches and frequent flushes, so the kill lands while Parquet files are written.
    collector = CollectorProcess(
        tmp_path, CASTML_COLLECTOR_FLUSH_S="0.01", CASTML_COLLECTOR_BATCH_ROWS="5"
    )
    collector.start()
    acked: set[str] = set()
    stop = threading.Event()
    senders = [
        threading.Thread(target=_send_pairs, args=(collector, f"k{t}", 10_000, acked, stop))
        for t in range(4)
    ]
    for sender in senders:
        sender.start()
    collector.wait_for(lambda: len(acked) >= 150 and bool(read_logs(tmp_path).shape[0]))
    collector.kill()
    stop.set()
    for sender in senders:
        sender.join(timeout=30)

    restarted = CollectorProcess(tmp_path, CASTML_COLLECTOR_ORPHAN_S="1").start()
    try:
        restarted.wait_for(lambda: acked <= set(read_logs(tmp_path).get("request_id", [])))
        print("recovered from the WAL:", restarted.metric("castml_collector_recovered_total"))
        restarted.wait_for(lambda: restarted.metric("castml_collector_queue_depth") == 0)
        _everything_acked_is_written(tmp_path, acked)
    finally:
        restarted.stop()
    # A clean stop leaves no WAL segment behind whose records are all in Parquet but one.
    assert len(list((tmp_path / "collector-wal").glob("segment-*.wal"))) <= 2
