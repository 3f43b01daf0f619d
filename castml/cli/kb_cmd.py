"""`castml kb build|eval|ask`: the knowledge base (T3) as a versioned, gated model."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from castml.cli.console import console, progress
from castml.cli.mlflow_cmd import ensure_up
from castml.cli.project_names import registered_name
from castml.errors import CastmlError
from castml.llm_chat import LlmSettings
from castml.settings import PipelineSettings

app = typer.Typer(no_args_is_help=True)

Project = Annotated[
    str,
    typer.Option(
        "--project", "-p", help="Project name (castml/projects/<name>.yaml) or spec path."
    ),
]
MODES = ("bm25", "dense", "hybrid", "hybrid_rescored")
COLUMNS = (("recall@5", "recall@5"), ("recall@20", "recall@20"), ("ndcg@10", "nDCG@10"))


def metrics_table(retrievers: dict[str, dict[str, float]], title: str) -> Table:
    """The four retrievers side by side."""
    table = Table(title=title)
    table.add_column("retriever")
    for _, label in (*COLUMNS, ("mrr", "MRR")):
        table.add_column(label, justify="right")
    for mode in MODES:
        if mode in retrievers:
            values = retrievers[mode]
            keys = [key for key, _ in COLUMNS] + ["mrr"]
            table.add_row(mode, *(f"{values.get(k, float('nan')):.3f}" for k in keys))
    return table


def _spec_ref(project: str) -> str:
    path = Path(project)
    return str(path.resolve()) if path.suffix in {".yaml", ".yml"} else project


def _show_version(uri: str, project: str, version: int) -> None:
    from castml.knowledge.kb_registration import version_summary

    summary = version_summary(project, version, uri)
    aliases = ", ".join(f"@{a}" for a in summary.aliases) or "no alias"
    console.print(f"knowledge index {project}-kb version {version} ({aliases})")
    console.print(f"gate: {summary.gate}")
    console.print(
        metrics_table(
            summary.evaluation.retrievers, f"retrievers ({summary.evaluation.queries} queries)"
        )
    )


@app.command()
def build(
    project: Project = "diecast",
    corpus: Annotated[
        str,
        typer.Option(help="Corpus directory (documents, catalog.json, eval/); default: packaged."),
    ] = "",
    local: Annotated[
        bool, typer.Option("--local/--direct", help="Through kfp.local, or the steps in-process.")
    ] = True,
    embedding_model: Annotated[
        str, typer.Option(help="e5 or wordllama; default: the spec's knowledge block.")
    ] = "",
    chunk_max_chars: Annotated[int, typer.Option(help="0: the spec's.")] = 0,
    chunk_overlap: Annotated[int, typer.Option(help="0: the spec's.")] = 0,
    reason: Annotated[str, typer.Option(help="castml.retrain_reason tag.")] = "manual",
) -> None:
    """parse -> chunk -> index -> evaluate -> register, then the version and its metrics."""
    name = registered_name(project)  # a bad spec fails here, before any work
    corpus_dir = str(Path(corpus).resolve()) if corpus else ""
    if corpus and not Path(corpus_dir).is_dir():
        raise CastmlError(f"corpus directory {corpus} does not exist")
    settings = PipelineSettings()
    uri = ensure_up(settings)
    if local:
        from pipelines.runner import KNOWLEDGE_TASKS, run_knowledge_local

        with progress() as bar:
            steps = bar.add_task(f"knowledge {name}: parse", total=len(KNOWLEDGE_TASKS))

            def on_progress(event: str, detail: dict[str, Any]) -> None:
                if event == "task" and detail["status"] == "SUCCESS":
                    bar.advance(steps)
                    task = detail["task"]
                    done = KNOWLEDGE_TASKS.index(task) + 1 if task in KNOWLEDGE_TASKS else 0
                    following = KNOWLEDGE_TASKS[done] if done < len(KNOWLEDGE_TASKS) else "done"
                    bar.update(steps, description=f"knowledge {name}: {following}")

            outcome = run_knowledge_local(
                _spec_ref(project),
                uri,
                settings.local_pipeline_root,
                corpus_dir=corpus_dir,
                reason=reason,
                embedding_model=embedding_model,
                chunk_max_chars=chunk_max_chars,
                chunk_overlap=chunk_overlap,
                on_progress=on_progress,
            )
        version = outcome.version
        console.print(f"pipeline log: {outcome.log_file}")
    else:
        from castml.knowledge.kb_steps import BuildOptions, run_direct

        with (
            console.status("building the knowledge index in this process"),
            tempfile.TemporaryDirectory() as tmp,
        ):
            version = run_direct(
                project,
                uri,
                Path(tmp),
                corpus_dir=corpus_dir,
                options=BuildOptions(embedding_model, chunk_max_chars, chunk_overlap),
                reason=reason,
            ).version
    _show_version(uri, name, version)


Ref = Annotated[str, typer.Option("--version", help="A version number or an alias.")]


@app.command("eval")
def evaluate(
    project: Project = "diecast",
    version: Ref = "champion",
    index: Annotated[
        str, typer.Option(help="An index directory instead of a registered version.")
    ] = "",
    queries: Annotated[
        str, typer.Option(help="Labelled queries (file or folder); default: the packaged set.")
    ] = "",
) -> None:
    """The four retrievers' metrics on the labelled queries."""
    from castml.knowledge.eval_queries import load_eval_queries
    from castml.knowledge.kb_gate import score_index
    from castml.knowledge.kb_steps import EVAL_DIR, PACKAGED_CORPUS
    from castml.spec import load_spec

    spec = load_spec(project)
    labelled = load_eval_queries(Path(queries) if queries else PACKAGED_CORPUS / EVAL_DIR)
    with tempfile.TemporaryDirectory() as tmp:
        if index:
            where, index_dir = index, Path(index)
        else:
            from castml.knowledge.kb_registration import download_index

            uri = ensure_up(PipelineSettings())
            number, index_dir = download_index(spec.name, version, Path(tmp), uri)
            where = f"{spec.name}-kb version {number}"
        with console.status(f"scoring {where} on {len(labelled)} queries"):
            retrievers = score_index(index_dir, labelled, spec)
    answerable = int(next(iter(retrievers.values()))["queries"])
    console.print(metrics_table(retrievers, f"{where} ({answerable} queries)"))


