"""Monitoring benchmarks, each against a peer measured in the same run.

1. Collector ingest: events/s through the real collector process (auth, parse, WAL
   fsync, join, Parquet) vs a raw ASGI app with a fixed reply under the same uvicorn,
   both driven by wrk (2 threads, 32 connections, unique ce-ids from a Lua script).
   Target >= 0.3x, with 0 loss: every event the collector acknowledged is in Parquet
   afterwards (a joined row holds two events, an orphan row one).
2. Drift job on 100k logged rows: window read from the collector's Parquet layout +
   labels join + the job's Evidently checks, vs the bare Evidently calls (the same
   metrics) on the same frames already in memory. Target <= 1.3x. MLflow logging and
   HTML rendering are left out of both sides: they are I/O the bare call does not do.

`CASTML_BENCH_MONITORING=ingest` (or `drift`) runs only that part.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from castml.cli.local_processes import free_port as _free_port

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
CONCURRENCY = 32
DRIFT_ROWS = int(os.environ.get("CASTML_BENCH_DRIFT_ROWS", "100000"))
INGEST_S = int(os.environ.get("CASTML_BENCH_INGEST_S", "10"))
INGEST_TARGET, DRIFT_TARGET = 0.3, 1.3


async def raw_app(
    scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
) -> None:
    """The floor: read the body, answer a fixed 202."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 202,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"status":"accepted"}'})


def _start(
    command: list[str], env: dict[str, str], port: int, health: str
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}{health}", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{command} did not start")


def _events(pairs: int) -> list[tuple[dict[str, str], bytes]]:
    from castml.cli.logger_cloudevents import binary_event, v2_request, v2_response
    from castml.data.diecast import generate
    from castml.spec import load_spec

    features = load_spec("diecast").feature_names
    x = generate(pairs, 5)[features].to_numpy()
    out = []
    for i in range(pairs):
        rid = f"bench-{i}"
        out.append(binary_event("request", rid, "diecast", v2_request(x[i : i + 1], features)))
        out.append(
            binary_event(
                "response", rid, "diecast", v2_response(np.array([0.4]), "diecast", "1", rid)
            )
        )
    return out


