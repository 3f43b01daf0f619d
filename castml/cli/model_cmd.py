"""`castml model list|show|promote|rollback`: the registry, as the MLflow UI shows it.

Promotion is moving `@champion`; the UI does the same. Every promotion records
the version it replaced (`castml.promoted_from`), which is what rollback uses.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from castml import registry
from castml.cli.console import console
from castml.cli.project_names import registered_name
from castml.errors import RegistryError
from castml.settings import PlatformSettings

app = typer.Typer(no_args_is_help=True)
ProjectArg = Annotated[
    str,
    typer.Argument(
        help="Registered model (project) name, or a spec path (its `name`).",
        callback=registered_name,
    ),
]


def _client() -> Any:
    return registry.client(PlatformSettings().tracking_uri)


def ui_url(uri: str, project: str, version: int | None = None) -> str:
    return f"{uri}/#/models/{project}" + (f"/versions/{version}" if version else "")


def show_version(uri: str, project: str, version: int) -> None:
    """Version, aliases, gate verdict, the ablation table and the MLflow UI link."""
    import mlflow.artifacts

    from castml.evaluation import Evaluation, ablation_rows

    mlflow_client = registry.client(uri)
    found = mlflow_client.get_model_version(project, str(version))
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            f"runs:/{found.run_id}/evaluation/evaluation.json", dst_path=tmp, tracking_uri=uri
        )
        evaluation = Evaluation.from_json(json.loads(Path(local).read_text()))
    aliases = ", ".join(f"@{a}" for a in found.aliases) or "no alias"
    verdict = "[green]passed[/]" if evaluation.gate.passed else "[red]failed[/]"
    console.print(f"\nregistered [bold]{project}[/] version [bold]{version}[/] ({aliases})")
    console.print(
        f"reason: {found.tags.get(registry.TAG_RETRAIN_REASON)}   "
        f"data hash: {found.tags.get(registry.TAG_DATA_HASH)}   gate: {verdict}"
    )
    for reason in evaluation.gate.reasons:
        console.print(f"  - {reason}")
    table = Table(title=f"holdout metrics ({evaluation.test_rows} rows)")
    # The baseline is the family's own: a GBM on the raw features (ae_gbm), the same
    # learner untuned, or the seasonal-naive forecast (forecast).
    for column in ("metric", "candidate", "baseline", "@champion"):
        table.add_column(column, justify="right")
    for name, full, base, champion in ablation_rows(evaluation):
        table.add_row(
            name, f"{full:.4f}", f"{base:.4f}", "-" if champion is None else f"{champion:.4f}"
        )
    console.print(table)
    console.print(f"MLflow UI: [link]{ui_url(uri, project, version)}[/link]")


@app.command("list")
def list_versions(project: ProjectArg = "diecast") -> None:
    """All versions with their aliases, gate verdicts and retrain reasons."""
    rows = registry.list_versions(_client(), project)
    if not rows:
        raise RegistryError(
            f"no registered versions of '{project}' yet (run `castml pipeline run`)"
        )
    table = Table(title=f"registered model {project}")
    table.add_column("version", no_wrap=True)
    table.add_column("aliases", no_wrap=True, min_width=len("@challenger @champion"))
    table.add_column("reason", no_wrap=True)
    table.add_column("data", no_wrap=True)
    table.add_column("gate", overflow="fold")
    for row in rows:
        aliases = " ".join(f"@{a}" for a in row.aliases)
        table.add_row(str(row.version), aliases, row.reason, row.data_hash[:8], row.gate[:70])
    console.print(table)


def move_champion(mlflow_client: Any, project: str, version: int) -> int | None:
    """Point @champion at `version`, remembering the previous champion; returns it."""
    previous = registry.alias_version(mlflow_client, project, registry.CHAMPION)
    mlflow_client.set_registered_model_alias(project, registry.CHAMPION, str(version))
    if previous is not None and int(previous.version) != version:
        mlflow_client.set_model_version_tag(
            project, str(version), registry.TAG_PROMOTED_FROM, previous.version
        )
    return int(previous.version) if previous else None


@app.command()
def promote(
    project: ProjectArg = "diecast",
    version: Annotated[
        int | None, typer.Option(help="Version to promote; default: @challenger.")
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Promote even if the version failed its gate.")
    ] = False,
) -> None:
    """Move @champion to a version (what a model owner does in the MLflow UI)."""
    mlflow_client = _client()
    target = registry.resolve_version(
        mlflow_client, project, version if version else registry.CHALLENGER
    )
    gate = target.tags.get(registry.TAG_GATE, "")
    if not gate.startswith("passed") and not force:
        raise RegistryError(
            f"version {target.version} did not pass its gate ({gate[:120]});"
            " use --force to override"
        )
    previous = move_champion(mlflow_client, project, int(target.version))
    console.print(f"@champion: {previous or 'none'} -> {target.version}")


@app.command()
def rollback(
    project: ProjectArg = "diecast",
    to: Annotated[
        int | None, typer.Option(help="Version to roll back to; default: the one it replaced.")
    ] = None,
) -> None:
    """Move @champion back to the version it replaced (or to --to)."""
    mlflow_client = _client()
    current = registry.resolve_version(mlflow_client, project, registry.CHAMPION)
    target = to or int(current.tags.get(registry.TAG_PROMOTED_FROM, 0))
    if not target:
        raise RegistryError(
            f"@champion (version {current.version}) replaced no earlier version; pass --to N"
        )
    registry.resolve_version(mlflow_client, project, target)
    mlflow_client.set_registered_model_alias(project, registry.CHAMPION, str(target))
    console.print(f"@champion: {current.version} -> {target} (rolled back)")
