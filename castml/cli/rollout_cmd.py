"""`castml rollout ...`: keep serving on the version behind @champion.

`run` serves the MLflow webhook receiver and reconciles periodically (with
`--receiver-url`, as in the chart, it registers its own webhook); `once` reconciles one
time; `register-webhook` creates the MLflow webhook that calls `run`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import asdict
from urllib.parse import urlsplit

import typer

from castml.errors import CastmlError

app = typer.Typer(no_args_is_help=True)
log = logging.getLogger("serving.rollout")


@app.command()
def run(
    receiver_url: str | None = typer.Option(
        None,
        "--receiver-url",
        help="This receiver's base URL as MLflow reaches it (the chart: its Service). Given, "
        "the reconciler registers its own webhook `castml-rollout-<project>` there, replacing "
        "one of that name, as soon as MLflow answers.",
    ),
) -> None:
    """Webhook receiver + periodic reconcile (CASTML_ROLLOUT_*, CASTML_WEBHOOK_SECRET)."""
    from serving.rollout import Reconciler, make_target, webhook_app
    from serving.server import serve
    from serving.settings import rollout_settings

    settings = rollout_settings()
    if receiver_url is not None:
        if not settings.webhook_secret:
            raise CastmlError(
                "--receiver-url needs CASTML_WEBHOOK_SECRET: MLflow's deliveries must be signed"
            )
        _check_receiver_url(receiver_url)
        # Once before serving (so a receiver that answers has its webhook when MLflow is
        # up), then in the background until MLflow answers: the two start together.
        hook = (settings.tracking_uri, settings.project, receiver_url, settings.webhook_secret)
        if register_once(*hook) is None:
            threading.Thread(
                target=register_until_done, args=hook, name="register-webhook", daemon=True
            ).start()
    serve(
        webhook_app(Reconciler(settings, make_target(settings))),
        settings.rollout_host,
        settings.rollout_port,
    )


def _check_receiver_url(url: str) -> None:
    parsed = urlsplit(url)
    if (
        parsed.scheme not in ("http", "https")
        or not parsed.hostname
        or parsed.path not in ("", "/")
    ):
        raise CastmlError(
            f"--receiver-url {url!r} is not a base URL like http://host:8080 "
            "(the reconciler adds /webhooks/mlflow)"
        )


def register_once(uri: str, project: str, receiver_url: str, secret: str) -> str | None:
    """The webhook `castml-rollout-<project>` -> `<receiver_url>/webhooks/mlflow` (replacing
    one of that name); None, said in one log line, when MLflow cannot be reached or refuses."""
    from castml.cli.platform_cmd import register_webhook

    try:
        hook_id = register_webhook(uri, project, receiver_url.rstrip("/"), secret)
    except Exception as exc:  # MLflow down, or refusing the URL: the caller tries again
        log.warning(
            "could not register the webhook castml-rollout-%s at %s: %s: %s",
            project, uri, type(exc).__name__, exc,
        )  # fmt: skip
        return None
    log.warning("webhook castml-rollout-%s (%s) -> %s", project, hook_id, receiver_url)
    return hook_id


def register_until_done(
    uri: str, project: str, receiver_url: str, secret: str, retry_s: float = 10.0
) -> str:
    """Retry `register_once` until MLflow takes it; the periodic reconcile covers the gap."""
    while (hook_id := register_once(uri, project, receiver_url, secret)) is None:
        time.sleep(retry_s)
    return hook_id


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
