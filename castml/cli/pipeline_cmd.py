"""`castml pipeline run|compile|submit|schedule`: the KFP training pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from castml.cli.console import console, progress
from castml.cli.mlflow_cmd import ensure_up
from castml.cli.project_names import SPEC_SUFFIXES, registered_name
from castml.registry import RETRAIN_REASONS
from castml.settings import PipelineSettings

app = typer.Typer(no_args_is_help=True)

Project = Annotated[
    str,
    typer.Option(
        "--project", "-p", help="Project name (castml/projects/<name>.yaml) or spec path."
    ),
]


Package = Annotated[
    str,
    typer.Option(
        help="Compiled pipeline YAML to start (default: pipelines/compiled/training.yaml)."
    ),
]


def _package(package: str) -> Path:
    from pipelines.runner import TRAINING_PACKAGE

    return Path(package) if package else TRAINING_PACKAGE


def _spec_ref(project: str) -> str:
    """A spec path made absolute (kfp.local's task processes may start elsewhere); a name as is."""
    path = Path(project)
    return str(path.resolve()) if path.suffix in SPEC_SUFFIXES else project


def _check_reason(reason: str) -> str:
    if reason not in RETRAIN_REASONS:
        raise typer.BadParameter(f"must be one of {', '.join(RETRAIN_REASONS)}")
    return reason


def run_with_progress(settings: PipelineSettings, project: str, **kwargs: Any) -> Any:
    """kfp.local run with a progress bar per task and one for the AutoEncoder's epochs."""
    from pipelines.runner import TASKS, run_local

    uri = ensure_up(settings)
    with progress() as bar:
        steps = bar.add_task(f"pipeline {project}: validate", total=len(TASKS))
        epochs = bar.add_task("training epochs", total=None, visible=False)

        def on_progress(event: str, detail: dict[str, Any]) -> None:
            if event == "task" and detail["status"] == "SUCCESS":
                bar.advance(steps)
                done = TASKS.index(detail["task"]) + 1 if detail["task"] in TASKS else 0
                following = TASKS[done] if done < len(TASKS) else "done"
                bar.update(steps, description=f"pipeline {project}: {following}")
            elif event == "epoch":
                bar.update(epochs, total=detail["epochs"], completed=detail["epoch"], visible=True)

        return run_local(
            project, uri, settings.local_pipeline_root, on_progress=on_progress, **kwargs
        )


@app.command()
def run(
    project: Project = "diecast",
    profile: Annotated[
        str, typer.Option(help="Hyper-parameter profile from the spec, e.g. 'fast'.")
    ] = "",
    reason: Annotated[
        str, typer.Option(help="castml.retrain_reason tag.", callback=_check_reason)
    ] = "manual",
    data: Annotated[
        str,
        typer.Option(
            help="CSV/Parquet file (or a runs:/ URI in MLflow) instead of the spec's source; "
            "its lineage is recorded as castml.data.* tags."
        ),
    ] = "",
    params: Annotated[
        str, typer.Option(help='JSON overrides, e.g. \'{"gbm": {"n_estimators": 50}}\'.')
    ] = "",
) -> None:
    """Run validate -> split -> train -> evaluate -> register through kfp.local (offline)."""
    from castml.cli.model_cmd import show_version

    name = registered_name(project)  # a bad spec fails here, in one line, before any work
    if params:
        try:
            json.loads(params)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"--params is not JSON: {exc}") from exc
    settings = PipelineSettings()
    outcome = run_with_progress(
        settings,
        _spec_ref(project),
        reason=reason,
        profile=profile or (settings.profile or ""),
        params_override=params,
        data_path=data,
    )
    show_version(settings.tracking_uri, name, outcome.version)
    console.print(f"pipeline log: {outcome.log_file}")


@app.command()
def compile() -> None:
    """Write pipelines/compiled/*.yaml (checked in; CI diffs them; every run starts from it)."""
    from pipelines.runner import compile_all

    for path in compile_all():
        console.print(f"wrote {path}")


@app.command()
def submit(
    host: Annotated[
        str,
        typer.Option(
            envvar="CASTML_KFP_HOST",
            help="KFP API endpoint, e.g. http://ml-pipeline.kubeflow:8888.",
        ),
    ],
    project: Project = "diecast",
    mlflow_uri: Annotated[
        str, typer.Option(help="MLflow URI as seen from inside the cluster.")
    ] = "",
    reason: Annotated[str, typer.Option(callback=_check_reason)] = "manual",
    data: Annotated[
        str,
        typer.Option(help="Data the pipeline pods can read (a runs:/ URI); default: the spec's."),
    ] = "",
    package: Package = "",
) -> None:
    """Start one run on a KFP cluster."""
    from pipelines.runner import submit as submit_run

    settings = PipelineSettings()
    run_id = submit_run(
        host,
        project,
        mlflow_uri or settings.tracking_uri,
        reason,
        data_path=data,
        package=_package(package),
    )
    console.print(f"submitted run {run_id} to {host}")


@app.command()
def schedule(
    host: Annotated[str, typer.Option(envvar="CASTML_KFP_HOST", help="KFP API endpoint.")],
    cron: Annotated[
        str, typer.Option(help="6-field KFP cron; monthly: '0 0 2 1 * *'.")
    ] = "0 0 2 1 * *",
    project: Project = "diecast",
    mlflow_uri: Annotated[
        str, typer.Option(help="MLflow URI as seen from inside the cluster.")
    ] = "",
    package: Package = "",
) -> None:
    """Register the recurring (monthly) retrain as a KFP recurring run."""
    from pipelines.runner import schedule as schedule_run

    settings = PipelineSettings()
    job = schedule_run(
        host, project, mlflow_uri or settings.tracking_uri, cron, package=_package(package)
    )
    console.print(f"recurring run {job} registered on {host} with cron '{cron}'")
