"""`castml retrain request|serve|history`: the retrain policy, and the wiring to pipelines.

Monitoring meets pipelines in the CLI (DESIGN.md §3): the policy takes a launcher from
`castml.cli.pipeline_launchers` (kfp.local, or a KFP cluster when CASTML_KFP_HOST is set).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from castml.cli.console import console

app = typer.Typer(no_args_is_help=True)


def build_policy(wait: bool = False) -> tuple[Any, Any]:
    """(policy, launcher) from RetrainSettings; kfp.local runs go to a background thread.

    Drift, performance and schedule retrains train on the spec's source plus the labelled
    traffic under `<home>/logs` (monitoring.training_set), when there is enough of it.
    Either launcher starts the checked-in compiled pipeline, passed as a path.
    """
    from castml.cli.pipeline_launchers import KfpClusterLauncher, local_launcher
    from castml.settings import PipelineSettings
    from castml.spec import load_spec
    from monitoring.launchers import BackgroundLauncher
    from monitoring.policy import RetrainPolicy
    from monitoring.settings import RetrainSettings, from_env
    from monitoring.training_set import LoggedTrainingData

    settings = from_env(RetrainSettings)
    uri = settings.tracking_uri
    if settings.kfp_host:
        launcher: Any = KfpClusterLauncher(settings.kfp_host, uri)
    else:
        pipeline = from_env(PipelineSettings)
        launcher = local_launcher(uri, pipeline.local_pipeline_root, pipeline.profile or "")
    policy = RetrainPolicy(
        load_spec,
        launcher,
        settings.decisions_dir,
        settings.retrain_max_run_hours,
        training_data=LoggedTrainingData(settings.logs_dir, uri),
    )
    if isinstance(launcher, BackgroundLauncher):
        launcher.attach(policy)
    return policy, launcher


def _show(decision: dict[str, Any]) -> None:
    color = {"started": "green", "skipped": "yellow", "failed": "red"}.get(
        decision["outcome"], "white"
    )
    console.print(
        f"[{color}]{decision['outcome']}[/] {decision['project']} ({decision['reason']}): "
        f"{decision['detail']}"
    )


@app.command("request")
def request(
    project: Annotated[str, typer.Option(help="Project to retrain.")] = "diecast",
    reason: Annotated[str, typer.Option(help="drift | performance | schedule | manual")] = "manual",
    evidence_uri: Annotated[str | None, typer.Option(help="URI of the drift result.")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for a local run to finish.")] = True,
) -> None:
    """Ask the policy for one training run; prints started (run id) / skipped (why) / failed."""
    from monitoring.launchers import BackgroundLauncher
    from monitoring.policy import RetrainRequest
    from monitoring.training_set import describe

    policy, launcher = build_policy()
    decision = policy.decide(RetrainRequest(project, reason, evidence_uri))
    _show(decision.to_dict())
    if decision.outcome == "started":
        console.print(describe(decision.evidence.get("training_data")))
    if wait and isinstance(launcher, BackgroundLauncher) and decision.outcome == "started":
        launcher.wait()
        _show(policy.history(project)[-1])


@app.command("history")
def history(project: Annotated[str | None, typer.Option(help="Only this project.")] = None) -> None:
    """Every decision with its evidence (JSON lines under <home>/retrain)."""
    import orjson  # not in the pipelines image; only this command needs it

    policy, _ = build_policy()
    for row in policy.history(project):
        print(orjson.dumps(row).decode())


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8091).")] = None,
    schedule: Annotated[
        list[str] | None, typer.Option(help="Projects to retrain on their spec's cron.")
    ] = None,
) -> None:
    """POST /v1/retrain (requests and Alertmanager webhooks) plus the embedded monthly scheduler."""
    import uvicorn

    from castml.spec import load_spec
    from monitoring.auth import UnauthorizedError
    from monitoring.retrain_api import build_app
    from monitoring.scheduler import LocalScheduler
    from monitoring.settings import RetrainSettings, from_env

    settings = from_env(RetrainSettings, retrain_host=host, retrain_port=port)
    if not settings.retrain_token:
        raise UnauthorizedError("set CASTML_RETRAIN_TOKEN: the retrain endpoint never runs open")
    policy, _ = build_policy()
    schedulers = [
        LocalScheduler(
            policy, p, load_spec(p).retrain.schedule, on_decision=lambda d: _show(d.to_dict())
        )
        for p in schedule or []
    ]
    for scheduler in schedulers:
        scheduler.start()
    uvicorn.run(
        build_app(policy, settings.retrain_token),
        host=settings.retrain_host,
        port=settings.retrain_port,
        log_level="warning",
    )
