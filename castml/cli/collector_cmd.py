"""`castml collector run`: the payload collector on loopback (settings: CASTML_COLLECTOR_*)."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("run")
def run(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8090).")] = None,
) -> None:
    """Receive KServe logger CloudEvents and labels; write Parquet under <home>/logs."""
    from monitoring.collector_app import serve
    from monitoring.settings import CollectorSettings, from_env

    serve(from_env(CollectorSettings, collector_host=host, collector_port=port))
