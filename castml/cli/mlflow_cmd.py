"""`castml mlflow up|down|status`: the embedded MLflow server."""

from __future__ import annotations

import typer

from castml.cli.console import console
from castml.mlflow_server import ServerLayout, is_healthy, start, stop_recorded
from castml.settings import PlatformSettings

app = typer.Typer(no_args_is_help=True)


def ensure_up(settings: PlatformSettings) -> str:
    """Start the embedded server unless one already answers; returns the tracking URI."""
    uri = settings.tracking_uri
    if settings.mlflow_uri or is_healthy(uri):
        return uri
    with console.status(f"starting MLflow on {uri} (SQLite under {settings.mlflow_dir})"):
        start(ServerLayout(settings.mlflow_dir), settings.mlflow_host, settings.mlflow_port)
    return uri


@app.command()
def up() -> None:
    """Start MLflow on 127.0.0.1 (SQLite + artifacts under $CASTML_HOME); wait for /health."""
    settings = PlatformSettings()
    uri = ensure_up(settings)
    console.print(
        f"MLflow is up: [bold]{uri}[/] (log: {ServerLayout(settings.mlflow_dir).log_file})"
    )


@app.command()
def down() -> None:
    """Stop the embedded MLflow server started by `castml mlflow up`."""
    stopped = stop_recorded(ServerLayout(PlatformSettings().mlflow_dir))
    console.print("MLflow stopped" if stopped else "no embedded MLflow server was running")


@app.command()
def status() -> None:
    """Say whether MLflow answers at the configured URI."""
    uri = PlatformSettings().tracking_uri
    healthy = is_healthy(uri)
    console.print(f"MLflow at {uri}: {'[green]healthy[/]' if healthy else '[red]not answering[/]'}")
    raise typer.Exit(0 if healthy else 1)