# wrk: each connection posts a request half, then its response half, with fresh ids.
WRK_SCRIPT = """
local counter = 0
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
function request()
  counter = counter + 1
  local id = "w" .. tid .. "-" .. math.floor((counter + 1) / 2)
  local headers = {}
  for k, v in pairs(HEADERS) do headers[k] = v end
  headers["ce-id"] = id
  if counter % 2 == 1 then
    headers["ce-type"] = "org.kubeflow.serving.inference.request"
    return wrk.format("POST", "/", headers, REQUEST_BODY)
  end
  headers["ce-type"] = "org.kubeflow.serving.inference.response"
  return wrk.format("POST", "/", headers, RESPONSE_BODY)
end
"""


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def _wrk(url: str, seconds: int) -> tuple[float, int]:
    """(requests/s, non-2xx answers) from wrk, 2 threads, CONCURRENCY connections."""
    (headers, request_body), (_, response_body) = _events(1)
    common = {k: v for k, v in headers.items() if k not in ("ce-id", "ce-type")}
    common["authorization"] = f"Bearer {TOKEN}"
    lua = "HEADERS = {" + ", ".join(f'["{k}"] = "{v}"' for k, v in common.items()) + "}\n"
    lua += f"REQUEST_BODY = {_lua_string(request_body.decode())}\n"
    lua += f"RESPONSE_BODY = {_lua_string(response_body.decode())}\n" + WRK_SCRIPT
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    command = ["wrk", "-t2", f"-c{CONCURRENCY}", f"-d{seconds}s", "-s", script.name, url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    Path(script.name).unlink()
    rate = float(next(line for line in out.splitlines() if "Requests/sec" in line).split()[-1])
    non2xx = next((int(line.split()[-1]) for line in out.splitlines() if "Non-2xx" in line), 0)
    return rate, non2xx


def _metric(port: int, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return sum(
        s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name
    )


def _events_in_parquet(home: Path) -> int:
    """Joined rows hold two events each, orphan rows one."""
    import pyarrow.parquet as pq

    def rows(group: str) -> int:
        files = (home / "logs" / "diecast" / group).glob("date=*/*.parquet")
        return sum(pq.ParquetFile(f).metadata.num_rows for f in files)

    return 2 * rows("1") + rows("orphans")


def bench_ingest(seconds: int = INGEST_S) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        uvicorn = [sys.executable, "-m", "uvicorn", "bench.monitoring:raw_app", "--port", str(port)]
        raw = _start([*uvicorn, "--log-level", "warning", "--no-access-log"], {}, port, "/")
        try:
            raw_rate, _ = _wrk(f"http://127.0.0.1:{port}/", seconds)
        finally:
            raw.terminate()
            raw.wait()
        port = _free_port()
        env = {
            "CASTML_HOME": tmp,
            "CASTML_COLLECTOR_TOKEN": TOKEN,
            "CASTML_COLLECTOR_FLUSH_S": "1",
            "CASTML_COLLECTOR_ORPHAN_S": "1",  # a half cut off at wrk's end leaves as an orphan
            "CASTML_RETRAIN_TOKEN": "",
        }
        command = [sys.executable, "-m", "castml.cli.main", "collector", "run", "--port", str(port)]
        collector = _start(command, env, port, "/healthz")
        try:
            col_rate, refused = _wrk(f"http://127.0.0.1:{port}/", seconds)
            acked = int(_metric(port, "castml_collector_events_received_total"))
            deadline = time.monotonic() + 60
            while _events_in_parquet(Path(tmp)) < acked and time.monotonic() < deadline:
                time.sleep(0.5)
            in_parquet = _events_in_parquet(Path(tmp))
        finally:
            collector.terminate()
            collector.wait()
    return {
        "raw_asgi_events_per_s": round(raw_rate),
        "collector_events_per_s": round(col_rate),
        "ratio": round(col_rate / raw_rate, 3),
        "target": f">= {INGEST_TARGET}",
        "acknowledged": acked,
        "events_in_parquet": in_parquet,
        "lost": acked - in_parquet,
        "refused_503": refused,
    }


def _write_window(logs: Path, rows: int) -> None:
    """100k rows in the collector's layout (its own writer), 30 % of them labeled."""
    from castml.data.diecast import generate
    from castml.protocol.payload_record import LoggedFeatures
    from castml.spec import load_spec
    from monitoring.parquet_sink import (
        FEEDBACK_DIR,
        FEEDBACK_SCHEMA,
        day_of,
        inference_schema,
        partition,
        write_atomically,
    )
    from monitoring.wal import WriteAheadLog

    features = load_spec("diecast").feature_names
    frame = generate(rows, 9, "sensor_degradation")
    now_ms = int(time.time() * 1000)
    ids = [f"r{i}" for i in range(rows)]
    columns: dict[str, Any] = {"request_id": ids, "row": [0] * rows}
    columns |= {f: frame[f].to_numpy(np.float32) for f in features}
    score = np.random.default_rng(1).random(rows).astype(np.float32)
    constant = {
        "model_name": "diecast", "model_version": "1", "request_time": now_ms - 1000,
        "response_time": now_ms - 999, "logged_at": now_ms - 999, "inference_service": "diecast",
        "namespace": "default", "endpoint": "default", "component": "predictor",
    }  # fmt: skip
    columns |= {"probability": score, "label": (score >= 0.5).astype(np.int64)}
    columns |= {name: [value] * rows for name, value in constant.items()}
    wal = WriteAheadLog(logs.parent / "wal")
    schema = inference_schema(LoggedFeatures(tuple(features)))
    day = day_of(time.time())
    step = 20_000  # the collector writes files of at most collector_batch_rows
    for start in range(0, rows, step):
        part = {k: v[start : start + step] for k, v in columns.items()}
        write_atomically(logs, partition("diecast", "1", day), part, schema, wal, [])
    labeled = slice(0, rows, 3)
    feedback = {
        "request_id": ids[labeled], "label": frame["defect"].to_numpy(np.float64)[labeled],
        "observed_at": [now_ms] * len(ids[labeled]), "received_at": [now_ms] * len(ids[labeled]),
        "known_request": [True] * len(ids[labeled]),
    }  # fmt: skip
    write_atomically(
        logs, partition("diecast", FEEDBACK_DIR, day), feedback, FEEDBACK_SCHEMA, wal, []
    )


def bench_drift() -> dict[str, Any]:
    import pandas as pd

    from castml.data.diecast import generate
    from castml.spec import load_spec
    from monitoring.drift import (
        SCORE,
        DriftResult,
        drift_report,
        evaluate,
        labeled_rows,
        quality_report,
    )
    from monitoring.drift_job import current_frame
    from monitoring.settings import DriftSettings
    from monitoring.window import Window

    spec = load_spec("diecast")
    reference = generate(spec.monitoring.reference_rows, 3)
    reference[SCORE] = np.random.default_rng(2).random(len(reference))
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        _write_window(home / "logs", DRIFT_ROWS)
        settings = DriftSettings.model_validate({"home": home})
        window = Window.ending(timedelta(days=1), datetime.now(UTC) + timedelta(minutes=1))

        def job() -> DriftResult:
            current = current_frame(settings, spec, "1", window)
            result = DriftResult("diecast", "1", {}, {"current": len(current)})
            evaluate(result, reference, current, spec)
            return result

        frames = current_frame(settings, spec, "1", window)  # the same frames, for the peer
        labeled = labeled_rows(frames, spec.target)

        def bare() -> None:
            drift_report(reference, frames, spec, "ks", "ks")
            quality_report(reference, labeled, spec)

        job_s = min(_timed(job) for _ in range(2))
        bare_s = min(_timed(bare) for _ in range(2))
        result = job()
    assert isinstance(frames, pd.DataFrame)
    return {
        "rows": DRIFT_ROWS,
        "labeled": len(labeled),
        "drift_job_s": round(job_s, 3),
        "bare_evidently_s": round(bare_s, 3),
        "ratio": round(job_s / bare_s, 3),
        "target": f"<= {DRIFT_TARGET}",
        "drift_share": result.drift_share,
    }


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    only = os.environ.get("CASTML_BENCH_MONITORING", "")
    results: dict[str, dict[str, Any]] = {}
    table = Table("measure", "ours", "peer", "ratio", "target", "note", title="monitoring")
    if only in ("", "ingest"):
        ingest = results["ingest"] = bench_ingest()
        ingest_note = f"acked {ingest['acknowledged']}, lost {ingest['lost']}"
        ingest_note += f", 503 {ingest['refused_503']}"
        table.add_row(
            "collector events/s",
            str(ingest["collector_events_per_s"]),
            f"raw ASGI {ingest['raw_asgi_events_per_s']}",
            f"{ingest['ratio']:.2f}x",
            ingest["target"],
            ingest_note,
        )
    if only in ("", "drift"):
        drift = results["drift"] = bench_drift()
        table.add_row(
            f"drift job, {drift['rows']} rows",
            f"{drift['drift_job_s']:.2f} s",
            f"bare Evidently {drift['bare_evidently_s']:.2f} s",
            f"{drift['ratio']:.2f}x",
            drift["target"],
            f"{drift['labeled']} labeled rows",
        )
    Console().print(table)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "monitoring.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
