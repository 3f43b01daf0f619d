"""`POST /v1/observations` on a real collector: real bikeshare hours in, Parquet out; every bad
body (issue 14 §5) answers 4xx naming the problem and writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.support.collector_process import CollectorProcess
from tests.support.forecast_observations import observation_rows

pytestmark = pytest.mark.integration


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    process = CollectorProcess(tmp_path / "home").start()
    try:
        yield process
    finally:
        process.stop()


def observation_files(home: Path) -> list[Path]:
    return sorted((home / "logs" / "bikeshare" / "observations").glob("date=*/*.parquet"))


def test_observations_are_written_per_day_and_bad_ones_are_refused_whole(
    collector: CollectorProcess, bike_frame: pd.DataFrame
) -> None:
    rows = observation_rows(bike_frame, "2014-03-01", 30)  # two days
    answer = collector.client.post(
        "/v1/observations", json={"project": "bikeshare", "observations": rows}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["written"] == 30 and answer.json()["series"] == ["dc"]
    files = observation_files(collector.home)
    assert [f.parent.name for f in files] == ["date=2014-03-01", "date=2014-03-02"]
    table = pd.concat([pq.read_table(f).to_pandas() for f in files])
    assert table["count"].tolist() == [r["count"] for r in rows]
    assert (table["series"] == "dc").all()

    later = rows[-1]["ts"]
    bad_bodies: list[tuple[dict[str, Any], str]] = [
        ({"observations": [{**rows[0], "ts": later}]}, "project"),
        ({"project": "bikeshare", "observations": [{"count": 3, "tmin": 1}]}, "ts: is missing"),
        (
            {
                "project": "bikeshare",
                "observations": [rows[0], rows[1], {**rows[2], "ts": rows[0]["ts"]}],
            },
            "is duplicated (row 0)",
        ),
        ({"project": "bikeshare", "observations": [{**rows[0], "count": -4}]}, "-4 is negative"),
        (
            {"project": "bikeshare", "observations": [{**rows[0], "ts": "yesterday noon"}]},
            "'yesterday noon' is not an ISO-8601 time",
        ),
        (
            {"project": "bikeshare", "observations": [{**rows[0], "ts": "2014-03-05T10:30:00Z"}]},
            "is not on the 3600 s grid",
        ),
        ({"project": "bikeshare", "observations": [{**rows[0], "wind": 3.0}]}, "wind"),
        ({"project": "diecast", "observations": rows[:1]}, "not a forecast project"),
        ({"project": "bikeshare", "observations": []}, "non-empty list"),
    ]
    for body, problem in bad_bodies:
        refused = collector.client.post("/v1/observations", json=body)
        assert 400 <= refused.status_code < 500, (body, refused.text)
        assert problem in refused.json()["error"], (problem, refused.json())
    # A bad row among good ones: the whole body is refused, nothing of it written.
    mixed = [*observation_rows(bike_frame, "2014-04-01", 5), {**rows[0], "count": None}]
    refused = collector.client.post(
        "/v1/observations", json={"project": "bikeshare", "observations": mixed}
    )
    assert refused.status_code == 422
    assert refused.json()["details"] == [{"field": "count", "problem": "is missing", "instance": 5}]
    assert observation_files(collector.home) == files
    unauthenticated = collector.client.post(
        "/v1/observations",
        json={"project": "bikeshare", "observations": rows},
        headers={"authorization": "Bearer wrong"},
    )
    assert unauthenticated.status_code == 401
    assert observation_files(collector.home) == files
