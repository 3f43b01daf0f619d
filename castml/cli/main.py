"""`castml`: entry point. Sub-command groups live in sibling modules, each a Typer app.

Errors a user can cause print as one red line (no traceback) and exit 1;
`CASTML_DEBUG=1` shows the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer
from rich.console import Console

from castml.errors import CastmlError

app = typer.Typer(
    name="castml",
    help="castml: train (KFP), register (MLflow), serve (KServe v2), monitor (Evidently).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# (module under castml.cli, group name, help). A module is skipped if its code is not there yet.
GROUPS = [
    ("mlflow_cmd", "mlflow", "Run the embedded MLflow server."),
    (
        "pipeline_cmd",
        "pipeline",
        "Compile, run (kfp.local), submit and schedule the training pipeline.",
    ),
    ("model_cmd", "model", "List, promote and roll back registered versions (moves @champion)."),
    ("data_cmd", "data", "Generate and validate data sets."),
    ("serve_cmd", "serve", "Run the predictor, transformer and explainer."),
    ("rollout_cmd", "rollout", "Keep serving on the version behind @champion."),
    ("drift_cmd", "drift", "Run drift jobs over the logged traffic."),
    ("retrain_cmd", "retrain", "Ask the retrain policy for a new training run."),
    ("collector_cmd", "collector", "Run the payload collector."),
    ("lineage_cmd", "lineage", "Show a model version's lineage."),
]

for module_name, group, text in GROUPS:
    try:
        module = importlib.import_module(f"castml.cli.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"castml.cli.{module_name}":
            raise
        continue
    app.add_typer(module.app, name=group, help=text)

try:
    from castml.cli.demo_cmd import demo

    app.command(
        help="The platform's main job on this machine: MLflow, pipeline, serving, monitoring."
    )(demo)
except ModuleNotFoundError:
    pass


def run() -> None:
    """Console-script entry point."""
    from castml.settings import PlatformSettings

    # MLflow's process-wide default is a SQLite file in the working directory; any call
    # that forgets an explicit URI must reach the configured server instead.
    os.environ.setdefault("MLFLOW_TRACKING_URI", PlatformSettings().tracking_uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # rich draws ours
    console = Console(stderr=True)
    try:
        app()
    except CastmlError as exc:
        if os.environ.get("CASTML_DEBUG"):
            raise
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)


if __name__ == "__main__":
    run()