def _read_shot(shot: str) -> dict[str, Any]:
    try:
        raw = json.loads(Path(shot).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CastmlError(f"--shot {shot}: cannot be read as JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise CastmlError(
            f"--shot {shot}: expected an object {{prediction, top_features, features}}"
        )
    context: dict[str, Any] = raw.get("context", raw)
    return context


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in Korean or English.")],
    project: Project = "diecast",
    version: Ref = "champion",
    shot: Annotated[
        str, typer.Option(help="JSON file with the context: {prediction, top_features, features}.")
    ] = "",
    language: Annotated[str, typer.Option(help="ko or en; default: detected.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
) -> None:
    """Answer from a pinned version's index, citing its sources."""
    from castml.knowledge.kb_registration import download_index
    from castml.knowledge.knowledge_base import KnowledgeBase
    from castml.spec import load_spec

    spec = load_spec(project)
    context = _read_shot(shot) if shot else None
    uri = ensure_up(PipelineSettings())
    with tempfile.TemporaryDirectory() as tmp:
        number, index_dir = download_index(spec.name, version, Path(tmp), uri)
        kb = KnowledgeBase.load(index_dir, spec)
    answer = kb.ask(question, context, language or None)
    # CASTML_LLM_BASE_URL set: the same rewrite the knowledge role serves (citations checked,
    # the extractive answer kept on any failure); unset, the extractive answer as before.
    client = LlmSettings().llm_client()
    if client is not None:
        from castml.knowledge.answer_rewrite import rewrite_answer

        answer = rewrite_answer(client, question, answer)
    provenance = answer.provenance() if client is not None else {}
    if as_json:
        # Plain stdout: rich would wrap long lines and break the JSON.
        body = {**answer.to_json(), **provenance, "model_version": str(number)}
        typer.echo(json.dumps(body, ensure_ascii=False))
        return
    console.print(f"[bold]{spec.name}-kb version {number}[/bold] ({answer.language})")
    if answer.language_note:
        console.print(answer.language_note)
    if answer.answer_source == "llm":
        console.print("(rewritten by the LLM from the passages below)")
    elif answer.answer_note and not answer.no_answer:
        console.print(f"(LLM not used: {answer.answer_note})", markup=False)
    console.print(answer.answer, markup=False)
    for line in answer.recommendations:
        console.print(f"- {line}", markup=False)
    for source in answer.sources:
        place = f"p. {source['page']}" if "page" in source else f"§ {source.get('section')}"
        console.print(f"  [{source['document']}, {place}, {source['relevance']:.2f}]", markup=False)
