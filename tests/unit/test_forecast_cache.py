"""The forecast cache contract: record codec and keys, history windows from observation
Parquet (dedupe, gaps, short histories), and the cache's writes on a real redis-server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from castml.protocol.forecast_record import (
    BadSeriesError,
    ForecastRecord,
    ForecastRun,
    ObservationSchema,
    check_series,
    error_key,
    forecast_key,
    iso,
    log_key,
    run_key,
)
from monitoring.observation_ingest import parse_rows, write_observations
from serving.forecast_cache import CacheUnavailableError, ForecastCache
from serving.forecast_history import (
    WindowBatch,
    partition_files,
    read_columns,
    read_observations,
    read_recent,
    window_batch,
    windows,
)
from serving.forecast_realised import Realised, waiting_blob
from serving.forecast_resp import command_bytes
from serving.forecast_table import ForecastTable
from serving.settings import ForecastSettings
from tests.support.redis_server import client_of, redis_server

SCHEMA = ObservationSchema("bikeshare", "ts", "count", ("tmin",))
COLUMNS = ["ts", "count", "tmin"]
HOUR_MS = 3_600_000
T0 = 1_400_000_000 - 1_400_000_000 % 3600  # on the hour


def record(value: float = 12.5, version: str = "3") -> ForecastRecord:
    return ForecastRecord("bikeshare", "dc", 24, value, version, T0 + 10.0, float(T0), 600)


def test_record_round_trips_and_names_its_key() -> None:
    original = record()
    assert original.key == "forecast:bikeshare:dc:24" == forecast_key("bikeshare", "dc", 24)
    body = original.to_json()
    assert body["target_time"] > body["window_end"]
    assert set(body) == {
        "project",
        "series",
        "horizon",
        "value",
        "model_version",
        "made_at",
        "window_end",
        "target_time",
        "ttl_s",
    }
    assert ForecastRecord.decode(original.encode()) == original
    with pytest.raises(ValueError, match="not a forecast record"):
        ForecastRecord.decode(b'{"value": 1}')
    run = ForecastRun("bikeshare", "3", (1, 24), T0, 2, {"x": "gap: 3 h"}, 0.1)
    assert ForecastRun.decode(run.encode()) == run
    assert run_key("bikeshare") == "forecast-run:bikeshare"


@pytest.mark.parametrize("name", ["", "a/b", "a:b", "../x", "x" * 65, "-x", 7])
def test_series_names_that_would_become_keys_or_paths_are_refused(name: object) -> None:
    with pytest.raises(BadSeriesError):
        check_series(name)


def observe(logs: Path, series: str, hours: list[int], count: float = 1.0) -> None:
    body = {
        "observations": [
            {"ts": (T0 + h * 3600), "count": count + h, "tmin": 2.0, "series": series}
            for h in hours
        ]
    }
    write_observations(logs, SCHEMA, parse_rows(body, SCHEMA, "dc"))


def test_windows_keep_the_last_received_row_and_skip_gaps_and_short_histories(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    observe(logs, "whole", list(range(10)))
    observe(logs, "whole", [9], count=100.0)  # sent again later: this one counts
    observe(logs, "gap", [h for h in range(10) if h not in (6, 7)])
    observe(logs, "hole", [h for h in range(10) if h != 7])
    observe(logs, "short", [7, 8, 9])
    table = read_observations(partition_files(logs, "bikeshare", 30), COLUMNS)
    found, skipped = windows(table, COLUMNS, 6, HOUR_MS)
    assert [w.series for w in found] == ["whole"]
    whole = found[0]
    assert whole.columns["count"].tolist() == [5.0, 6.0, 7.0, 8.0, 9.0, 109.0]
    assert whole.columns["ts"].dtype == np.dtype("datetime64[ms]")
    assert whole.end_ms == (T0 + 9 * 3600) * 1000
    reasons = {s.series: (s.reason, s.detail) for s in skipped}
    assert reasons["gap"][0] == "gap" and "widest gap 2 h" in reasons["gap"][1]
    assert reasons["hole"][0] == "gap"
    assert reasons["short"] == ("too_short", "3 of the 6 hours needed")
    # A model that tolerates one missing hour in a row takes `hole`, not `gap`.
    tolerant, _ = windows(table, COLUMNS, 6, HOUR_MS, max_gap=1)
    assert [w.series for w in tolerant] == ["hole", "whole"]
    # Series asked for by name: one never observed is skipped, named.
    _, missing = windows(table, COLUMNS, 6, HOUR_MS, only={"whole", "elsewhere"})
    assert [(s.series, s.reason) for s in missing] == [("elsewhere", "too_short")]


def test_the_job_reads_the_same_windows_laid_on_their_grids(tmp_path: Path) -> None:
    """`window_batch` over `read_columns` (the job's numpy path) holds exactly the
    windows `windows` gives one by one, with NaN in a tolerated hole."""
    logs = tmp_path / "logs"
    observe(logs, "whole", list(range(10)))
    observe(logs, "whole", [9], count=100.0)
    observe(logs, "hole", [h for h in range(10) if h != 7])
    observe(logs, "short", [7, 8, 9])
    files = partition_files(logs, "bikeshare", 30)
    for only in (None, {"hole", "short", "elsewhere"}):
        batch, skipped = window_batch(read_columns(files, COLUMNS), "ts", 6, HOUR_MS, only, 1)
        found, expected_skips = windows(
            read_observations(files, COLUMNS), COLUMNS, 6, HOUR_MS, only, 1
        )
        assert skipped == expected_skips
        assert batch.series == [w.series for w in found]
        for i, window in enumerate(found):
            again = batch.window(i)
            assert again.end_ms == window.end_ms
            for name, values in window.columns.items():
                np.testing.assert_array_equal(again.columns[name], values)
    hole = batch.series.index("hole")
    assert batch.filled[hole].tolist() == [True, True, True, False, True, True]  # hour 7
    assert np.isnan(batch.grid["count"][hole, 3]) and batch.grid["count"][hole, 5] == 10.0
    assert [s.series for s in skipped] == ["short", "elsewhere"]


def test_the_job_reads_only_the_days_its_windows_need_unless_a_series_reaches_back(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    observe(logs, "now", list(range(121)))  # five days, hour by hour
    files = partition_files(logs, "bikeshare", 30)
    oldest = files[0].parent
    assert len({f.parent for f in files}) == 6
    everything = read_columns(files, COLUMNS)
    # A file in the oldest day with its series names only: a read of its values fails.
    pq.write_table(pa.table({"series": ["now"]}), oldest / "part-names.parquet")
    recent = read_recent(logs, "bikeshare", 30, COLUMNS, 6, HOUR_MS)
    expected, _ = window_batch(everything, "ts", 6, HOUR_MS)
    got, skipped = window_batch(recent, "ts", 6, HOUR_MS)
    assert skipped == [] and got.series == expected.series == ["now"]
    np.testing.assert_array_equal(got.grid["count"], expected.grid["count"])

    # A series last seen in the oldest day: its window lies there, so every day is read.
    observe(logs, "stale", list(range(8)))
    with pytest.raises(Exception, match="count"):
        read_recent(logs, "bikeshare", 30, COLUMNS, 6, HOUR_MS)
    (oldest / "part-names.parquet").unlink()
    got, _ = window_batch(read_recent(logs, "bikeshare", 30, COLUMNS, 6, HOUR_MS), "ts", 6, HOUR_MS)
    assert got.series == ["now", "stale"] and got.end_ms[1] == (T0 + 7 * 3600) * 1000
    # So is a series asked for by name and not seen in the latest days.
    observe(logs, "stale", [9], count=5.0)
    assert read_recent(logs, "bikeshare", 30, COLUMNS, 6, HOUR_MS, {"stale"}).times.size > 121


def table_of(one: ForecastRecord) -> ForecastTable:
    return ForecastTable(
        one.project,
        one.model_version,
        (one.horizon,),
        [one.series],
        np.array([one.window_end]),
        np.array([[one.value]]),
        one.made_at,
        one.ttl_s,
    )


def test_a_tables_cells_are_its_records_encoded() -> None:
    """The job's bulk encoding writes exactly `ForecastRecord.encode`'s bytes, which read
    back as the record: NaN as null, a version or project with quotes or % escaped."""
    table = ForecastTable(
        "bikeshare",
        'v"7%d',
        (1, 24),
        ["a", "b.2", "c"],
        np.array([T0, T0 + 3600.0, T0]),
        np.array([[1.5, 2.0], [1e-7, 3e16], [float("nan"), 0.0]]),
        T0 + 12.0,
        900,
    )
    records = table.records()
    cells = list(table.cells())
    assert len(records) == len(cells) == len(table) == 6
    packed = b"".join(command_bytes(b"SET", k, v, b"EX", b"900") for k, v in cells)
    assert table.set_commands() == packed
    assert table.set_commands() == packed  # again, from the kept cell heads
    for one, (key, value) in zip(records, cells, strict=True):
        assert key == one.key.encode() and value == one.encode()
        body = orjson.loads(value)
        assert body["model_version"] == 'v"7%d' and body["target_time"] == iso(one.target_time)
        if np.isnan(one.value):
            assert body["value"] is None
        else:
            assert ForecastRecord.decode(value) == one


@pytest.mark.parametrize("lean", [True, False], ids=["resp-link", "redis-py"])
def test_cache_writes_one_transaction_with_ttl_and_refuses_a_wrong_password(
    tmp_path: Path, lean: bool
) -> None:
    with redis_server(tmp_path / "redis") as server:
        settings = ForecastSettings(
            home=tmp_path, redis_url=server.url, redis_password=server.password
        )
        cache = ForecastCache(settings, lean=lean)
        cache.check()
        run = ForecastRun("bikeshare", "3", (24,), T0, 1, {}, 0.1)
        cache.write(table_of(record()), run, remember=True)
        client = client_of(server)
        assert 0 < client.ttl("forecast:bikeshare:dc:24") <= 600
        assert client.ttl(run_key("bikeshare")) == -1  # the summary stays: /metrics reads it
        assert cache.read("bikeshare", "dc", [24, 1]) == [record().encode(), None]
        waiting = log_key("bikeshare", 24, T0 + 24 * 3600)
        assert orjson.loads(client.get(waiting) or b"") == {"series": ["dc"], "values": [12.5]}
        assert client.ttl(waiting) > 24 * 3600

        # The next run replaces it, another version at two horizons.
        two = ForecastRun("bikeshare", "4", (1, 24), T0, 1, {}, 0.1)
        both = ForecastTable(
            "bikeshare", "4", (1, 24), ["dc"], np.array([T0]), np.array([[1.0, 2.0]]), T0, 60
        )
        # With commands sent after the transaction in the same round trip (the realised
        # error's records): both land, and an error among them is raised.
        more = [command_bytes(b"HINCRBY", b"sums", b"n", b"2")] * 2
        cache.write(both, two, then=more)
        assert cache.read("bikeshare", "dc", [1, 24]) == [value for _, value in both.cells()]
        assert client.hget("sums", "n") == b"4"
        with pytest.raises(CacheUnavailableError):
            cache.write(both, two, then=[command_bytes(b"HINCRBY", b"sums", b"n", b"x")])
        cache.write(both, two, then=more)  # the link is still in step
        assert client.hget("sums", "n") == b"8"

        wrong = ForecastCache(settings.model_copy(update={"redis_password": "wrong"}), lean=lean)
        with pytest.raises(CacheUnavailableError, match="unavailable"):
            wrong.check()
        with pytest.raises(CacheUnavailableError):
            wrong.write(table_of(record(99.0)), run)
        assert cache.read("bikeshare", "dc", [1, 24]) == [value for _, value in both.cells()]
        cache.close()


def test_waiting_forecasts_are_matched_kept_or_dropped_per_target_hour(tmp_path: Path) -> None:
    """realise over one key per target hour: a hit counts once; a forecast whose series
    has not reached its hour (or is not in this run) waits on; one whose hour fell out of
    its series' window unobserved is dropped; an unreadable key is dropped."""
    hour = 3600
    rows = 6
    grid = np.arange(12, dtype=np.float64).reshape(2, rows) * 10  # a: 0..50, b: 60..110
    filled = np.ones((2, rows), dtype=bool)
    filled[1, 0] = False
    batch = WindowBatch(
        ["a", "b"],
        np.array([(T0 + 5 * hour) * 1000, (T0 + 3 * hour) * 1000]),
        {"count": grid},
        filled,
        hour * 1000,
        "ts",
    )  # a: T0 .. T0+5h; b: T0-2h .. T0+3h (its first hour missing)
    with redis_server(tmp_path / "redis") as server:
        settings = ForecastSettings(
            home=tmp_path, redis_url=server.url, redis_password=server.password
        )
        cache = ForecastCache(settings)
        client = client_of(server)
        ahead, behind, broken = (log_key("bikeshare", 1, T0 + h * hour) for h in (4, -1, 2))
        client.set(ahead, waiting_blob(["a", "b", "c"], [41.0, 1.0, 2.0]), ex=999)
        client.set(behind, waiting_blob(["a", "b"], [5.0, 75.0]), ex=999)
        client.set(broken, b"{not json", ex=999)
        realised = cache.realise("bikeshare", batch, [1, 24], "count")
        # a at T0+4h observed 40 (error 1); b at T0-1h observed 70 (error 5); a at T0-1h
        # lies before a's window: dropped unmatched.
        assert realised[0] == Realised(1, 2, 6.0, 26.0) and realised[1].matched == 0
        assert orjson.loads(client.get(ahead) or b"") == {
            "series": ["b", "c"],
            "values": [1.0, 2.0],
        }
        assert 0 < client.ttl(ahead) <= 999  # rewritten, its expiry kept
        assert client.get(behind) is None and client.get(broken) is None
        assert client.hgetall(error_key("bikeshare")) == {
            b"h1:n": b"2",
            b"h1:abs": b"6",
            b"h1:sq": b"26",
        }
        again = cache.realise("bikeshare", batch, [1, 24], "count")
        assert again[0].matched == 0  # each forecast counted once
        cache.close()


def test_series_with_every_hour_take_the_gather_and_give_the_same_batch(tmp_path: Path) -> None:
    """When every series holds its last `rows` hours in a row, the windows are gathered
    as they are; naming the series (which takes the general path) gives the same batch."""
    logs = tmp_path / "logs"
    observe(logs, "a", list(range(30)))
    observe(logs, "b", list(range(3, 30)), count=50.0)
    observe(logs, "c", list(range(25, 33)))  # ends later, holds just enough
    observe(logs, "a", [29], count=-7.0)  # a replay: the later row counts
    observed = read_columns(partition_files(logs, "bikeshare", 30), COLUMNS)
    for rows in (1, 6, 8):
        fast, skipped = window_batch(observed, "ts", rows, HOUR_MS)
        general, _ = window_batch(observed, "ts", rows, HOUR_MS, only={"a", "b", "c"})
        assert skipped == [] and fast.series == general.series == ["a", "b", "c"]
        np.testing.assert_array_equal(fast.end_ms, general.end_ms)
        np.testing.assert_array_equal(fast.filled, general.filled)
        for name in ("count", "tmin"):
            np.testing.assert_array_equal(fast.grid[name], general.grid[name])
    assert fast.grid["count"][0, -1] == -7.0 + 29  # the replay (count + hour)
    # A series one hour short of the window: the general path, which skips it.
    _, skipped = window_batch(observed, "ts", 9, HOUR_MS)
    assert [(s.series, s.reason) for s in skipped] == [("c", "too_short")]
