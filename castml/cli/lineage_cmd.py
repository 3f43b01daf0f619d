"""`castml lineage diecast [--version N | --request-id ID]`: one version's chain, as a tree.

For a knowledge base (`castml lineage diecast-kb`) the log node also counts the version's
logged queries, how many had no answer, and the documents its answers cited most.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.tree import Tree

from castml.cli.console import console
from castml.cli.project_names import registered_name
from castml.errors import CastmlError

if TYPE_CHECKING:
    from monitoring.lineage import KbQueries, Lineage

# A group with no sub-commands, so `castml lineage diecast --version 3` needs its options
# parsed after the positional project (click groups stop at the first positional).
app = typer.Typer(context_settings={"allow_interspersed_args": True})


class LineageUsageError(CastmlError):
    """--version and --request-id name the version two ways."""


def render_training_data(node: Tree, data: dict[str, str]) -> None:
    """Where the training data came from (castml.data.* tags); logged partitions listed."""
    source = data.get("source")
    if not source:
        node.add("[dim]no castml.data.* tags: trained before data lineage was recorded[/]")
        return
    if "logged_rows" not in data:
        node.add(f"training data  {source}  {data.get('uri', '')}".rstrip())
        return
    logged = node.add(
        f"training data  spec source {data.get('spec_rows', '?')} rows + "
        f"[bold]{data['logged_rows']} labelled logged rows[/] ({data.get('window', '')})"
    )
    for entry in data.get("partitions", "").split():
        part, _, rows = entry.rpartition(":")
        logged.add(f"logs/{part}  {rows} rows")
    if data.get("dropped"):
        logged.add(f"left out: {data['dropped']}")
    if data.get("uri"):
        logged.add(f"file {data['uri']}")


def render_kb_queries(node: Tree, stats: KbQueries) -> None:
    """A knowledge base version's query log: how much, how often unanswered, cited what."""
    rate = stats.no_answer_rate
    share = "" if rate is None else f" ({rate:.1%})"
    queries = node.add(
        f"[bold]{stats.queries} logged queries[/], {stats.no_answer} without an answer{share}"
    )
    if stats.most_cited:
        cited = ", ".join(f"{document} ({n})" for document, n in stats.most_cited)
        queries.add(f"most cited  {cited}")


def render(chain: Lineage, tracking_uri: str) -> Tree:
    """data hash -> pipeline run -> version -> served by -> log partitions -> drift reports."""
    aliases = " ".join(f"@{a}" for a in chain.aliases)
    root = Tree(f"[bold]{chain.project}[/] version [bold]{chain.version}[/] {aliases}")
    data = root.add(f"data hash      {chain.data_hash or '[dim]unknown[/]'}")
    render_training_data(data, chain.training_data)
    run = root.add(f"pipeline run   {chain.pipeline_run_id or '[dim]unknown[/]'}")
    run.add(f"MLflow run {chain.training_run_id}  ({tracking_uri}/#/runs/{chain.training_run_id})")
    run.add(f"reason {chain.retrain_reason or '-'}, gate {chain.gate or '-'}")
    served = root.add("served by")
    if not chain.deployed:
        served.add("[dim]no deployed.* tags: the rollout reconciler has not served this version[/]")
    for key, value in chain.deployed.items():
        served.add(f"{key}: {value}")
    logs = root.add(f"log partitions ({len(chain.partitions)})")
    for part in chain.partitions:
        logs.add(f"{part.path}  {part.files} files, {part.rows} rows")
    if chain.kb_queries is not None:
        render_kb_queries(logs, chain.kb_queries)
    if chain.request is not None:
        hit = chain.request
        found = logs.add(f"[bold]request {hit.request_id}[/]: {hit.rows} row(s) in {hit.file}")
        if chain.kb_queries is None:  # a kb query has no probability and no label
            found.add(f"probability {', '.join(f'{p:.3f}' for p in hit.probability) or '-'}")
            found.add(f"delayed label {', '.join(f'{v:g}' for v in hit.labels) or 'not yet'}")
    reports = root.add(f"drift reports ({len(chain.drift_reports)})")
    for report in chain.drift_reports:
        when = datetime.fromtimestamp(report.started_at_ms / 1000, UTC).isoformat(
            timespec="seconds"
        )
        flag = "[red]drift[/]" if report.dataset_drift else report.status
        share = "" if report.drift_share is None else f" share {report.drift_share:.2f}"
        reports.add(f"{when} {flag}{share}  run {report.run_id}  {report.report_uri or ''}")
    return root


@app.callback(invoke_without_command=True)
def show(
    project: Annotated[
        str,
        typer.Argument(
            help="Project (registered model name), or a spec path (its `name`).",
            callback=registered_name,
        ),
    ],
    version: Annotated[
        str | None, typer.Option(help="Registry version; default @champion.")
    ] = None,
    request_id: Annotated[
        str | None, typer.Option(help="Find this request in the Parquet logs first.")
    ] = None,
) -> None:
    """data hash -> pipeline run -> model version -> what served it -> logs -> drift reports."""
    from castml import registry
    from castml.settings import PlatformSettings
    from monitoring.lineage import lineage
    from monitoring.settings import from_env

    if version is not None and request_id is not None:
        raise LineageUsageError("pass --version or --request-id, not both")
    settings = from_env(PlatformSettings)
    client = registry.client(settings.tracking_uri, settings.mlflow_timeout_s)
    logs_root = settings.logs_dir
    chain = lineage(client, project, logs_root, version=version, request_id=request_id)
    console.print(render(chain, settings.tracking_uri))
