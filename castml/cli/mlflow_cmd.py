"""`castml mlflow up|down|status`: the embedded MLflow server."""

from __future__ import annotations

import typer

from castml.cli.console import console
from castml.errors import MlflowUnavailableError
from castml.mlflow_server import ServerLayout, is_healthy, start, stop_recorded
from castml.settings import PlatformSettings

app = typer.Typer(no_args_is_help=True)


def ensure_up(settings: PlatformSettings) -> str:
    """Start the embedded server unless one already answers; returns the tracking URI.

    An external server (CASTML_MLFLOW_URI) is never started here, only checked: a typo
    in the URI must stop the caller now, not as a traceback in its first MLflow call.
    """
    uri = settings.tracking_uri
    if settings.mlflow_uri:
        if not is_healthy(uri, settings.mlflow_timeout_s):
            raise MlflowUnavailableError(
                uri, "the external server (CASTML_MLFLOW_URI) does not answer /health"
            )
        return uri
    if is_healthy(uri):
        return uri
    with console.status(f"starting MLflow on {uri} (SQLite under {settings.mlflow_dir})"):
        start(ServerLayout(settings.mlflow_dir), settings.mlflow_host, settings.mlflow_port)
    return uri


@app.command()
def up() -> None:
    """Start MLflow on 127.0.0.1 (SQLite + artifacts under $CASTML_HOME); wait for /health."""
    settings = PlatformSettings()
    uri = ensure_up(settings)
    if settings.mlflow_uri:
        console.print(
            f"MLflow is external (CASTML_MLFLOW_URI): [bold]{uri}[/] answers; nothing started here"
        )
        return
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
