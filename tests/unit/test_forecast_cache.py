"""The forecast cache contract: record codec and keys, history windows from observation
Parquet (dedupe, gaps, short histories), and the cache's writes on a real redis-server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from castml.protocol.forecast_record import (
    BadSeriesError,
    ForecastRecord,
    ForecastRun,
    ObservationSchema,
    check_series,
    forecast_key,
    run_key,
)
from monitoring.observation_ingest import parse_rows, write_observations
from serving.forecast_cache import CacheUnavailableError, ForecastCache
from serving.forecast_history import partition_files, read_observations, windows
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


def test_cache_writes_one_transaction_with_ttl_and_refuses_a_wrong_password(
    tmp_path: Path,
) -> None:
    with redis_server(tmp_path / "redis") as server:
        settings = ForecastSettings(
            home=tmp_path, redis_url=server.url, redis_password=server.password
        )
        cache = ForecastCache(settings)
        cache.check()
        run = ForecastRun("bikeshare", "3", (24,), T0, 1, {}, 0.1)
        cache.write([record()], run)
        client = client_of(server)
        assert 0 < client.ttl("forecast:bikeshare:dc:24") <= 600
        assert client.ttl(run_key("bikeshare")) == -1  # the summary stays: /metrics reads it
        assert cache.read("bikeshare", "dc", [24, 1]) == [record().encode(), None]

        wrong = ForecastCache(settings.model_copy(update={"redis_password": "wrong"}))
        with pytest.raises(CacheUnavailableError, match="unavailable"):
            wrong.check()
        with pytest.raises(CacheUnavailableError):
            wrong.write([record(99.0)], run)
        assert cache.read("bikeshare", "dc", [24]) == [record().encode()]
