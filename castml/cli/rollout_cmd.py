"""`castml rollout ...`: keep serving on the version behind @champion.

`run` serves the MLflow webhook receiver and reconciles periodically; `once` reconciles
one time; `register-webhook` creates the MLflow webhook that calls `run`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict

import typer

app = typer.Typer(no_args_is_help=True)


@app.command()
def run() -> None:
    """Webhook receiver + periodic reconcile (CASTML_ROLLOUT_*, CASTML_WEBHOOK_SECRET)."""
    from serving.rollout import Reconciler, make_target, webhook_app
    from serving.server import serve
    from serving.settings import rollout_settings

    settings = rollout_settings()
    serve(
        webhook_app(Reconciler(settings, make_target(settings))),
        settings.rollout_host,
        settings.rollout_port,
    )


@app.command()
def once(
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as one JSON line."),
) -> None:
    """One reconcile now; prints what it did in one line (`--json`: the outcome as JSON).

    Exits 0 when serving is on @champion (or there is none), 1 when the version was refused
    or the move failed, 75 when MLflow or the predictor cannot be reached now.
    """
    from serving.rollout import Reconciler, make_target
    from serving.settings import rollout_settings

    settings = rollout_settings()
    outcome = asyncio.run(Reconciler(settings, make_target(settings)).reconcile("manual"))
    typer.echo(json.dumps(asdict(outcome)) if as_json else outcome.line())
    if outcome.action in ("refused", "failed"):
        raise typer.Exit(1)
    if outcome.action == "unavailable":
        raise typer.Exit(75)


@app.command("register-webhook")
def register_webhook(
    url: str = typer.Option(
        ..., help="Where MLflow should deliver, e.g. http://127.0.0.1:8092/webhooks/mlflow"
    ),
) -> None:
    """Create the MLflow webhook for alias changes, signed with CASTML_WEBHOOK_SECRET."""
    from castml import registry
    from serving.settings import rollout_settings

    settings = rollout_settings()
    if not settings.webhook_secret:
        raise typer.BadParameter("set CASTML_WEBHOOK_SECRET first: deliveries must be signed")
    hook = registry.client(settings.tracking_uri).create_webhook(
        name=f"castml-rollout-{settings.project}",
        url=url,
        events=["model_version_alias.created"],
        secret=settings.webhook_secret,
    )
    typer.echo(f"webhook {hook.webhook_id} -> {url}")
