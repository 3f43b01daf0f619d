"""WAL framing survives a torn tail; CloudEvent parsing in both modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pytest

from castml.cli.logger_cloudevents import binary_event, structured_event, v2_request
from castml.protocol.payload_record import (
    Feedback,
    LoggedFeatures,
    RequestHalf,
    ResponseHalf,
    UndecodableRecordError,
    decode,
    encode,
)
from castml.protocol.v2_tensors import column_tensors
from monitoring import event_ingest
from monitoring.parquet_sink import inference_schema
from monitoring.wal import WriteAheadLog


def test_a_torn_tail_is_cut_off_and_earlier_records_survive(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path)
    segment = wal.append([b"one", b"two"])
    wal.close()
    path = tmp_path / f"segment-{segment:08d}.wal"
    with path.open("ab") as handle:
        handle.write(b"\x10\x00\x00\x00garbage")  # a frame header promising more than is there
    assert [p for _, p in WriteAheadLog(tmp_path).recover()] == [b"one", b"two"]
    assert path.stat().st_size == 2 * 8 + 6  # truncated back to the intact frames


@pytest.mark.parametrize("make", [binary_event, structured_event])
def test_both_modes_parse_to_the_same_rows(make: object) -> None:
    features = [f"f{i}" for i in range(3)]
    headers, body = make("request", "id-1", "diecast", v2_request([[1, 2, 3], [4, 5, 6]], features))  # type: ignore[operator]
    record = event_ingest.decode(headers, body, lambda _: LoggedFeatures(tuple(features)))
    assert isinstance(record, RequestHalf)
    assert record.event_id == "id-1" and record.rows == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert record.extensions["inferenceservicename"] == "diecast"


TYPED = LoggedFeatures(("age", "job", "married"), frozenset({"job"}), nullable=True)


def test_a_typed_request_logs_text_nulls_and_bools_as_sent() -> None:
    """What the predictor logs for a typed version (one tensor per feature; BYTES, BOOL,
    nulls) becomes rows of text, numbers and None; the Parquet schema has a string column."""
    columns = {
        "age": np.array([39.0, np.nan]),
        "job": np.array(["clerk", None], dtype=object),
        "married": np.array([True, False]),
    }
    headers, body = binary_event("request", "t-1", "adult", {"inputs": column_tensors(columns)})
    record = event_ingest.decode(headers, body, lambda _: TYPED)
    assert isinstance(record, RequestHalf)
    assert record.rows == [[39.0, "clerk", 1.0], [None, None, 0.0]]
    schema = inference_schema(TYPED)
    assert schema.field("job").type == pa.string() and schema.field("age").type == pa.float32()


@pytest.mark.parametrize(
    ("tensor", "problem"),
    [
        ({"name": "job", "datatype": "FP32", "shape": [1], "data": [3.0]}, "expected text"),
        ({"name": "job", "datatype": "BYTES", "shape": [1], "data": ["x" * 300]}, "longer"),
        ({"name": "age", "datatype": "BYTES", "shape": [1], "data": ["old"]}, "non-numeric"),
    ],
)
def test_a_typed_request_with_a_value_of_the_wrong_kind_is_refused(
    tensor: dict[str, object], problem: str
) -> None:
    others = {
        "age": {"name": "age", "datatype": "FP32", "shape": [1], "data": [30.0]},
        "job": {"name": "job", "datatype": "BYTES", "shape": [1], "data": ["clerk"]},
        "married": {"name": "married", "datatype": "BOOL", "shape": [1], "data": [True]},
    }
    inputs = [tensor if name == tensor["name"] else t for name, t in others.items()]
    headers, body = binary_event("request", "t-2", "adult", {"inputs": inputs})
    with pytest.raises(event_ingest.UnusablePayloadError, match=problem):
        event_ingest.decode(headers, body, lambda _: TYPED)


def test_missing_id_is_malformed() -> None:
    headers, body = binary_event("request", "", "diecast", {"inputs": []})
    with pytest.raises(event_ingest.MalformedEventError, match="id"):
        event_ingest.parse(headers, body)


def test_payload_records_round_trip_through_the_wal_codec() -> None:
    ext = {"inferenceservicename": "diecast"}
    records = [
        RequestHalf("r", "diecast", 1.5, [[1.0, 2.0]], ext),
        ResponseHalf("r", "diecast", 2.5, [0.25], [1], "diecast", "3", ext),
        Feedback("r", "diecast", 1.0, 3.0, 4.5, True),
    ]
    assert [decode(encode(r)) for r in records] == records
    assert [r.key for r in records] == ["request:r", "response:r", "feedback:r:1.0:3.0"]


def test_component_scoped_records_of_an_older_collector_replay_with_their_keys() -> None:
    """Before payloads were logged at the predictor only, the transformer's halves were
    keyed apart; such records may still sit in a WAL and must keep their keys and pairs."""
    old = orjson.dumps(
        {"k": "request", "key": "transformer:request:x", "j": "transformer:x", "id": "x"}
        | {"p": "diecast", "rt": 1.0, "ext": {}, "rows": [[1.0]]}
    )
    record = decode(old)
    assert isinstance(record, RequestHalf)
    assert (record.key, record.pair, record.event_id) == (
        "transformer:request:x",
        "transformer:x",
        "x",
    )
    assert decode(encode(record)) == record
    with pytest.raises(UndecodableRecordError):
        decode(b'{"k": "request", "id": "x"}')
