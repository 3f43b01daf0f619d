"""No record stops the writer (issue 10 §1), and pairs are never split by overload (§6).

The records here skip ingest validation, as records replayed from an older collector's
WAL do: the writer itself must set aside what Parquet refuses and go on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pyarrow.parquet as pq

from castml.protocol.payload_record import (
    Feedback,
    LoggedFeatures,
    RequestHalf,
    ResponseHalf,
    encode,
)
from castml.spec import load_spec
from monitoring.collector import Collector, QueueFullError
from monitoring.collector_app import spec_features
from monitoring.deadletter import FILE_NAME
from monitoring.settings import CollectorSettings
from monitoring.wal import WriteAheadLog

FEATURES = load_spec("diecast").feature_names
EXT = {"inferenceservicename": "diecast", "component": "predictor"}


def _settings(home: Path, **extra: Any) -> CollectorSettings:
    return CollectorSettings.model_validate({"home": home, **extra})


def _pair(event_id: str, labels: list[int] | None = None) -> tuple[RequestHalf, ResponseHalf]:
    now = time.time()
    request = RequestHalf(event_id, "diecast", now, [[1.0] * len(FEATURES)], EXT)
    response = ResponseHalf(event_id, "diecast", now, [0.4], labels or [0], "diecast", "1", EXT)
    return request, response


def _poison() -> list[Any]:
    """The three poison events of issue 10 §1 and a traversal name (§3), as records."""
    now = time.time()
    label_request, label_response = _pair("huge-label", [10**19])
    return [
        Feedback("r", "diecast", 1.0, 1e17, now, False),
        ResponseHalf("ghost", "nosuchproject", now - 3600, [0.5], [1], "x", "1", {}),
        label_request,
        label_response,
        Feedback("r", "../../escape-fb", 1.0, None, now, False),
    ]


def _read(home: Path, group: str) -> pd.DataFrame:
    files = sorted((home / "logs" / "diecast" / group).glob("date=*/*.parquet"))
    return pd.concat([pq.read_table(f).to_pandas() for f in files]) if files else pd.DataFrame()


def _deadletters(home: Path) -> list[dict[str, Any]]:
    path = home / "collector-wal" / FILE_NAME
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def test_records_parquet_refuses_are_deadlettered_and_the_writer_goes_on(tmp_path: Path) -> None:
    async def first_run() -> Collector:
        core = Collector(_settings(tmp_path), spec_features)
        await core.start()
        try:
            for record in [
                *_poison(),
                *_pair("ok-1"),
                Feedback("ok-1", "diecast", 1.0, None, time.time(), True),
            ]:
                assert await core.submit(record) == "accepted"
            await core.flush()  # must not raise: the poison is set aside
            for record in _pair("ok-2"):
                await core.submit(record)
            await core.flush()
        finally:
            await core.stop()
        return core

    core = asyncio.run(first_run())
    assert set(_read(tmp_path, "1")["request_id"]) == {"ok-1", "ok-2"}
    assert list(_read(tmp_path, "feedback")["request_id"]) == ["ok-1"]
    letters = _deadletters(tmp_path)
    keys = {letter["key"] for letter in letters}
    assert keys == {
        "feedback:r:1.0:1e+17",
        "response:ghost",
        "request:huge-label",
        "response:huge-label",
        "feedback:r:1.0:None",
    }
    assert all(letter["error"] and letter["record"] for letter in letters)
    assert core.metrics.deadlettered.labels("unwritable")._value.get() == 5
    assert not list(tmp_path.parent.rglob("escape-fb"))

    async def restart() -> Collector:
        again = Collector(_settings(tmp_path), spec_features)
        await again.start()  # replays the WAL: the dead-lettered records are done
        try:
            await again.flush()
        finally:
            await again.stop()
        return again

    again = asyncio.run(restart())
    assert len(_deadletters(tmp_path)) == 5
    assert again.metrics.deadlettered.labels("unwritable")._value.get() == 0
    assert len(_read(tmp_path, "1")) == 2


def test_wal_replay_deadletters_poison_instead_of_stopping(tmp_path: Path) -> None:
    """Records an older collector acknowledged, replayed: set aside, the rest written."""
    wal = WriteAheadLog(_settings(tmp_path).wal_dir)
    good = _pair("replayed-ok")
    wal.append([encode(r) for r in [*_poison(), *good]] + [b"not a record", b'{"k": "other"}'])
    wal.close()

    async def run() -> Collector:
        core = Collector(_settings(tmp_path), spec_features)
        await core.start()
        try:
            await core.flush()
        finally:
            await core.stop()
        return core

    core = asyncio.run(run())
    assert list(_read(tmp_path, "1")["request_id"]) == ["replayed-ok"]
    assert core.metrics.deadlettered.labels("undecodable")._value.get() == 2
    assert core.metrics.deadlettered.labels("unwritable")._value.get() == 5
    assert len(_deadletters(tmp_path)) == 7


def test_a_burst_of_pairs_against_a_small_bound_splits_no_pair(tmp_path: Path) -> None:
    """14,000 pairs, every request sent before any response, against a bound of 500.

    Before issue 10 §6 the bound filled with requests, their responses were refused until
    the requests expired, and the requests were written as orphans.
    """
    pairs = 14_000
    settings = _settings(
        tmp_path,
        collector_queue_size=500,
        collector_orphan_s=2.0,
        collector_flush_s=0.05,
        collector_dedupe_keys=100_000,
    )

    async def send(core: Collector, make: Callable[[], Any]) -> None:
        while True:
            try:  # decoded anew at each try, as the collector does with each post
                await core.submit(make())
                return
            except QueueFullError:
                await asyncio.sleep(0.02)  # what a sender does on 503: retry after a while

    async def run() -> Collector:
        core = Collector(settings, lambda _: LoggedFeatures(("x",)))
        await core.start()
        try:

            async def one_pair(i: int) -> None:
                await send(
                    core, lambda: RequestHalf(f"b-{i}", "diecast", time.time(), [[float(i)]], EXT)
                )
                await asyncio.sleep(0)  # every request goes first
                await send(
                    core,
                    lambda: ResponseHalf(
                        f"b-{i}", "diecast", time.time(), [0.5], [0], "d", "1", EXT
                    ),
                )

            await asyncio.gather(*(one_pair(i) for i in range(pairs)))
            await core.flush()
        finally:
            await core.stop()
        return core

    core = asyncio.run(run())
    assert core.metrics.orphans.labels("request")._value.get() == 0
    assert core.metrics.orphans.labels("response")._value.get() == 0
    joined = _read(tmp_path, "1")
    assert len(joined) == pairs and joined["probability"].notna().all()
    assert not (tmp_path / "logs" / "diecast" / "orphans").exists()
