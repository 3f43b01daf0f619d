"""`KeptWindows.windows` answers, when it answers, exactly what
`window_batch(read_recent(...))` answers, run after run, on real collector Parquet
(monitoring.observation_ingest.write_observations); and it answers in the steady state."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from castml.protocol.forecast_record import ObservationSchema
from monitoring.observation_ingest import parse_rows, write_observations
from serving.forecast_history import (
    Skipped,
    WindowBatch,
    partition_files,
    read_recent,
    window_batch,
)
from serving.forecast_windows_kept import KeptWindows

SCHEMA = ObservationSchema("bikeshare", "ts", "count", ("tmin",))
COLUMNS = ["ts", "count", "tmin"]
HOUR_MS = 3_600_000
T0 = 1_400_000_000 - 1_400_000_000 % 86_400  # a midnight (UTC)
Row = tuple[str, int, float, float | None]  # series, hour, count, tmin


def post(logs: Path, rows: Sequence[Row]) -> None:
    """One post of (series, hour, count, tmin) rows: the collector's files, one per day."""
    body = {
        "observations": [
            {"ts": T0 + hour * 3600, "count": count, "tmin": tmin, "series": series}
            for series, hour, count, tmin in rows
        ]
    }
    time.sleep(0.002)  # each post its own received_at millisecond: the later one wins
    write_observations(logs, SCHEMA, parse_rows(body, SCHEMA, "dc"))


def row(series: str, hour: int, rng: random.Random) -> Row:
    return series, hour, float(rng.randint(0, 500)), rng.choice([None, rng.random()])


@dataclass
class Query:
    lookback: int
    rows: int
    max_gap: int = 0

    def expected(self, logs: Path) -> tuple[WindowBatch, list[Skipped]]:
        observed = read_recent(logs, "bikeshare", self.lookback, COLUMNS, self.rows, HOUR_MS)
        return window_batch(observed, "ts", self.rows, HOUR_MS, None, self.max_gap)

    def kept(self, kept: KeptWindows, logs: Path) -> tuple[WindowBatch, list[Skipped]] | None:
        return kept.windows(
            logs, "bikeshare", self.lookback, COLUMNS, self.rows, HOUR_MS, None, self.max_gap
        )


def assert_same(
    got: tuple[WindowBatch, list[Skipped]], want: tuple[WindowBatch, list[Skipped]]
) -> None:
    (batch, skipped), (expected, expected_skipped) = got, want
    assert skipped == expected_skipped
    assert batch.series == expected.series
    assert batch.end_ms.dtype == expected.end_ms.dtype
    assert np.array_equal(batch.end_ms, expected.end_ms)
    assert np.array_equal(batch.filled, expected.filled)
    assert (batch.step_ms, batch.time_column) == (expected.step_ms, expected.time_column)
    assert list(batch.grid) == list(expected.grid)
    for name, values in expected.grid.items():
        assert batch.grid[name].shape == values.shape, name
        assert np.array_equal(batch.grid[name], values, equal_nan=True), name


def check(kept: KeptWindows, query: Query, logs: Path) -> bool:
    """One job run: the kept windows if they answer (compared with reading everything),
    else the full read handed back to them. Whether they answered."""
    want = query.expected(logs)
    got = query.kept(kept, logs)
    if got is None:
        kept.keep(*want)
        return False
    assert_same(got, want)
    return True


def start(logs: Path, series: list[str], hours: int, rng: random.Random) -> dict[str, int]:
    """`hours` hours of each series; each series' next hour."""
    post(logs, [row(s, h, rng) for h in range(hours) for s in series])
    return dict.fromkeys(series, hours)


def test_the_next_hours_of_every_series_shift_the_windows(tmp_path: Path) -> None:
    logs, rng = tmp_path / "logs", random.Random(1)
    following = start(logs, [f"s{i}" for i in range(7)], 30, rng)
    kept, query = KeptWindows(), Query(lookback=30, rows=24)
    assert not check(kept, query, logs)  # the first run reads everything
    assert check(kept, query, logs)  # nothing new: the same batch
    for _ in range(30):  # past midnight on the way
        post(logs, [row(s, h, rng) for s, h in following.items()])
        following = {s: h + 1 for s, h in following.items()}
        assert check(kept, query, logs), kept.reason
    post(logs, [row(s, h + k, rng) for s, h in following.items() for k in (0, 1)])  # 2 at once
    assert check(kept, query, logs), kept.reason
    # The next hour sent twice before a run: the one received last, as read_recent keeps.
    post(logs, [row(s, following[s] + 2, rng) for s in ("s1", "s2")])
    post(logs, [("s1", following["s1"] + 2, 7.0, 1.0)])
    assert check(kept, query, logs), kept.reason
    batch = kept.windows(logs, "bikeshare", 30, COLUMNS, 24, HOUR_MS, None, 0)
    assert batch is not None and batch[0].grid["count"][1, -1] == 7.0


