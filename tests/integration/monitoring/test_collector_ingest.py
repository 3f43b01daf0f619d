"""The collector over HTTP: both CloudEvent modes, joins, orphans, duplicates, auth, feedback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from castml.cli.logger_cloudevents import binary_event, v2_request
from monitoring.auth import sign
from tests.support.collector_process import (
    FEATURES,
    TOKEN,
    CollectorProcess,
    pair,
    read_logs,
    shots,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    process = CollectorProcess(
        tmp_path, CASTML_COLLECTOR_ORPHAN_S="1", CASTML_COLLECTOR_HMAC_KEY="hmac-key"
    ).start()
    yield process
    process.stop()


def test_binary_and_structured_events_join_into_one_row_per_instance(
    collector: CollectorProcess,
) -> None:
    for event_id, structured in (("bin-1", False), ("struct-1", True)):
        request, response = pair(event_id, rows=3, structured=structured)
        assert collector.post(*request).status_code == 202
        assert collector.post(*response).status_code == 202
    per_feature = binary_event(
        "request", "named-1", "diecast", v2_request(shots(2), FEATURES, per_feature=True)
    )
    assert collector.post(*per_feature).status_code == 202
    assert collector.post(*pair("named-1", rows=2)[1]).status_code == 202

    collector.wait_for(lambda: len(read_logs(collector.home)) == 8)
    frame = read_logs(collector.home).sort_values(["request_id", "row"])
    assert set(frame["request_id"]) == {"bin-1", "struct-1", "named-1"}
    first = frame[frame["request_id"] == "bin-1"]
    assert list(first["row"]) == [0, 1, 2]
    assert first[FEATURES].to_numpy() == pytest.approx(shots(3).astype("float32"))
    assert first["probability"].notna().all() and (first["model_version"] == "1").all()
    assert (first["inference_service"] == "diecast").all() and (
        first["component"] == "predictor"
    ).all()
    assert first["request_time"].notna().all() and first["response_time"].notna().all()
    assert collector.metric("castml_collector_events_dropped_total") == 0


def test_malformed_events_are_refused_with_4xx(collector: CollectorProcess) -> None:
    request, _ = pair("bad-1")
    headers, body = request
    no_id = {k: v for k, v in headers.items() if k != "ce-id"}
    assert collector.post(no_id, body).status_code == 400
    assert collector.post({**headers, "ce-type": "com.example.other"}, body).status_code == 400
    assert collector.post(headers, b"{not json").status_code == 400
    assert (
        collector.post({"content-type": "application/cloudevents+json"}, b"[1, 2]").status_code
        == 400
    )
    short = binary_event(
        "request",
        "bad-2",
        "diecast",
        {"inputs": [{"name": "x", "shape": [1, 3], "data": [1, 2, 3]}]},
    )
    answer = collector.post(*short)
    assert answer.status_code == 422 and "shape" in answer.json()["error"]
    text = binary_event(
        "request",
        "bad-3",
        "diecast",
        v2_request(shots(1), FEATURES)
        | {
            "inputs": [
                {"name": "input-0", "shape": [1, 30], "datatype": "FP32", "data": ["x"] * 30}
            ]
        },
    )
    assert collector.post(*text).status_code == 422
    assert collector.metric("castml_collector_events_received_total") == 0


def test_every_ingest_endpoint_needs_a_token_or_a_signature(collector: CollectorProcess) -> None:
    request, _ = pair("auth-1")
    headers, body = request
    anonymous = collector.client.post("/", headers={**headers, "authorization": ""}, content=body)
    assert anonymous.status_code == 401
    wrong = collector.client.post(
        "/", headers={**headers, "authorization": "Bearer nope"}, content=body
    )
    assert wrong.status_code == 401
    feedback = orjson.dumps({"request_id": "auth-1", "label": 1})
    assert (
        collector.client.post(
            "/v1/feedback", content=feedback, headers={"authorization": ""}
        ).status_code
        == 401
    )
    signed = {**headers, "authorization": "", "x-castml-signature": sign("hmac-key", body)}
    assert collector.client.post("/", headers=signed, content=body).status_code == 202
    forged = {**headers, "authorization": "", "x-castml-signature": sign("other", body)}
    assert collector.client.post("/", headers=forged, content=body).status_code == 401
    assert TOKEN  # the bearer path is exercised by every other test


def test_response_before_request_joins_and_lonely_halves_become_orphans(
    collector: CollectorProcess,
) -> None:
    request, response = pair("late-req")
    assert collector.post(*response).status_code == 202
    assert collector.post(*request).status_code == 202
    lonely_request, _ = pair("lonely-req")
    _, lonely_response = pair("lonely-resp")
    assert collector.post(*lonely_request).status_code == 202
    assert collector.post(*lonely_response).status_code == 202

    collector.wait_for(lambda: len(read_logs(collector.home, "orphans")) == 2)
    assert list(read_logs(collector.home)["request_id"]) == ["late-req"]
    orphans = read_logs(collector.home, "orphans").set_index("request_id")
    assert (
        orphans.loc["lonely-req", "probability"] != orphans.loc["lonely-req", "probability"]
    )  # NaN
    assert orphans.loc["lonely-resp", FEATURES].isna().all()
    assert collector.metric("castml_collector_orphans_total") == 2


def test_duplicate_events_are_idempotent(collector: CollectorProcess) -> None:
    request, response = pair("dup-1", rows=2)
    answers = [collector.post(*request).json()["status"] for _ in range(3)]
    answers += [collector.post(*response).json()["status"] for _ in range(2)]
    assert answers == ["accepted", "duplicate", "duplicate", "accepted", "duplicate"]
    collector.wait_for(lambda: len(read_logs(collector.home)) >= 2)
    collector.wait_for(lambda: collector.metric("castml_collector_queue_depth") == 0)
    assert len(read_logs(collector.home)) == 2
    assert collector.metric("castml_collector_duplicates_total") == 3


def test_feedback_for_an_unknown_request_is_kept_and_reported(collector: CollectorProcess) -> None:
    request, response = pair("fb-1")
    collector.post(*request)
    collector.post(*response)
    known = collector.client.post(
        "/v1/feedback",
        json={"request_id": "fb-1", "label": 1, "observed_at": "2026-11-21T10:00:00Z"},
    )
    unknown = collector.client.post("/v1/feedback", json={"request_id": "never-seen", "label": 0})
    assert known.json()["results"][0]["known_request"] is True
    assert unknown.status_code == 202 and unknown.json()["results"][0]["known_request"] is False
    bad = collector.client.post("/v1/feedback", json={"request_id": "fb-1", "label": "yes"})
    assert bad.status_code == 422

    collector.wait_for(lambda: len(read_logs(collector.home, "feedback")) == 2)
    labels = read_logs(collector.home, "feedback").set_index("request_id")
    assert labels.loc["never-seen", "known_request"] == False  # noqa: E712 - numpy bool
    assert labels.loc["fb-1", "label"] == 1.0
    assert collector.metric("castml_collector_feedback_unknown_request_total") == 1


def test_a_full_queue_answers_503_with_retry_after(tmp_path: Path) -> None:
    collector = CollectorProcess(tmp_path, CASTML_COLLECTOR_QUEUE_SIZE="2").start()
    try:
        for i in range(2):  # requests without responses stay in memory: they fill the queue
            assert collector.post(*pair(f"q-{i}")[0]).status_code == 202
        refused = collector.post(*pair("q-2")[0])
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        # The partner of a held request is always admitted (issue 10 §6): refusing it would
        # leave both halves to expire as orphans.
        assert collector.post(*pair("q-0")[1]).status_code == 202
        assert collector.metric("castml_collector_events_rejected_total") == 1
    finally:
        collector.stop()


def test_oversized_bodies_answer_413_and_keep_nothing(tmp_path: Path) -> None:
    limit = 4096
    collector = CollectorProcess(tmp_path, CASTML_COLLECTOR_MAX_BODY_BYTES=str(limit)).start()
    try:
        (headers, _), _ = pair("big-1")
        big = b'{"inputs": [' + b" " * limit + b"]}"
        answer = collector.post(headers, big)
        assert answer.status_code == 413 and "CASTML_COLLECTOR_MAX_BODY_BYTES" in answer.text
        feedback = collector.client.post("/v1/feedback", content=b"[" + b" " * limit + b"]")
        assert feedback.status_code == 413
        # A chunked body declares no length: it is counted as it arrives.
        chunked = collector.client.post(
            "/", headers=headers, content=iter([big[:3000], big[3000:]])
        )
        assert chunked.status_code == 413
        assert collector.metric("castml_collector_events_received_total") == 0
    finally:
        collector.stop()
