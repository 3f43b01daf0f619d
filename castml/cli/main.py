"""`castml`: entry point. Sub-command groups live in sibling modules, each a Typer app.

Errors a user can cause print as one red line (no traceback) and exit 1;
`CASTML_DEBUG=1` shows the traceback.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

from castml.cli import (
    alerts_cmd,
    assist_cmd,
    collector_cmd,
    data_cmd,
    demo_cmd,
    drift_cmd,
    forecast_cmd,
    kb_cmd,
    lineage_cmd,
    mlflow_cmd,
    model_cmd,
    pipeline_cmd,
    platform_cmd,
    retrain_cmd,
    rollout_cmd,
    serve_cmd,
    studio_cmd,
    ui_cmd,
)
from castml.errors import CastmlError

app = typer.Typer(
    name="castml",
    help="castml: train (KFP), register (MLflow), serve (KServe v2), monitor (Evidently).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# The one composition root (DESIGN.md §3): every group is imported here, by name, so a
# missing or broken module fails loudly. Each module imports the rooms inside its
# commands, so `castml` loads in every image (tests/unit/test_cli.py checks each one).
GROUPS = [
    (mlflow_cmd.app, "mlflow", "Run the embedded MLflow server."),
    (
        pipeline_cmd.app,
        "pipeline",
        "Compile, run (kfp.local), submit and schedule the training pipeline.",
    ),
    (model_cmd.app, "model", "List, promote and roll back registered versions (moves @champion)."),
    (data_cmd.app, "data", "Generate and validate data sets."),
    (serve_cmd.app, "serve", "Run the predictor, transformer and explainer."),
    (rollout_cmd.app, "rollout", "Keep serving on the version behind @champion."),
    (drift_cmd.app, "drift", "Run drift jobs over the logged traffic."),
    (retrain_cmd.app, "retrain", "Ask the retrain policy for a new training run."),
    (collector_cmd.app, "collector", "Run the payload collector."),
    (lineage_cmd.app, "lineage", "Show a model version's lineage."),
    (alerts_cmd.app, "alerts", "Write the Prometheus alert rules from the project specs."),
    (kb_cmd.app, "kb", "Build (kfp.local), evaluate and ask the knowledge base (T3)."),
    (forecast_cmd.app, "forecast", "Run and schedule the forecast job; serve cached forecasts."),
    (platform_cmd.app, None, "castml up / down: the embedded platform in the background."),
]

for group_app, group, text in GROUPS:
    app.add_typer(group_app, name=group, help=text)

app.command(help="The platform's main job on this machine: MLflow, pipeline, serving, monitoring.")(
    demo_cmd.demo
)
app.command(help="The assistant agent: predict, explain and ask about a shot, or ask.")(
    assist_cmd.assist
)
app.command("ui", help="Run the web UI (Streamlit) on 127.0.0.1.")(ui_cmd.ui)
app.command("studio", help="Run the studio API (CTR upload, train, reports) on 127.0.0.1.")(
    studio_cmd.studio
)


def run() -> None:
    """Console-script entry point."""
    from pydantic import ValidationError

    from castml.settings import PlatformSettings

    console = Console(stderr=True)
    try:
        settings = PlatformSettings()
    except ValidationError as exc:  # a CASTML_* variable that does not parse
        problems = "; ".join(
            f"CASTML_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        console.print(f"[bold red]error:[/] {problems}", highlight=False, soft_wrap=True)
        sys.exit(78)  # EX_CONFIG, as the servers' start-up errors
    # MLflow's process-wide default is a SQLite file in the working directory; any call
    # that forgets an explicit URI must reach the configured server instead.
    os.environ.setdefault("MLFLOW_TRACKING_URI", settings.tracking_uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # rich draws ours
    try:
        app()
    except CastmlError as exc:
        if settings.debug:
            raise
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    run()
