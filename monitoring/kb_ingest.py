"""A knowledge role's logged CloudEvents (`<project>-kb`) -> kb query-log halves.

The request half's data is the query the role took (`{"query", "context"?, "language"?,
"filters"?}`), the response half's the answer it gave (`{"sources": [{"id", "document",
"relevance"}], "no_answer", "language", "model_name", "model_version", ...}`): the v1
bodies of `POST /v1/models/<project>-kb:predict` (serving.knowledge), which the role's own
sender (serving.knowledge_log) posts for both of its routes. Anything else in them (the
answer's text, recommendations, filters) is not kept.

A half that does not hold what the Parquet row needs is refused with a 400 whose
`details` name each field (`query`, `no_answer`, `sources[2].id`...).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from castml.protocol.kb_record import MAX_QUERY, MAX_SOURCES, MAX_TEXT, KbAnswer, KbQuery
from castml.protocol.payload_record import BadNameError, check_version
from castml.web.errors import BadRequestError, FieldProblem


class MalformedKbEventError(BadRequestError):
    """A kb CloudEvent whose query or answer lacks what its Parquet row needs."""

    def __init__(self, message: str, problems: list[FieldProblem]) -> None:
        self.problems = problems  # each named in the answer's `details`
        super().__init__(message)


class _Problems:
    """Problems of one half, named by field and raised together."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.found: list[FieldProblem] = []

    def add(self, field: str, problem: str) -> None:
        self.found.append(FieldProblem(field, problem))

    def raise_any(self) -> None:
        if self.found:
            listed = "; ".join(f"{p.field}: {p.problem}" for p in self.found[:10])
            raise MalformedKbEventError(
                f"not a kb {self.what} the collector takes: {listed}", self.found
            )


def _text(
    data: Mapping[str, Any], name: str, problems: _Problems, limit: int = MAX_TEXT
) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.add(name, "must be a string")
        return None
    if len(value) > limit:
        problems.add(name, f"is longer than {limit} characters")
        return None
    return value


def _probability(value: Any, field: str, problems: _Problems) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problems.add(field, "must be a finite number")
        return None
    return float(value)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _prediction(context: Any, problems: _Problems) -> tuple[str | None, float | None]:
    """(class, probability) of the context's prediction: an object with `class` (or `label`)
    and `probability`, a class name, or a probability (what castml.knowledge reads).

    The role answers whatever else a prediction holds (it only reads it), so a prediction
    in another shape is not kept rather than refused: the query must not be lost for it.
    """
    if context is None:
        return None, None
    if not isinstance(context, Mapping):
        problems.add("context", "must be an object")
        return None, None
    prediction = context.get("prediction")
    if isinstance(prediction, str):
        return prediction[:MAX_TEXT], None
    if isinstance(prediction, Mapping):
        label = prediction.get("class", prediction.get("label"))
        readable = isinstance(label, str | int) and not isinstance(label, bool)
        return (str(label)[:MAX_TEXT] if readable else None), _finite(prediction.get("probability"))
    return None, _finite(prediction)


def kb_query(event_id: str, project: str, data: Any, extensions: dict[str, str]) -> KbQuery:
    problems = _Problems("query event")
    if not isinstance(data, Mapping):
        problems.add("data", "must be the query as a JSON object")
        problems.raise_any()
    query = data.get("query")
    if not isinstance(query, str) or not query.strip():
        problems.add("query", "is required: the question, as non-empty text")
    elif len(query) > MAX_QUERY:
        problems.add("query", f"is longer than {MAX_QUERY} characters")
    language = _text(data, "language", problems)
    label, probability = _prediction(data.get("context"), problems)
    problems.raise_any()
    assert isinstance(query, str)
    return KbQuery(event_id, project, time.time(), query, language, label, probability, extensions)


def _sources(raw: Any, problems: _Problems) -> tuple[list[str], list[str], float | None]:
    """(source ids, their documents, the highest relevance) of the answer's `sources`."""
    if not isinstance(raw, list):
        problems.add("sources", "is required: the list of cited sources (may be empty)")
        return [], [], None
    if len(raw) > MAX_SOURCES:
        problems.add("sources", f"holds more than {MAX_SOURCES} sources")
        return [], [], None
    ids: list[str] = []
    documents: list[str] = []
    relevance: list[float] = []
    for i, source in enumerate(raw):
        where = f"sources[{i}]"
        if not isinstance(source, Mapping):
            problems.add(where, "must be an object with 'id' and 'document'")
            continue
        for name, out in (("id", ids), ("document", documents)):
            value = source.get(name)
            if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
                problems.add(f"{where}.{name}", f"must be a non-empty string of at most {MAX_TEXT}")
            else:
                out.append(value)
        score = _probability(source.get("relevance"), f"{where}.relevance", problems)
        if score is not None:
            relevance.append(score)
    return ids, documents, max(relevance) if relevance else None


def _name(data: Mapping[str, Any], name: str, problems: _Problems) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        problems.add(name, "must be a string")
        return None
    return str(value)


def kb_answer(event_id: str, project: str, data: Any, extensions: dict[str, str]) -> KbAnswer:
    problems = _Problems("answer event")
    if not isinstance(data, Mapping):
        problems.add("data", "must be the answer as a JSON object")
        problems.raise_any()
    no_answer = data.get("no_answer")
    if not isinstance(no_answer, bool):
        problems.add("no_answer", "is required: true or false")
    ids, documents, top = _sources(data.get("sources"), problems)
    model_name = _name(data, "model_name", problems)
    if model_name is not None and model_name != project:
        problems.add("model_name", f"{model_name[:80]!r} is not the event's project '{project}'")
    version = _name(data, "model_version", problems)
    if version is not None:
        try:
            check_version(version)
        except BadNameError as exc:  # named as this field's problem
            problems.add("model_version", str(exc))
    language = _text(data, "language", problems)
    problems.raise_any()
    return KbAnswer(
        event_id,
        project,
        time.time(),
        model_name,
        version,
        language,
        bool(no_answer),
        ids,
        documents,
        top,
        extensions,
    )