def test_a_sequence_of_runs_answers_as_reading_everything(tmp_path: Path) -> None:
    """Random runs: the next hour of every series (most runs), of some series, two hours
    at once, a replay of an hour held with a new value, a gap, a new series, a file
    deleted, a lookback too small for the windows, a lookback that changes."""
    logs, rng = tmp_path / "logs", random.Random(14)
    series = [f"s{i}" for i in range(6)]
    following = start(logs, series, 40, rng)
    queries = {
        "day": Query(lookback=30, rows=24),
        "short": Query(lookback=30, rows=6, max_gap=1),
        "tight": Query(lookback=1, rows=6),  # a window across midnight is not read
    }
    kept = {key: KeptWindows() for key in queries}
    flipping = KeptWindows()  # its lookback changes between runs
    dense = dict.fromkeys(queries, False)  # whether the last run's batch was dense
    steady = dict.fromkeys(queries, 0)  # the next hour of everyone after a dense run
    answered = dict.fromkeys(queries, 0)  # of those, the runs the kept windows answered
    for step in range(150):
        move = rng.random()
        everyone = move < 0.6
        if everyone:  # the next hour of every series: the steady state
            post(logs, [row(s, h, rng) for s, h in following.items()])
            following = {s: h + 1 for s, h in following.items()}
        elif move < 0.67:  # the next hour of some series only
            some = rng.sample(sorted(following), 2)
            post(logs, [row(s, following[s], rng) for s in some])
            following.update({s: following[s] + 1 for s in some})
        elif move < 0.72:  # two hours at once
            post(logs, [row(s, h + k, rng) for s, h in following.items() for k in (0, 1)])
            following = {s: h + 2 for s, h in following.items()}
        elif move < 0.8:  # a replay of an hour held, a new value
            name = rng.choice(sorted(following))
            post(logs, [(name, following[name] - rng.randint(1, 5), 999.0, None)])
        elif move < 0.83:  # a gap: an hour of a series never comes
            name = rng.choice(sorted(following))
            following[name] += 1
            post(logs, [row(name, following[name], rng)])
            following[name] += 1
        elif move < 0.87:  # a new series, with a whole day of history or a few hours
            name = f"n{step}"
            hour = max(following.values())
            post(logs, [row(name, h, rng) for h in range(hour - rng.choice([3, 30]), hour)])
            following[name] = hour
        elif move < 0.89:  # a file of the latest days goes (retention, an operator)
            rng.choice(partition_files(logs, "bikeshare", 30)[-20:]).unlink()
        else:  # nothing new
            pass
        for key, query in queries.items():
            answer = check(kept[key], query, logs)
            if everyone and dense[key]:
                steady[key] += 1
                answered[key] += answer
            batch, skipped = query.expected(logs)
            dense[key] = not skipped and bool(batch.filled.all()) and len(batch) > 0
        check(flipping, Query(lookback=30 if step % 7 else 2, rows=6), logs)
    # The steady state: after a dense run, the next hour of every series is answered
    # (for the 1-day lookback, not when the windows pass midnight).
    assert answered["day"] == steady["day"] >= 8, (answered, steady)
    assert answered["short"] == steady["short"] >= 30, (answered, steady)
    assert steady["tight"] > answered["tight"] >= steady["tight"] // 2, (answered, steady)


def test_a_file_with_rows_outside_its_day_is_never_shifted_over(tmp_path: Path) -> None:
    logs, rng = tmp_path / "logs", random.Random(6)
    following = start(logs, ["a", "b"], 60, rng)
    kept, query = KeptWindows(), Query(lookback=30, rows=6)
    assert not check(kept, query, logs)
    # Not the collector's: the last hour of "a" again, later received, in day 0's folder.
    files = partition_files(logs, "bikeshare", 30)
    table = pq.read_table(files[-1])
    last = table.filter(pa.compute.equal(table["series"], "a")).slice(0, 1)
    last = last.set_column(
        last.schema.get_field_index("ts"),
        last.schema.field("ts"),
        pa.array([(T0 + (following["a"] - 1) * 3600) * 1000]).cast(last.schema.field("ts").type),
    )
    last = last.set_column(
        last.schema.get_field_index("count"), last.schema.field("count"), pa.array([77.0])
    )
    pq.write_table(last, files[0].parent / "part-z.parquet")
    assert not check(kept, query, logs) and kept.reason == "a new file with rows outside its day"
    for _ in range(3):  # the stray file is among the files now: never kept
        post(logs, [row(s, h, rng) for s, h in following.items()])
        following = {s: h + 1 for s, h in following.items()}
        assert not check(kept, query, logs)


def test_series_asked_for_by_name_are_read_as_before(tmp_path: Path) -> None:
    logs, rng = tmp_path / "logs", random.Random(7)
    start(logs, ["a", "b"], 30, rng)
    kept = KeptWindows()
    for _ in range(2):
        assert kept.windows(logs, "bikeshare", 30, COLUMNS, 6, HOUR_MS, {"a"}, 0) is None
        observed = read_recent(logs, "bikeshare", 30, COLUMNS, 6, HOUR_MS, {"a"})
        kept.keep(*window_batch(observed, "ts", 6, HOUR_MS, {"a"}, 0))
    assert kept.reason == "series asked for by name"


def test_a_skipped_series_keeps_nothing_and_no_files_answers_nothing(tmp_path: Path) -> None:
    logs, rng = tmp_path / "logs", random.Random(8)
    query, kept = Query(lookback=30, rows=6), KeptWindows()
    assert not check(kept, query, logs)  # no files at all
    start(logs, ["a"], 30, rng)
    post(logs, [row("short", h, rng) for h in range(27, 30)])
    for _ in range(2):
        assert not check(kept, query, logs)


def test_more_new_hours_than_a_window_holds(tmp_path: Path) -> None:
    logs, rng = tmp_path / "logs", random.Random(9)
    following = start(logs, ["a", "b", "c"], 10, rng)
    kept, query = KeptWindows(), Query(lookback=30, rows=3)
    assert not check(kept, query, logs)
    post(logs, [row(s, h + k, rng) for s, h in following.items() for k in range(5)])
    assert check(kept, query, logs), kept.reason  # every series 5 hours on: new windows
    following = {s: h + 5 for s, h in following.items()}
    # Each series its own count: 0, 1 and 4 hours.
    post(
        logs,
        [row("b", following["b"], rng), *(row("c", following["c"] + k, rng) for k in range(4))],
    )
    assert check(kept, query, logs), kept.reason
