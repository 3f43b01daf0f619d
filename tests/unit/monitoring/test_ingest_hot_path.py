"""The collector's ingest hot path: raw ASGI route, group commit thread, columnar flush."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest

from castml.cli.logger_cloudevents import binary_event, v2_request, v2_response
from castml.protocol.payload_record import LoggedFeatures, RequestHalf, ResponseHalf
from monitoring import event_ingest as events
from monitoring.collector import Held
from monitoring.collector_app import build_app
from monitoring.group_commit import GroupCommit
from monitoring.parquet_rows import inference_columns
from monitoring.settings import CollectorSettings
from monitoring.wal import WriteAheadLog

TOKEN = "unit-token"


def test_group_commit_acknowledges_every_item_after_its_append(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path)
    durable: list[tuple[list[int], int]] = []

    async def run() -> None:
        commit: GroupCommit[int] = GroupCommit(
            wal, lambda items, segment: durable.append((items, segment)), pytest.fail
        )
        commit.start()
        for i in range(200):
            commit.put(str(i).encode(), i)
            if i % 50 == 0:
                await asyncio.sleep(0)  # let groups form and commit meanwhile
        await commit.stop()  # commits what is still queued

    asyncio.run(run())
    assert [i for items, _ in durable for i in items] == list(range(200))
    payloads = [p for _, p in WriteAheadLog(tmp_path).recover()]
    assert payloads == [str(i).encode() for i in range(200)]


def test_group_commit_reports_a_failed_append(tmp_path: Path) -> None:
    class FullDisk(WriteAheadLog):
        def append(self, payloads: list[bytes]) -> int:
            raise OSError(28, "No space left on device")

    failed: list[tuple[list[str], OSError]] = []

    async def run() -> None:
        commit: GroupCommit[str] = GroupCommit(
            FullDisk(tmp_path), pytest.fail, lambda items, exc: failed.append((items, exc))
        )
        commit.start()
        commit.put(b"x", "x")
        await commit.stop()

    asyncio.run(run())
    assert [(items, exc.errno) for items, exc in failed] == [(["x"], 28)]


def test_flat_and_nested_tensors_flatten_alike_and_bools_are_refused() -> None:
    features = LoggedFeatures(("a", "b"))
    flat = {"inputs": [{"name": "x", "shape": [2, 2], "data": [1, 2.5, 3, 4]}]}
    nested = {"inputs": [{"name": "x", "shape": [2, 2], "data": [[1, 2.5], [3, 4]]}]}
    assert events.request_rows(flat, features) == [[1.0, 2.5], [3.0, 4.0]]
    assert events.request_rows(nested, features) == [[1.0, 2.5], [3.0, 4.0]]
    with pytest.raises(events.UnusablePayloadError, match="non-numeric"):
        events.request_rows({"inputs": [{"shape": [1, 2], "data": [True, 1.0]}]}, features)


def _held(record: RequestHalf | ResponseHalf) -> Held:
    return Held(record, 1, record.key)


def test_inference_columns_one_row_per_instance_with_nulls_for_missing_halves() -> None:
    ext = {"inferenceservicename": "p", "component": "predictor"}
    request = RequestHalf("a", "p", 1.0, [[1.0, 2.0], [3.0, 4.0]], ext)
    response = ResponseHalf("a", "p", 2.0, [0.1, 0.9], [0, 1], "p", "3", {"namespace": "ns"})
    lonely = ResponseHalf("b", "p", 3.0, [0.5], [], "p", "3", {})
    columns = inference_columns([(_held(request), _held(response)), _held(lonely)], ["f", "g"])
    assert list(columns)[:4] == ["request_id", "row", "f", "g"]
    assert columns["request_id"] == ["a", "a", "b"] and columns["row"] == [0, 1, 0]
    assert columns["f"] == [1.0, 3.0, None] and columns["g"] == [2.0, 4.0, None]
    assert columns["probability"] == [0.1, 0.9, 0.5] and columns["label"] == [0, 1, None]
    assert columns["request_time"] == [1000, 1000, None]
    assert columns["response_time"] == [2000, 2000, 3000]
    assert columns["namespace"] == ["ns", "ns", None]
    assert columns["component"] == ["predictor", "predictor", None]
    assert inference_columns([], ["f"]) == {name: [] for name in columns if name != "g"}


def test_raw_asgi_ingest_route_acks_and_the_rest_stays_on_starlette(tmp_path: Path) -> None:
    settings = CollectorSettings.model_validate({"home": tmp_path, "collector_token": TOKEN})
    features = [f"f{i}" for i in range(3)]
    app = build_app(settings)
    app.collector.features_of = lambda _: LoggedFeatures(tuple(features))
    auth = {"authorization": f"Bearer {TOKEN}"}
    request = binary_event("request", "r-1", "diecast", v2_request(np.ones((1, 3)), features))
    score = v2_response(np.array([0.3]), "diecast", "1", "r-1")
    response = binary_event("response", "r-1", "diecast", score)

    async def run() -> None:
        await app.collector.start()  # what the lifespan does under uvicorn
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://c") as client:
                answer = await client.post("/", headers={**request[0], **auth}, content=request[1])
                assert answer.status_code == 202
                assert answer.json() == {"status": "accepted", "id": "r-1"}
                again = await client.post(
                    "/v1/events", headers={**request[0], **auth}, content=request[1]
                )
                assert again.json()["status"] == "duplicate"
                anonymous = await client.post("/", headers=response[0], content=response[1])
                assert anonymous.status_code == 401
                broken = await client.post("/", headers={**response[0], **auth}, content=b"{")
                assert broken.status_code == 400
                assert (await client.get("/")).status_code == 405
                assert (await client.get("/healthz")).json() == {"status": "ok"}
                metrics = (await client.get("/metrics")).text
                assert 'castml_collector_events_received_total{kind="request"' in metrics
        finally:
            await app.collector.stop()

    asyncio.run(run())
