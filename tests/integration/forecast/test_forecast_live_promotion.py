"""A promotion while the scheduler runs: the next run forecasts with the new @champion, and a
reader polling the cache all along never finds a key missing nor versions mixed within one
series' horizons (issue 14 §3, "no gap in the cache")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from castml import registry
from castml.cli.model_cmd import move_champion
from castml.protocol.forecast_record import ForecastRecord, forecast_key
from castml.redis_embedded import EmbeddedRedis
from serving.forecast_job import ForecastJob, RunResult, run_every
from serving.settings import ForecastSettings
from tests.integration.forecast.conftest import RegisteredForecast
from tests.support.forecast_observations import observation_rows, write_series
from tests.support.redis_server import client_of

pytestmark = pytest.mark.integration


def promote(store: Path, version: str) -> None:
    """Move @champion in the local store (one rename: a reader never sees half a file)."""
    tmp = store / ".aliases.json.tmp"
    tmp.write_text(json.dumps({"champion": version}))
    os.replace(tmp, store / "aliases.json")


def test_promotion_during_scheduled_runs_switches_versions_without_a_gap(
    tmp_path: Path,
    forecast_store: Path,
    redis: EmbeddedRedis,
    bike_frame: pd.DataFrame,
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    for version in ("1", "2"):
        (store / version).symlink_to(forecast_store / version)
    promote(store, "1")
    rows = observation_rows(bike_frame, "2014-05-01", 300)
    for series in ("dc", "dc-east", "dc-west"):
        write_series(tmp_path / "home" / "logs", rows, series)
    settings = ForecastSettings(
        home=tmp_path / "home",
        forecast_model_store=store,
        redis_url=redis.url,
        redis_password=redis.password,
    )
    runs: list[RunResult] = []
    stop = threading.Event()
    scheduler = threading.Thread(
        target=run_every,
        args=(
            ForecastJob(settings),
            0.2,
            stop,
            lambda result, _: runs.append(result) if result else None,
        ),
    )
    reads: list[tuple[str, ...] | None] = []
    client = client_of(redis)
    keys = [forecast_key("bikeshare", "dc", h) for h in (1, 24)]

    def read_until_stopped() -> None:
        while not stop.is_set():
            values = client.mget(keys)
            if all(v is None for v in values) and not reads:
                continue  # before the first run
            reads.append(
                None
                if any(v is None for v in values)
                else tuple(ForecastRecord.decode(v).model_version for v in values)
            )
            time.sleep(0.005)

    reader = threading.Thread(target=read_until_stopped)
    scheduler.start()
    reader.start()
    try:
        wait_for(lambda: len(runs) >= 3)
        promote(store, "2")
        promoted_at = len(runs)
        wait_for(lambda: len(runs) >= promoted_at + 3)
    finally:
        stop.set()
        scheduler.join(30)
        reader.join(30)

    versions = [r.run.model_version for r in runs]
    assert versions[:3] == ["1", "1", "1"] and versions[-2:] == ["2", "2"]
    switch = versions.index("2")
    assert set(versions[switch:]) == {"2"}  # never back to the old version
    assert None not in reads  # no gap: every read found every horizon
    assert all(len(set(r)) == 1 for r in reads if r)  # never two versions in one series
    seen = [r[0] for r in reads if r]
    assert seen[0] == "1" and seen[-1] == "2"
    assert seen == sorted(seen)  # 1s, then 2s: the switch happened once
    assert {r.series for r in runs[-1].records} == {"dc", "dc-east", "dc-west"}


def wait_for(condition: object, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("the scheduler did not run in time")
        time.sleep(0.05)


def test_castml_model_promote_moves_the_registry_version_the_job_forecasts_with(
    tmp_path: Path,
    registered_bikeshare: RegisteredForecast,
    redis: EmbeddedRedis,
    bike_frame: pd.DataFrame,
) -> None:
    """The job resolves @champion in MLflow at every run: `castml model promote` moves it."""
    uri = registered_bikeshare.uri
    first, second = registered_bikeshare.versions
    write_series(tmp_path / "home" / "logs", observation_rows(bike_frame, "2014-05-01", 200), "dc")
    settings = ForecastSettings(
        home=tmp_path / "home", mlflow_uri=uri, redis_url=redis.url, redis_password=redis.password
    )
    job = ForecastJob(settings)
    client = registry.client(uri)
    try:
        move_champion(client, "bikeshare", first)
        assert job.run().run.model_version == str(first)
        promoted = subprocess.run(
            [
                sys.executable,
                "-m",
                "castml.cli.main",
                "model",
                "promote",
                "bikeshare",
                "--version",
                str(second),
                "--force",
            ],
            env={**os.environ, "CASTML_MLFLOW_URI": uri},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert promoted.returncode == 0, promoted.stderr
        result = job.run()
        assert result.run.model_version == str(second)
        assert {r.model_version for r in result.records} == {str(second)}
        cached = ForecastRecord.decode(client_of(redis).get(forecast_key("bikeshare", "dc", 24)))
        assert cached.model_version == str(second)
    finally:
        move_champion(client, "bikeshare", first)  # the session's registry as it was
