"""One bad event never stops the collector (issue 10 §1), and no path escapes the logs (§3).

The real collector process: each poison event is refused at ingest, and valid events sent
after it reach Parquet. The same events as an older collector acknowledged them, left in
its write-ahead log, are set aside to the dead-letter file at replay instead of stopping
the writer at every start, across a restart.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from castml.cli.logger_cloudevents import binary_event, v2_response
from monitoring.deadletter import FILE_NAME
from monitoring.wal import WriteAheadLog
from tests.support.collector_process import FEATURES, CollectorProcess, pair, read_logs

pytestmark = pytest.mark.integration
DEADLETTERED = "castml_collector_events_deadlettered_total"


def _old_wal_records() -> list[dict[str, Any]]:
    """The poison events in the WAL form the collector before this fix acknowledged."""
    now = time.time()
    ext = {"inferenceservicename": "diecast", "component": "predictor"}
    return [
        {"k": "feedback", "key": "feedback:r:1:1e+17", "p": "diecast", "rid": "r", "label": 1.0}
        | {"obs": 1e17, "rt": now, "known": False},
        {"k": "response", "key": "response:ghost", "id": "ghost", "p": "nosuchproject"}
        | {"rt": now - 3600, "ext": {}, "prob": [0.5], "label": [1], "mv": "1", "mn": "x"},
        {"k": "request", "key": "request:huge", "id": "huge", "p": "diecast", "rt": now}
        | {"ext": ext, "rows": [[1.0] * len(FEATURES)]},
        {"k": "response", "key": "response:huge", "id": "huge", "p": "diecast", "rt": now}
        | {"ext": ext, "prob": [0.5], "label": [10**19], "mv": "1", "mn": "diecast"},
        {"k": "feedback", "key": "feedback:t:1:None", "p": "../../escape-wal", "rid": "t"}
        | {"label": 1.0, "obs": None, "rt": now, "known": False},
    ]


def _deliver(collector: CollectorProcess, event_id: str) -> None:
    """A valid pair, acknowledged, then read back from Parquet."""
    for half in pair(event_id):
        assert collector.post(*half).status_code == 202
    collector.wait_for(lambda: event_id in set(read_logs(collector.home).get("request_id", [])))


def _poison_posts(collector: CollectorProcess) -> None:
    feedback = {"request_id": "r", "label": 1, "observed_at": 1e17}
    answer = collector.client.post("/v1/feedback", json=feedback)
    assert answer.status_code == 422 and "observed_at" in answer.json()["error"]
    _deliver(collector, "after-feedback")

    ghost = v2_response(np.array([0.5]), "nosuchproject", "1", "ghost")
    answer = collector.post(*binary_event("response", "ghost", "nosuchproject", ghost))
    assert answer.status_code == 422 and "nosuchproject" in answer.json()["error"]
    _deliver(collector, "after-unknown-project")

    request, response = pair("huge-label")
    body = orjson.loads(response[1])
    for output in body["outputs"]:
        if output["name"] == "label":
            output["data"] = [1e19]
    assert collector.post(*request).status_code == 202
    answer = collector.post(response[0], orjson.dumps(body))
    assert answer.status_code == 400 and "int64" in answer.json()["error"]
    _deliver(collector, "after-huge-label")


def test_poison_events_never_stop_the_writer_across_a_restart(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "collector-wal")
    wal.append([orjson.dumps(r) for r in _old_wal_records()])
    wal.close()

    collector = CollectorProcess(tmp_path, CASTML_COLLECTOR_ORPHAN_S="1").start()
    try:
        _poison_posts(collector)
        collector.wait_for(lambda: collector.metric(DEADLETTERED) == 5)
        assert collector.metric("castml_collector_events_dropped_total") == 0
    finally:
        collector.stop()
    letters = (tmp_path / "collector-wal" / FILE_NAME).read_bytes().splitlines()
    assert len(letters) == 5 and all(orjson.loads(line)["error"] for line in letters)

    restarted = CollectorProcess(tmp_path, CASTML_COLLECTOR_ORPHAN_S="1").start()
    try:
        _poison_posts(restarted)  # the same events again, refused again
        _deliver(restarted, "after-restart")
        assert restarted.metric(DEADLETTERED) == 0  # the replay did not meet them again
    finally:
        restarted.stop()
    assert len((tmp_path / "collector-wal" / FILE_NAME).read_bytes().splitlines()) == 5
    frame = read_logs(tmp_path)
    assert {"after-feedback", "after-restart"} <= set(frame["request_id"])
    assert not list(tmp_path.parent.rglob("escape-*"))


def test_names_from_requests_never_escape_the_logs_folder(tmp_path: Path) -> None:
    absolute = f"/tmp/castml-escape-{uuid.uuid4().hex}"
    collector = CollectorProcess(tmp_path).start()
    try:
        for project in ("../../escape-fb", absolute, "diecast/../../escape-fb", ".."):
            answer = collector.client.post(
                "/v1/feedback", json={"request_id": "x", "label": 1, "project": project}
            )
            assert answer.status_code == 400 and "project" in answer.json()["error"], project
        request, _ = pair("escape-mv")
        escape = v2_response(np.array([0.5]), "diecast", "../../../escape-mv", "escape-mv")
        assert collector.post(*request).status_code == 202
        answer = collector.post(*binary_event("response", "escape-mv", "diecast", escape))
        assert answer.status_code == 400 and "model_version" in answer.json()["error"]
        _deliver(collector, "after-escapes")
    finally:
        collector.stop()
    assert not Path(absolute).exists()
    outside = [
        p for p in tmp_path.parent.rglob("*escape*") if not p.is_relative_to(tmp_path / "logs")
    ]
    assert outside == []
