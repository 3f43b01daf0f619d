"""`castml assist`: the assistant agent (ui.agent) from the command line.

    castml assist --shot shot.json            predict -> explain -> knowledge, one report
    castml assist "질문" [--shot shot.json]    a free question (with the shot as context)
    ... --json                                the agent's JSON instead of tables

The servers are found through the UI's settings (CASTML_TRANSFORMER_URL,
CASTML_EXPLAINER_URL, CASTML_KNOWLEDGE_URL, CASTML_STEP_TIMEOUT_S, ...). A step that
failed is shown in red with its reason and the rest of the report still prints; when
nothing answered, or the servers refuse the shot, one `error:` line says why (exit 1).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from castml.cli.console import console
from castml.errors import CastmlError

if TYPE_CHECKING:
    from ui.agent_report import AgentAnswer, AgentReport, CitedAnswer, StepResult

MAX_SHOT_BYTES = 1024 * 1024


class ShotFileError(CastmlError):
    """The --shot file is missing, too large, or not a JSON object of features."""


def read_shot(path: Path) -> dict[str, Any]:
    """`{"Process_Temperature": 670.0, ...}` or `{"features": {...}}` from a JSON file."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ShotFileError(f"cannot read the shot file {path}: {exc.strerror}") from None
    if size > MAX_SHOT_BYTES:
        raise ShotFileError(
            f"the shot file {path} is {size} bytes; a shot is at most {MAX_SHOT_BYTES} bytes"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShotFileError(f"the shot file {path} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("features"), dict):
        data = data["features"]
    if not isinstance(data, dict) or not data:
        raise ShotFileError(
            f'the shot file {path} must hold a JSON object {{"feature": value, ...}} '
            '(or {"features": {...}})'
        )
    return data


def _number(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) and abs(value) < 1e5 else f"{value:.0f}"


def _steps_table(steps: list[StepResult]) -> Table:
    table = Table(title="steps", title_justify="left")
    for column in ("step", "status", "ms", "attempts", "why"):
        table.add_column(column, justify="right" if column in ("ms", "attempts") else "left")
    for s in steps:
        colour = {"ok": "green", "failed": "red", "skipped": "yellow"}[s.status]
        table.add_row(
            s.step,
            f"[{colour}]{s.status}[/]",
            f"{s.elapsed_ms:.1f}",
            str(s.attempts),
            escape(s.error or ""),
        )
    return table


def _show_answer(answer: CitedAnswer | None) -> None:
    if answer is None:
        return
    if answer.no_answer:
        console.print("[yellow]the knowledge base has no good answer to this[/]")
    console.print(escape(answer.answer), soft_wrap=True)
    if answer.language_note:
        console.print(f"[dim]{escape(answer.language_note)}[/]")
    if answer.sources:
        table = Table(title="sources", title_justify="left")
        for column in ("document", "page / section", "relevance", "title"):
            table.add_column(column)
        for src in answer.sources:
            table.add_row(src.document, escape(src.where), f"{src.relevance:.2f}", src.title or "")
        console.print(table)


def show_report(report: AgentReport) -> None:
    p = report.prediction
    if p is not None:
        colour = "red" if p.class_name == "defect" else "green"
        console.print(
            f"prediction: [bold {colour}]{p.class_name}[/] probability {p.probability:.3f} "
            f"confidence {p.confidence}"
        )
    if report.top_features:
        table = Table(title="top features", title_justify="left")
        for column in ("feature", "value", "normal", "status", "SHAP"):
            table.add_column(column, justify="left" if column == "feature" else "right")
        for f in report.top_features:
            normal = f"{_number(f.normal[0])}–{_number(f.normal[1])}" if f.normal else ""
            status = f.status if f.status == "normal" else f"[red]{f.status}[/]"
            shap = f"{f.attribution:+.4f}" if f.attribution is not None else ""
            table.add_row(f.name, f"{_number(f.value)} {f.unit}", normal, status, shap)
        console.print(table)
    _show_answer(report.answer)
    if report.recommendations:
        origin = "" if report.recommendations_from == "knowledge" else " (from the spec's ranges)"
        console.print(f"[bold]recommendations{origin}[/]")
        for line in report.recommendations:
            console.print(f"- {escape(line)}", soft_wrap=True)
    v = report.versions
    console.print(
        f"versions: predictor {v.predictor or '-'}, explainer {v.explainer or '-'}, "
        f"knowledge {v.knowledge or '-'}; total {report.total_ms:.1f} ms"
    )
    console.print(_steps_table(report.steps))
    for failed in report.failed:
        console.print(f"[bold red]{failed.step} failed:[/] {escape(failed.error or '')}")


def show_answer(answer: AgentAnswer) -> None:
    _show_answer(answer.answer)
    console.print(
        f"knowledge {answer.knowledge_version or '-'}; {answer.step.elapsed_ms:.1f} ms",
        highlight=False,
    )


def assist(
    question: Annotated[
        str | None, typer.Argument(help="A free question for the knowledge base.")
    ] = None,
    shot: Annotated[
        Path | None,
        typer.Option("--shot", help='A JSON shot: {"feature": value, ...} or {"features": {...}}.'),
    ] = None,
    language: Annotated[
        str | None, typer.Option("--language", "-l", help="ko or en; default: detected / ko.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the agent's JSON.")] = False,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Default: CASTML_PROJECT.")
    ] = None,
) -> None:
    """Predict, explain and ask about one shot, or ask the knowledge base a question."""
    from castml.settings import load_settings
    from ui.agent import Agent, AgentError
    from ui.settings import UiSettings

    if question is None and shot is None:
        raise ShotFileError('give a question ("...") or --shot shot.json, or both')
    features = read_shot(shot) if shot is not None else None
    settings = load_settings(UiSettings, project=project)
    with Agent(settings) as agent:
        if features is not None:
            report = agent.report(features, language=language, question=question)
            if all(s.status != "ok" for s in report.steps):
                raise AgentError(
                    "no step answered: " + "; ".join(f"{s.step}: {s.error}" for s in report.steps)
                )
            if json_out:
                print(report.model_dump_json(indent=2))
            else:
                show_report(report)
            return
        assert question is not None
        answer = agent.ask(question, language=language)
        if not answer.ok:
            raise AgentError(f"knowledge failed: {answer.step.error}")
        if json_out:
            print(answer.model_dump_json(indent=2))
        else:
            show_answer(answer)
