"""`castml demo`: the platform's main job on this machine, end to end.

MLflow (SQLite) -> the KFP pipeline through kfp.local -> a registered, gated
version; then, when those parts are installed, serving on loopback and the
monitoring loop (drift -> retrain). It ends with the platform up (`castml up`): MLflow,
serving, the collector and the reconciler, so a promotion in the MLflow UI is served.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from castml.cli.console import console
from castml.cli.model_cmd import show_version, ui_url
from castml.cli.pipeline_cmd import run_with_progress
from castml.mlflow_server import ServerLayout
from castml.settings import PipelineSettings

if TYPE_CHECKING:
    from castml.cli.monitoring_demo import LoggedServing, ServeWithLogger


def demo(
    use_case: Annotated[
        str | None,
        typer.Argument(help="`bikeshare`: the forecasting demo (castml.cli.forecast_demo)."),
    ] = None,
    project: Annotated[str, typer.Option("--project", "-p")] = "diecast",
    profile: Annotated[
        str, typer.Option(help="'fast' for a quick run; default: the spec's full training.")
    ] = "",
    serving: Annotated[bool, typer.Option(help="Also run the serving part.")] = True,
    monitoring: Annotated[bool, typer.Option(help="Also run the monitoring loop.")] = True,
) -> None:
    settings = PipelineSettings()
    if "bikeshare" in (use_case, project):  # issue 14: its own path, forecasting
        from castml.cli.forecast_demo import run_bikeshare_demo

        run_bikeshare_demo(settings, profile or settings.profile or "")
        return
    if use_case == "ctr":  # issue 15: the studio, driven as its frontend drives it
        from castml.cli.studio_demo import run_ctr_demo

        run_ctr_demo(settings)
        return
    if use_case is not None:
        raise typer.BadParameter(f"unknown demo '{use_case}' (known: bikeshare, ctr)")
    console.rule(f"[bold]1. train and register {project}[/] (MLflow + kfp.local pipeline)")
    outcome = run_with_progress(
        settings, project, reason="manual", profile=profile or (settings.profile or "")
    )
    uri = settings.tracking_uri
    show_version(uri, project, outcome.version)

    if serving:
        _serving_part(uri, project, settings)
    if monitoring:
        _monitoring_part(uri, project, settings, profile)

    web_ui = None
    if serving:
        from castml.cli.platform_cmd import bring_up, show

        _knowledge_part(project)
        console.rule("[bold]5. the platform stays up[/] (castml up)")
        state = bring_up(settings, project)
        show(state, settings)
        web_ui = state.parts["ui"].url if "ui" in state.parts else None
        if "knowledge" in state.parts:
            _ask_part(project, {name: part.url for name, part in state.parts.items()})
    console.rule("[bold]done[/]")
    console.print(
        f"MLflow UI: [link]{ui_url(uri, project)}[/link]  (promote by moving @champion there: "
        "the reconciler's webhook serves it within a second)"
    )
    if web_ui is not None:
        console.print(
            f"Web UI: [link]{web_ui}[/link]  (predict, analysis, assistant, history, models; "
            "Korean and English)"
        )
    log = ServerLayout(settings.mlflow_dir).log_file
    console.print(
        f"Everything keeps running (MLflow log {log}); `castml up --status` says where, "
        "`castml down` stops it all."
    )


def _knowledge_part(project: str) -> None:
    """The knowledge base the assistant cites (T3): its own pipeline through kfp.local,
    gated against the champion index and registered as `<project>-kb`."""
    from castml.spec import load_spec

    if load_spec(project).knowledge is None:
        return
    from castml.cli import kb_cmd
    from castml.protocol.mlflow_names import kb_model_name

    console.rule(
        f"[bold]4. the knowledge base[/] ({kb_model_name(project)}: "
        "parse -> chunk -> index -> evaluate -> register, kfp.local)"
    )
    kb_cmd.build(project=project)


KO_QUESTION = "이 샷은 왜 불량인가요? 원인과 점검할 항목을 알려주세요."
EN_QUESTION = "Why is this shot defective, and what should we check first?"


def _ask_part(project: str, urls: dict[str, str]) -> None:
    """Issue 12 §7: a defect shot of the demo's drifted traffic, asked about through the
    running platform (predict, explain, then the knowledge base with that context), in
    Korean, then in English with the same shot as context."""
    from castml.cli.assist_cmd import show_answer, show_report
    from castml.cli.monitoring_demo import SCENARIO
    from castml.data.diecast import generate
    from castml.spec import load_spec
    from ui.agent import Agent
    from ui.settings import UiSettings

    console.rule("[bold]6. why is this shot defective?[/] (the assistant, Korean and English)")
    spec = load_spec(project)
    agent_settings = UiSettings(
        project=project,
        transformer_url=urls["transformer"],
        explainer_url=urls["explainer"],
        knowledge_url=urls["knowledge"],
    )
    # The demo's drifted traffic (monitoring part), its labelled defects first.
    frame = generate(200, 202, SCENARIO, severity=2.0)
    defects = frame[frame[spec.target] == 1][spec.feature_names]
    with Agent(agent_settings) as agent:
        for shot in defects.head(10).to_dict("records"):
            report = agent.report(shot, language="ko", question=KO_QUESTION)
            if report.prediction is not None and report.prediction.class_name == "defect":
                break
        console.print(f"[bold]{KO_QUESTION}[/]")
        show_report(report)
        console.print(f"[bold]{EN_QUESTION}[/]")
        show_answer(agent.ask(EN_QUESTION, context=report, language="en"))


def _serving_part(uri: str, project: str, settings: PipelineSettings) -> None:
    try:
        from castml.cli.serving_demo import run_serving_demo
    except ImportError:
        console.print(
            "[yellow]serving is not installed in this build; skipping the serving part[/]"
        )
        return
    from castml import registry

    client = registry.client(uri)
    if registry.promotion_candidate(client, project) is None:
        console.rule("[bold]2a. a second version to roll out[/] (quick retrain, fast profile)")
        run_with_progress(settings, project, reason="manual", profile="fast")
    console.rule("[bold]2. serve[/] (predictor, transformer, explainer on 127.0.0.1)")
    run_serving_demo(uri, project, settings.home.resolve())


def logged_serving(uri: str, project: str, home: Path) -> ServeWithLogger:
    """The monitoring part's serving: its own predictor + transformer, logging to its collector.

    Its own, not the serving part's: that one's rollout traffic (one record, over and
    over) would be logged into the drift window too.
    """
    from castml.cli.monitoring_demo import LoggedServing
    from castml.cli.serving_demo import logged_stack

    @contextmanager
    def serve(logger_url: str, token: str) -> Iterator[LoggedServing]:
        with logged_stack(uri, project, home, logger_url, token) as (predictor, transformer):
            # The predictor logs, under the request id the client saw (as KServe's logger
            # sidecar in the chart); the transformer logs nothing.
            yield LoggedServing(transformer.url, {"predictor": predictor.url})

    return serve


def _monitoring_part(uri: str, project: str, settings: PipelineSettings, profile: str) -> None:
    try:
        from castml.cli.monitoring_demo import run_monitoring_demo
        from castml.cli.serving_demo import logged_stack  # noqa: F401  (the traffic goes through serving)
    except ImportError:
        console.print(
            "[yellow]monitoring or serving is not installed in this build; "
            "skipping the monitoring part[/]"
        )
        return
    from castml.cli.pipeline_launchers import local_launcher

    console.rule(
        "[bold]3. monitor[/] (served traffic -> payload log -> Evidently drift -> retrain)"
    )
    home = settings.home.resolve()
    launcher = local_launcher(uri, settings.local_pipeline_root, profile=profile)
    serve = logged_serving(uri, project, home)
    run_monitoring_demo(uri, project, home, serve, launcher, console=console)
