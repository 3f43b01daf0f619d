"""`castml collector run`: the payload collector (settings: CASTML_COLLECTOR_*).

With CASTML_RETRAIN_TOKEN set, the collector also serves the retrain endpoint
(`POST /v1/retrain`, Alertmanager's webhook) on its own port: the chart runs one
monitoring Deployment. The policy's launcher is built here, where pipelines may be
imported (DESIGN.md §3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from monitoring.collector_app import RetrainMount

app = typer.Typer(no_args_is_help=True)


def retrain_mount() -> RetrainMount | None:
    """(policy, token) when CASTML_RETRAIN_TOKEN is set; None leaves /v1/retrain unserved."""
    from monitoring.settings import RetrainSettings, from_env

    settings = from_env(RetrainSettings)
    if not settings.retrain_token:
        return None
    from castml.cli.retrain_cmd import build_policy

    policy, _ = build_policy()
    return policy, settings.retrain_token


@app.command("run")
def run(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8090).")] = None,
) -> None:
    """Receive KServe logger CloudEvents and labels; write Parquet under <home>/logs."""
    from monitoring.collector_app import serve
    from monitoring.settings import CollectorSettings, from_env

    settings = from_env(CollectorSettings, collector_host=host, collector_port=port)
    serve(settings, retrain_mount())
