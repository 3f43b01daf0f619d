"""`castml data generate|validate|projects`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from castml.cli.console import console
from castml.spec import list_projects, load_spec

app = typer.Typer(no_args_is_help=True)


@app.command()
def projects() -> None:
    """List the bundled project specs."""
    for name in list_projects():
        spec = load_spec(name)
        console.print(
            f"[bold]{name}[/]: {spec.task}, {len(spec.features)} features,"
            f" source {spec.source.kind}"
        )


@app.command()
def generate(
    out: Annotated[Path, typer.Argument(help="Output .csv or .parquet file.")],
    rows: Annotated[int, typer.Option(min=1)] = 10_000,
    seed: int = 0,
    scenario: Annotated[
        str,
        typer.Option(
            help="Drift scenario: none, sensor_degradation, seasonal_heat, new_alloy_batch."
        ),
    ] = "none",
) -> None:
    """Write synthetic die-casting shots (optionally under a drift scenario)."""
    from castml.data.diecast import generate as generate_shots

    frame = generate_shots(rows, seed, scenario)
    if out.suffix == ".csv":
        frame.to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)
    console.print(f"wrote {len(frame)} shots to {out} (defect rate {frame['defect'].mean():.1%})")


@app.command()
def validate(
    path: Annotated[
        Path | None,
        typer.Argument(help="CSV or Parquet file; absent: the spec's own source."),
    ] = None,
    project: Annotated[
        str, typer.Option("--project", "-p", help="A bundled project name or a spec path.")
    ] = "diecast",
) -> None:
    """Validate a data set against a project spec, naming every problem at once."""
    from rich.console import Console
    from rich.text import Text

    from castml.data.loaders import load_dataset
    from castml.data.validation import validated
    from castml.errors import DataValidationError

    spec = load_spec(project)
    try:
        frame = validated(load_dataset(spec, path), spec)
    except DataValidationError as exc:
        errors = Console(stderr=True, soft_wrap=True, highlight=False)
        for problem in exc.problems:
            # Text, not markup: problems quote values such as [550.0, 800.0] literally.
            errors.print(Text.assemble(("error:", "bold red"), f" {problem}"))
        errors.print(f"{len(exc.problems)} problem(s) in the data of {spec.name}")
        raise typer.Exit(1) from None
    ignored = f", {len(spec.ignore)} ignored column(s)" if spec.ignore else ""
    console.print(f"[green]valid[/]: {len(frame)} rows, {len(spec.features)} features{ignored}")
