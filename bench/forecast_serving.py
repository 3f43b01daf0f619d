"""Forecast serving (issue 14 §7): the job's throughput and the read endpoint's latency.

1. **Job throughput**, in series-horizons per second: one whole `ForecastJob.run` (read the
   observation Parquet, build every series' window, features, both horizons' boosters,
   one Redis transaction) over S series of real 2014 hours, against the bare model call on
   the same design matrix (`ForecastModel.score`: the per-horizon boosters, no features,
   no I/O). Target: >= 0.5x. Medians of interleaved runs. Also against
   `ForecastModel.forecast_many` on the same windows (features + boosters, no I/O).
2. **Read latency**: `GET /v1/forecast/bikeshare/<series>?horizon=1` on `python -m serving
   forecast` (uvicorn, one worker) over one keep-alive connection, against a bare redis-py
   GET of the same key from the same client process. Target: p50 <= 3x. The HTTP client
   is a raw socket (pre-built request bytes), so that the number is the endpoint's and not
   an HTTP client library's.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SERIES = 400
HOURS = 200
JOB_RUNS = 5
READS = 3000
JOB_TARGET, READ_TARGET = 0.5, 3.0
REPO = Path(__file__).resolve().parents[1]


def _train(work: Path, frame: pd.DataFrame) -> Path:
    from castml.workflow import split_step, train_step

    data = frame[(frame.ts >= "2012-01-01") & (frame.ts < "2013-01-01")].copy()
    data["ts"] = data["ts"].dt.strftime("%Y-%m-%d %H:%M:%S")
    data.to_parquet(work / "data.parquet", index=False)
    paths = [work / f"{n}.parquet" for n in ("train", "validation", "test")]
    split_step("bikeshare", work / "data.parquet", *paths)
    train_step("bikeshare", paths[0], paths[1], work / "store" / "1" / "model", work / "b", "fast")
    (work / "store" / "aliases.json").write_text(json.dumps({"champion": "1"}))
    return work / "store"


def _observe(logs: Path, frame: pd.DataFrame) -> None:
    """SERIES series: the real hours of 2014-06, each scaled (a city of its own size)."""
    from monitoring.observation_ingest import observation_schema, write_observations

    schema = observation_schema("bikeshare")
    part = frame[frame.ts >= "2014-06-01"].head(HOURS)
    ms = (part.ts.astype("int64") // 1_000_000).to_numpy()  # ns -> ms
    scales = np.linspace(0.5, 2.0, SERIES)
    columns: dict[str, list[Any]] = {
        "series": [f"s{i}" for i in range(SERIES) for _ in range(HOURS)],
        "ts": np.tile(ms, SERIES).tolist(),
        "count": np.concatenate([part["count"].to_numpy() * s for s in scales]).round().tolist(),
        **{c: np.tile(part[c].to_numpy(), SERIES).tolist() for c in ("tmin", "tmax", "pn")},
    }
    write_observations(logs, schema, columns)


def _bare_seconds(model: Any, windows: list[Any]) -> float:
    from castml.data.lag_features import design_rows, stacked_windows

    grid, origins, seconds = stacked_windows([w.columns for w in windows], model.plan)
    design = np.ascontiguousarray(design_rows(grid, origins, seconds, model.plan))
    started = time.perf_counter()
    model.score(design)
    return time.perf_counter() - started


def _http_get(sock: socket.socket, request: bytes) -> bytes:
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.decode(errors="replace"))
    return body


def run() -> dict[str, Any]:
    import redis as redis_py

    from castml.cli.local_processes import free_port, start_server
    from castml.data.loaders import load_dataset
    from castml.protocol.forecast_record import forecast_key
    from castml.redis_embedded import start_redis
    from castml.spec import load_spec
    from serving.forecast_history import partition_files, read_observations, windows
    from serving.forecast_job import ForecastJob
    from serving.settings import ForecastSettings

    work = Path(tempfile.mkdtemp(prefix="castml-bench-forecast-"))
    server = None
    api = None
    try:
        frame = load_dataset(load_spec("bikeshare"))
        frame["ts"] = pd.to_datetime(frame["ts"])
        store = _train(work, frame)
        _observe(work / "home" / "logs", frame)
        server = start_redis(work / "redis", free_port(), secrets.token_urlsafe(16))
        settings = ForecastSettings(
            home=work / "home",
            forecast_model_store=store,
            redis_url=server.url,
            redis_password=server.password,
        )
        job = ForecastJob(settings)
        result = job.run()  # warm-up: loads the model, the holiday calendar
        version, model = job.model("champion")
        columns = [model.time_column, model.target, *model.exogenous]
        table = read_observations(
            partition_files(settings.logs_dir, "bikeshare", settings.forecast_lookback_days),
            columns,
        )
        found, _ = windows(table, columns, model.history_rows, 3_600_000)
        cells = len(result.records)
        job_s, bare_s, many_s = [], [], []
        for _ in range(JOB_RUNS):
            started = time.perf_counter()
            job.run()
            job_s.append(time.perf_counter() - started)
            bare_s.append(_bare_seconds(model, found))
            started = time.perf_counter()
            model.forecast_many([w.columns for w in found])  # features + boosters, no I/O
            many_s.append(time.perf_counter() - started)
        job_rate = cells / statistics.median(job_s)
        bare_rate = cells / statistics.median(bare_s)
        many_rate = cells / statistics.median(many_s)

        port = free_port()
        env = {
            "CASTML_HOME": str(work / "home"),
            "CASTML_REDIS_URL": server.url,
            "CASTML_REDIS_PASSWORD": server.password,
            "PYTHONPATH": str(REPO),
        }
        api = start_server("forecast", env, work / "logs", project="bikeshare", port=port, cwd=REPO)
        key = forecast_key("bikeshare", "s0", 1)
        client = redis_py.Redis(host=server.host, port=server.port, password=server.password)
        request = b"GET /v1/forecast/bikeshare/s0?horizon=1 HTTP/1.1\r\nhost: bench\r\n\r\n"
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(300):  # warm-up both
            _http_get(sock, request)
            client.get(key)
        endpoint_us, redis_us = [], []
        for _ in range(READS):  # interleaved: both see the same machine load
            started = time.perf_counter()
            _http_get(sock, request)
            endpoint_us.append((time.perf_counter() - started) * 1e6)
            started = time.perf_counter()
            client.get(key)
            redis_us.append((time.perf_counter() - started) * 1e6)
        sock.close()
        endpoint_p50, redis_p50 = statistics.median(endpoint_us), statistics.median(redis_us)
        return {
            "series": len(found),
            "horizons": list(model.horizons),
            "model_version": version,
            "job_series_horizons_per_s": round(job_rate, 1),
            "bare_predict_series_horizons_per_s": round(bare_rate, 1),
            "job_vs_bare": round(job_rate / bare_rate, 3),
            "job_target": f">= {JOB_TARGET}x",
            "forecast_many_series_horizons_per_s": round(many_rate, 1),
            "job_vs_forecast_many": round(job_rate / many_rate, 3),
            "job_median_s": round(statistics.median(job_s), 4),
            "read_p50_us": round(endpoint_p50, 1),
            "read_p99_us": round(float(np.percentile(endpoint_us, 99)), 1),
            "redis_get_p50_us": round(redis_p50, 1),
            "read_vs_redis_get": round(endpoint_p50 / redis_p50, 2),
            "read_target": f"<= {READ_TARGET}x",
        }
    finally:
        if api is not None:
            api.stop()
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:  # `make bench` and `python -m bench.forecast_serving`
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    results = run()
    print(json.dumps(results, indent=2), file=sys.stdout)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "forecast_serving.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
