"""EventSender (castml.cloudevent_sender) against the real collector: delivery, back-pressure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from castml.cli.logger_cloudevents import v2_request, v2_response
from castml.cloudevent_sender import EventSender
from tests.support.collector_process import FEATURES, TOKEN, CollectorProcess, read_logs, shots

pytestmark = pytest.mark.integration


def _bodies(request_id: str, seed: int) -> tuple[bytes, bytes]:
    request = v2_request(shots(1, seed), FEATURES)
    response = v2_response(np.array([0.3]), "diecast", "1", request_id)
    return orjson.dumps(request), orjson.dumps(response)


def _sender(collector: CollectorProcess, token: str = TOKEN, **options: int) -> EventSender:
    url = f"http://127.0.0.1:{collector.port}/"
    return EventSender(url, "diecast", token, backoff_s=0.02, max_backoff_s=0.2, **options)


def test_pairs_arrive_joined_and_counted(tmp_path: Path) -> None:
    collector = CollectorProcess(tmp_path).start()
    try:
        with _sender(collector, workers=2) as sender:
            for i in range(40):
                request, response = _bodies(f"s-{i}", i)
                assert sender.emit_request(f"s-{i}", request)
                assert sender.emit_response(f"s-{i}", response)
            assert sender.flush()
            stats = sender.stats()
        assert stats.sent == 80 and stats.refused == stats.rejected == stats.unsent == 0
        collector.wait_for(lambda: len(read_logs(collector.home)) == 40)
        frame = read_logs(collector.home)
        assert set(frame["request_id"]) == {f"s-{i}" for i in range(40)}
        assert (frame["inference_service"] == "diecast").all()
    finally:
        collector.stop()


def test_a_full_queue_refuses_and_counts_then_retries_deliver_once_the_collector_is_up(
    tmp_path: Path,
) -> None:
    collector = CollectorProcess(tmp_path)  # port chosen, nothing listening yet
    sender = _sender(collector, max_queue=3)
    try:
        accepted = [sender.emit_request(f"r-{i}", _bodies(f"r-{i}", i)[0]) for i in range(10)]
        # One event may sit in the worker's retry loop, so 3 or 4 got in; none silently lost.
        assert sum(accepted) in (3, 4)
        assert sender.stats().refused == 10 - sum(accepted)
        collector.start()
        assert sender.flush()
        stats = sender.stats()
        assert stats.sent == sum(accepted) and stats.retries > 0
        assert collector.metric("castml_collector_events_received_total") == sum(accepted)
    finally:
        sender.close()
        collector.stop()


def test_503_back_pressure_is_retried_until_accepted(tmp_path: Path) -> None:
    # Two held requests fill the collector; they leave as orphans after 1 s, freeing room.
    collector = CollectorProcess(
        tmp_path, CASTML_COLLECTOR_QUEUE_SIZE="2", CASTML_COLLECTOR_ORPHAN_S="1"
    ).start()
    try:
        with _sender(collector) as sender:
            for i in range(5):
                sender.emit_request(f"bp-{i}", _bodies(f"bp-{i}", i)[0])
            assert sender.flush(60)
            stats = sender.stats()
        assert stats.sent == 5 and stats.retries > 0 and stats.refused == 0
        assert collector.metric("castml_collector_events_rejected_total") > 0
    finally:
        collector.stop()


def test_a_4xx_is_counted_as_rejected_not_retried(tmp_path: Path) -> None:
    collector = CollectorProcess(tmp_path).start()
    try:
        with _sender(collector, token="wrong") as sender:
            sender.emit_request("x-1", _bodies("x-1", 0)[0])
            assert sender.flush()
            stats = sender.stats()
        assert stats.rejected == 1 and stats.sent == 0 and stats.retries == 0
    finally:
        collector.stop()
