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
    path: Annotated[Path, typer.Argument(help="CSV or Parquet file.")],
    project: Annotated[str, typer.Option("--project", "-p")] = "diecast",
) -> None:
    """Validate a data file against a project spec, naming every problem."""
    from castml.data.loaders import load_dataset
    from castml.data.validation import validated

    spec = load_spec(project)
    frame = validated(load_dataset(spec, path), spec)
    console.print(f"[green]valid[/]: {len(frame)} rows, {len(spec.features)} features")
