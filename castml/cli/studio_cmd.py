"""`castml studio`: the studio API (studio.app) under uvicorn, on 127.0.0.1:8000 by default.

Configuration comes from CASTML_* (studio.settings.StudioSettings); `--port` and `--host`
only wire the process. MLflow: the configured server (CASTML_MLFLOW_URI), or the
embedded one, started here when it is not up yet.
"""

from __future__ import annotations

from typing import Annotated

import typer

from castml.cli.console import console


def studio(
    port: Annotated[
        int | None, typer.Option(help="Port (default CASTML_STUDIO_PORT, 8000).")
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Interface (default CASTML_STUDIO_HOST, 127.0.0.1).")
    ] = None,
) -> None:
    """Serve the studio REST + WebSocket API (upload, train, reports, PDF, alerts)."""
    import uvicorn

    from castml.cli.mlflow_cmd import ensure_up
    from castml.settings import load_settings
    from studio.app import create_app
    from studio.settings import StudioSettings

    settings = load_settings(StudioSettings, studio_port=port, studio_host=host)
    uri = ensure_up(settings)
    app = create_app(settings)
    console.print(
        f"studio on http://{settings.studio_host}:{settings.studio_port} (MLflow {uri}; "
        f"OpenAPI at /openapi.json; data in {settings.data_dir})"
    )
    uvicorn.run(app, host=settings.studio_host, port=settings.studio_port, log_level="info")
