"""WAL framing survives a torn tail; CloudEvent parsing in both modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from castml.cli.logger_cloudevents import binary_event, structured_event, v2_request
from monitoring import event_ingest
from castml.protocol.payload_record import RequestHalf
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
    record = event_ingest.decode(headers, body, lambda _: features)
    assert isinstance(record, RequestHalf)
    assert record.event_id == "id-1" and record.rows == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert record.extensions["inferenceservicename"] == "diecast"


def test_missing_id_is_malformed() -> None:
    headers, body = binary_event("request", "", "diecast", {"inputs": []})
    with pytest.raises(event_ingest.MalformedEventError, match="id"):
        event_ingest.parse(headers, body)
