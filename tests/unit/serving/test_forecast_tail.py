"""`ObservationTail.read` answers what `read_recent` answers, run after run, on real
collector Parquet (monitoring.observation_ingest.write_observations), reading only the
files written since its last call in the steady state."""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from castml.protocol.forecast_record import ObservationSchema
from monitoring.observation_ingest import parse_rows, write_observations
from serving.forecast_history import Observed, partition_files, read_recent
from serving.forecast_tail import ObservationTail

SCHEMA = ObservationSchema("bikeshare", "ts", "count", ("tmin",))
COLUMNS = ["ts", "count", "tmin"]
HOUR_MS = 3_600_000
T0 = 1_400_000_000 - 1_400_000_000 % 86_400  # a midnight (UTC)
ROWS = 24
Row = tuple[str, int, float, float | None]  # series, hour, count, tmin


def post(logs: Path, rows: Sequence[Row]) -> tuple[Path, ...]:
    """One post of (series, hour, count, tmin) rows: its files (one per day), in order."""
    body = {
        "observations": [
            {"ts": T0 + hour * 3600, "count": count, "tmin": tmin, "series": series}
            for series, hour, count, tmin in rows
        ]
    }
    before = set(partition_files(logs, "bikeshare", 10_000))
    time.sleep(0.002)  # each post its own received_at millisecond: the later one wins
    write_observations(logs, SCHEMA, parse_rows(body, SCHEMA, "dc"))
    return tuple(sorted(set(partition_files(logs, "bikeshare", 10_000)) - before))


def hours(series: list[str], hour: int, rng: random.Random) -> list[Row]:
    return [(s, hour, float(rng.randint(0, 500)), rng.choice([None, rng.random()])) for s in series]


def assert_same(got: Observed, want: Observed) -> None:
    assert got.names.tolist() == want.names.tolist()
    assert got.codes.dtype == want.codes.dtype and np.array_equal(got.codes, want.codes)
    assert got.times.dtype == want.times.dtype and np.array_equal(got.times, want.times)
    assert list(got.values) == list(want.values)
    for name, values in want.values.items():
        assert np.array_equal(got.values[name], values, equal_nan=True), name


def check(
    tail: ObservationTail,
    logs: Path,
    lookback: int = 30,
    rows: int = ROWS,
    only: set[str] | None = None,
) -> Observed:
    got = tail.read(logs, "bikeshare", lookback, COLUMNS, rows, HOUR_MS, only)
    assert_same(got, read_recent(logs, "bikeshare", lookback, COLUMNS, rows, HOUR_MS, only))
    return got


def test_a_run_after_the_first_reads_only_the_new_file(tmp_path: Path) -> None:
    logs, rng = tmp_path / "logs", random.Random(1)
    series = [f"s{i}" for i in range(6)]
    for hour in range(80):  # four days: the older two are only looked at, not read
        post(logs, hours(series, hour, rng))
    tail = ObservationTail()
    check(tail, logs)
    # The days a window can reach (day 2, day 3's 8 hours): the files read.
    assert tail.last_full and len(tail.last_read) == 24 + 8
    scanned = tail.series.reads
    assert scanned == 2 * 24  # the older days' series names, once
    for hour in range(80, 90):
        new = post(logs, hours(series, hour, rng))
        observed = check(tail, logs)
        assert not tail.last_full and tail.last_read == new
        assert tail.series.reads == scanned  # the older days' names are not read again
        assert observed.times[-1] == (T0 + hour * 3600) * 1000
    # Past midnight: the oldest day read is dropped, not read again.
    new = post(logs, hours(series, 96, rng))
    check(tail, logs)
    assert not tail.last_full and tail.last_read == new
    assert tail.series.reads > scanned  # a day became an older one: its files' names


def test_a_replay_keeps_the_row_received_last(tmp_path: Path) -> None:
    logs, rng = tmp_path / "logs", random.Random(2)
    for hour in range(30):
        post(logs, hours(["a", "b"], hour, rng))
    tail = ObservationTail()
    check(tail, logs)
    replay = post(logs, [("a", 28, 1000.0, 5.0), ("b", 29, 2000.0, None), ("a", 30, 1.0, None)])
    got = check(tail, logs)
    assert tail.last_read == replay and not tail.last_full
    at = (got.names[got.codes] == "a") & (got.times == (T0 + 28 * 3600) * 1000)
    assert got.values["count"][at].tolist() == [1000.0] and got.values["tmin"][at] == 5.0


