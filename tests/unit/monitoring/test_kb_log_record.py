"""kb query-log halves in the collector, in process: the WAL form round-trips, an acknowledged
query survives a restart and joins its answer afterwards, and a predictor request that
shares its request id neither dedupes nor joins it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq

from castml.cli.logger_cloudevents import binary_event
from castml.protocol.kb_record import KbAnswer, KbQuery, kb_base
from monitoring.collector import Collector, decode_record, encode_record
from monitoring.collector_app import spec_features
from monitoring.event_ingest import decode
from monitoring.settings import CollectorSettings
from tests.support.collector_process import pair

QUERY: dict[str, Any] = {
    "id": "q-1",
    "query": "gas porosity causes",
    "context": {"prediction": 0.7},
}
ANSWER: dict[str, Any] = {
    "model_name": "diecast-kb",
    "model_version": "4",
    "id": "q-1",
    "language": "en",
    "no_answer": False,
    "sources": [
        {"id": "en-gas#1", "document": "en-gas", "relevance": 0.61},
        {"id": "en-gas#3", "document": "en-gas", "relevance": 0.82},
    ],
}


def kb(kind: str, data: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    headers, _ = binary_event(kind, "q-1", "diecast-kb", {}, component="knowledge")
    return headers, orjson.dumps(data)


def test_kb_base_and_wal_form_round_trip() -> None:
    assert kb_base("diecast-kb") == "diecast" and kb_base("diecast") is None
    assert kb_base("-kb") is None
    query = decode(*kb("request", QUERY), spec_features)
    answer = decode(*kb("response", ANSWER), spec_features)
    assert isinstance(query, KbQuery) and isinstance(answer, KbAnswer)
    assert query.prediction_probability == 0.7 and query.prediction_class is None
    assert answer.top_relevance == 0.82 and answer.source_ids == ["en-gas#1", "en-gas#3"]
    for record in (query, answer):
        assert decode_record(encode_record(record)) == record


async def _session(home: Path, events: list[tuple[dict[str, str], bytes]]) -> list[str]:
    core = Collector(CollectorSettings.model_validate({"home": home}), spec_features)
    await core.start()
    try:
        return [await core.submit(decode(h, b, core.features_of)) for h, b in events]
    finally:
        await core.stop()  # writes what is joined; an unjoined half stays in the WAL


def test_an_acknowledged_query_survives_a_restart_and_joins_its_answer(tmp_path: Path) -> None:
    predictor_pair = list(pair("q-1"))  # the same request id, logged by the predictor
    first = asyncio.run(_session(tmp_path, [kb("request", QUERY), *predictor_pair]))
    assert first == ["accepted"] * 3
    assert not list((tmp_path / "logs" / "diecast-kb").rglob("*.parquet"))
    second = asyncio.run(_session(tmp_path, [kb("response", ANSWER), kb("request", QUERY)]))
    assert second == ["accepted", "duplicate"]
    files = list((tmp_path / "logs" / "diecast-kb" / "4").glob("date=*/*.parquet"))
    rows = [row for f in files for row in pq.read_table(f).to_pylist()]
    assert len(rows) == 1
    row = rows[0]
    assert row["query"] == "gas porosity causes" and row["source_ids"] == ["en-gas#1", "en-gas#3"]
    assert row["documents"] == ["en-gas", "en-gas"] and row["no_answer"] is False
    assert row["request_time"] is not None and row["response_time"] is not None
    predictor_rows = list((tmp_path / "logs" / "diecast" / "1").glob("date=*/*.parquet"))
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in predictor_rows) == 1
