"""Bad input to the studio (issue 15 §4): a clear 4xx or `isValid=false`, nothing half-stored."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.integration.studio.conftest import Studio, Trained

pytestmark = pytest.mark.integration

GOOD = b"timestamp,item_id,position,click\n" + b"".join(
    f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z,{i % 5},{1 + i % 3},{int(i % 7 == 0)}\n".encode()
    for i in range(300)
)


def _stored(studio: Studio) -> set[str]:
    uploads = studio.home / "studio" / "uploads"
    return {p.name for p in uploads.iterdir()} if uploads.is_dir() else set()


def _refused(studio: Studio, name: str, content: bytes, status: int, words: str) -> None:
    before = _stored(studio)
    answer = studio.upload(name, content)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]
    assert _stored(studio) == before  # nothing half-stored


def test_non_csv_empty_binary_and_wrong_encoding_are_4xx(studio: Studio) -> None:
    _refused(studio, "data.xlsx", GOOD, 415, "not a CSV")
    _refused(studio, "empty.csv", b"", 400, "empty")
    _refused(studio, "blob.csv", b"\x00\x01\x02PK" * 50, 415, "binary")
    latin1 = "click,city\n0,Zürich\n1,Köln\n".encode("latin-1")
    _refused(studio, "latin1.csv", latin1, 400, "not UTF-8")
    _refused(studio, "ragged.csv", b'click,x\n0,"unterminated\n', 400, "not a readable CSV")


def test_a_body_past_the_limit_is_413_and_not_stored(studio: Studio) -> None:
    _refused(studio, "big.csv", b"click,x\n" + b"0,1\n" * 1_000_000, 413, "limit")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"a,b\n1,2\n3,4\n", "no usable target"),
        (b"click,b\nyes,2\nmaybe,4\n", "no usable target"),
        (b"click,b\n" + b"0,1\n" * 200, "single class"),
        (GOOD.replace(b",1\n", b",0\n")[:2000] + b"", "single class"),
    ],
)
def test_a_csv_that_cannot_train_is_invalid_and_not_stored(
    studio: Studio, content: bytes, words: str
) -> None:
    before = _stored(studio)
    answer = studio.upload("table.csv", content)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["validation"]["isValid"] is False and body["file_id"] is None
    assert any(words in e for e in body["validation"]["errors"]), body["validation"]
    assert _stored(studio) == before


def test_too_few_clicks_in_the_time_ordered_test_part_is_named(studio: Studio) -> None:
    late_free = GOOD.split(b"\n")
    rows = [late_free[0]] + [
        r if i < 200 else r[: r.rfind(b",")] + b",0" for i, r in enumerate(late_free[1:-1])
    ]
    body = studio.upload("late.csv", b"\n".join(rows) + b"\n").json()
    assert body["validation"]["isValid"] is False
    assert any("test part" in e for e in body["validation"]["errors"])


def test_path_traversal_is_refused_and_markup_sanitised(studio: Studio) -> None:
    _refused(studio, "../../etc/passwd.csv", GOOD, 400, "holds a path")
    _refused(studio, "..\\evil.csv", GOOD, 400, "holds a path")
    answer = studio.upload('<img src=x onerror="alert(1)">.csv', GOOD)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    name = body["filename"]
    assert "<" not in name and '"' not in name and " " not in name and name.endswith(".csv")
    assert any("was stored as" in w for w in body["validation"]["warnings"])
    stored = studio.home / "studio" / "uploads" / body["file_id"] / name
    assert stored.is_file() and stored.read_bytes() == GOOD
    assert list(Path(studio.home).rglob("*onerror*")) == [stored]  # nowhere else


def test_unknown_ids_are_404(studio: Studio) -> None:
    unknown_run = "0" * 32
    for path in (
        "/api/upload/0123456789ab/spec",
        "/api/upload/..%2F..%2Fetc/spec",
        f"/api/train/status/{unknown_run}",
        f"/api/report/feature-importance/{unknown_run}",
        f"/api/report/correlation/{unknown_run}",
        f"/api/report/ai/{unknown_run}",
        f"/api/report/pdf/{unknown_run}",
        f"/api/performance/{unknown_run}",
    ):
        answer = httpx.get(studio.url + path)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["type"]
    train = httpx.post(
        f"{studio.url}/api/train", json={"file_id": "0123456789ab"}, headers=studio.auth
    )
    assert train.status_code == 404 and "0123456789ab" in train.json()["error"]


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"epochs": 0}, "config.epochs"),
        ({"epochs": -3}, "config.epochs"),
        ({"learning_rate": 0}, "config.learning_rate"),
        ({"dropout": 1.5}, "config.dropout"),
        ({"batch_size": "many"}, "config.batch_size"),
    ],
)
def test_a_config_out_of_range_is_422_naming_the_field(
    studio: Studio, config: dict[str, object], field: str
) -> None:
    answer = httpx.post(
        f"{studio.url}/api/train",
        json={"file_id": "0123456789ab", "config": config},
        headers=studio.auth,
    )
    assert answer.status_code == 422, answer.text
    assert [d["field"] for d in answer.json()["details"]] == [field]
    assert field in answer.json()["error"]


def test_a_second_training_of_the_same_file_is_refused_with_a_reason(trained: Trained) -> None:
    assert trained.second.status_code == 409
    assert trained.run_id in trained.second.json()["error"]
    assert "already training" in trained.second.json()["error"]


def test_a_client_leaving_mid_stream_breaks_nothing(studio: Studio, trained: Trained) -> None:
    assert len(trained.dropped) == 1  # it left after one message ...
    status = httpx.get(f"{studio.url}/api/train/status/{trained.run_id}").json()
    assert status["status"] == "completed"  # ... and the training went on to the end
    assert "Traceback" not in studio.log.read_text()