def test_a_tie_of_received_goes_to_the_file_read_recent_reads_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs, rng = tmp_path / "logs", random.Random(3)
    for hour in range(30):
        post(logs, hours(["a", "b"], hour, rng))
    tail = ObservationTail()
    check(tail, logs)
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.0)
    for count in (1.0, 2.0, 3.0):  # received at once: the later name in the folder wins
        post(logs, [("a", 29, count, None), ("b", 29, count, None)])
        check(tail, logs)
        assert not tail.last_full


def test_a_sequence_of_posts_reads_as_read_recent(tmp_path: Path) -> None:
    """Random runs: new hours, replays, new series (some too short: every day is read),
    a file deleted, midnight passed, series asked for by name, a shorter lookback."""
    logs, rng = tmp_path / "logs", random.Random(14)
    series = [f"s{i}" for i in range(5)]
    for hour in range(50):
        post(logs, [*hours(series, hour, rng), ("t", hour, 1.0, float(hour))])
    tails: dict[str, tuple[ObservationTail, dict[str, Any]]] = {
        "all": (ObservationTail(), {}),
        "only": (ObservationTail(), {"only": {"s1", "s3"}}),
        "only_unseen": (ObservationTail(), {"only": {"s1", "never"}}),
        "short": (ObservationTail(), {"lookback": 2, "rows": 6}),
        "hour": (ObservationTail(), {"rows": 1}),
    }
    flipping = ObservationTail()  # its lookback changes between calls
    incremental = dict.fromkeys(tails, 0)
    hour = 50
    for step in range(70):
        move = rng.random()
        if move < 0.55:  # the next hour of every series
            post(logs, [*hours(series, hour, rng), ("t", hour, 2.0, None)])
            hour += 1
        elif move < 0.7:  # a replay of hours already sent, new values
            replay = rng.sample(range(hour - 30, hour), 3)
            post(logs, [(s, h, 1000.0 + h, 0.5) for s in series[:3] for h in replay])
        elif move < 0.8:  # a new series, its history short at first
            name = f"n{step}"
            series.append(name)
            post(logs, [(name, h, 3.0, None) for h in range(hour - rng.randint(1, 30), hour)])
        elif move < 0.87:  # a file of the latest days goes
            files = partition_files(logs, "bikeshare", 30)
            rng.choice(files[-30:]).unlink()
        elif move < 0.9:  # the newest day's folder goes: the newest day goes back
            newest = partition_files(logs, "bikeshare", 30)[-1].parent
            if len(list(newest.parent.iterdir())) > 3:
                shutil.rmtree(newest)
        elif move < 0.94:  # a series reappears after days away
            post(logs, [("t", hour - 1, 9.0, 1.0)])
        else:  # past midnight, hours skipped
            hour = (hour // 24 + 1) * 24 + rng.randint(0, 3)
        for key, (tail, query) in tails.items():
            check(tail, logs, **query)
            incremental[key] += not tail.last_full
        check(flipping, logs, lookback=30 if step % 9 else 3)
    assert all(count > 20 for count in incremental.values()), incremental


@pytest.mark.parametrize("empty_first", [True, False])
def test_no_files_then_files(tmp_path: Path, empty_first: bool) -> None:
    logs, rng = tmp_path / "logs", random.Random(5)
    tail = ObservationTail()
    if empty_first:
        check(tail, logs)
    for hour in range(3):
        post(logs, hours(["a"], hour, rng))
        check(tail, logs)


def test_rows_outside_their_day_are_read_as_read_recent_and_not_kept(tmp_path: Path) -> None:
    logs, rng = tmp_path / "logs", random.Random(6)
    for hour in range(30):
        post(logs, hours(["a", "b"], hour, rng))
    tail = ObservationTail()
    check(tail, logs)
    # A file not written by the collector: an hour of day 0 in day 1's folder, sent later.
    files = partition_files(logs, "bikeshare", 30)
    table = pq.read_table(files[0]).slice(0, 1)
    for name, value in (("count", 77.0), ("received_at", table["received_at"][0].value * 2)):
        at = table.schema.get_field_index(name)
        table = table.set_column(
            at, table.schema.field(at), pa.array([value]).cast(table.schema.field(at).type)
        )
    pq.write_table(table, files[-1].parent / "part-z.parquet")
    check(tail, logs)
    assert tail.last_full
    post(logs, hours(["a", "b"], 30, rng))
    check(tail, logs)
    assert tail.last_full  # nothing was held
