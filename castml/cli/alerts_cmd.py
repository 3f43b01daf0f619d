"""`castml alerts write`: the Prometheus alert rules, from the project specs (`make alerts`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from castml.cli.console import console

app = typer.Typer(no_args_is_help=True)


@app.command("write")
def write(
    out_dir: Annotated[
        Path, typer.Option(help="Folder the rule file goes to (the chart gets a copy).")
    ] = Path("monitoring/alerts"),
) -> None:
    """Write castml-rules.yaml: each project's drift and performance alerts, its thresholds."""
    from castml.cli.alert_rules import write as write_rules

    console.print(f"wrote {write_rules(out_dir)}")
