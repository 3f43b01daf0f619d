"""The knowledge role's requests, v1 and v2, read into one `KnowledgeQuery` (or a 400 naming
the field).

v1 (`POST /v1/models/<project>-kb:predict`), the users' T3 request:
    {"query": "...", "context": {"prediction", "top_features", "features"},
     "language": "ko"|"en" (optional), "filters": {"defects", "doc_types", "languages"}}

v2 (`POST /v2/models/<project>-kb/infer`): BYTES tensors of shape [1], each one UTF-8 string:
`query` (required), `context` (a JSON object as text), `language`; `filters` may be given
as a JSON object in `parameters.filters`. See serving.knowledge for the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from castml.knowledge.kb_errors import KnowledgeQueryError
from castml.knowledge.knowledge_base import check_query
from castml.knowledge.retrieval import Filters
from castml.web.errors import FieldProblem, InvalidFieldsError

FILTER_FIELDS = {"defects": "defects", "doc_types": "doc_types", "languages": "languages"}
QUERY_INPUTS = ("query", "context", "language")


@dataclass(frozen=True)
class KnowledgeQuery:
    query: str
    context: dict[str, Any] | None
    language: str | None
    filters: Filters | None
    request_id: str | None

    def logged(self) -> dict[str, Any]:
        """What the query log keeps of the request."""
        filters = None
        if self.filters is not None:
            filters = {name: list(getattr(self.filters, name)) for name in FILTER_FIELDS}
        return {
            "query": self.query,
            "context": self.context,
            "language": self.language,
            "filters": filters,
        }


def _bad(field: str, problem: str) -> InvalidFieldsError:
    return InvalidFieldsError([FieldProblem(field, problem)])


def _query(raw: Any, field: str = "query") -> str:
    if raw is None:
        raise _bad(field, "is required: the question, as text")
    try:
        return check_query(raw)
    except KnowledgeQueryError as exc:
        # check_query's message starts with "query ..."; keep it, naming the field too.
        raise InvalidFieldsError([FieldProblem(field, str(exc))]) from None


def _context(raw: Any, field: str = "context") -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise _bad(field, 'must be an object: {"prediction", "top_features", "features"}')
    context = dict(raw)
    features = context.get("features")
    if features is not None and not isinstance(features, Mapping):
        raise _bad(f"{field}.features", "must be an object of feature name to value")
    top = context.get("top_features")
    if top is not None:
        if not isinstance(top, list) or not all(isinstance(t, Mapping) for t in top):
            raise _bad(f"{field}.top_features", 'must be a list of {"name", "value"} objects')
        # The explainer names a top feature `feature`; the knowledge base reads `name`.
        context["top_features"] = [
            {**t, "name": t["feature"]} if "name" not in t and "feature" in t else dict(t)
            for t in top
        ]
    return context


def _language(raw: Any, field: str = "language") -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > 35:
        raise _bad(field, "must be a language code such as 'ko' or 'en'")
    return raw


def _filters(raw: Any) -> Filters | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise _bad("filters", f"must be an object with any of {sorted(FILTER_FIELDS)}")
    unknown = sorted(set(raw) - set(FILTER_FIELDS))
    if unknown:
        raise _bad(f"filters.{unknown[0]}", f"is not a filter; use {sorted(FILTER_FIELDS)}")
    values: dict[str, tuple[str, ...]] = {}
    for name in FILTER_FIELDS:
        value = raw.get(name) or []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _bad(f"filters.{name}", "must be a list of strings")
        values[name] = tuple(value)
    return Filters(**values)


def _request_id(raw: Any, header: str | None) -> str | None:
    given = raw if raw is not None else header
    return str(given)[:256] if given not in (None, "") else None


def v1_query(payload: Any, header_id: str | None) -> KnowledgeQuery:
    if not isinstance(payload, dict):
        raise InvalidFieldsError(
            [FieldProblem("body", 'must be a JSON object: {"query", "context", "language"}')]
        )
    return KnowledgeQuery(
        _query(payload.get("query")),
        _context(payload.get("context")),
        _language(payload.get("language")),
        _filters(payload.get("filters")),
        _request_id(payload.get("id"), header_id),
    )


def _bytes_value(tensor: Any, index: int) -> tuple[str, Any]:
    where = f"inputs[{index}]"
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise _bad(where, "must be a v2 tensor object with a 'name'")
    name = tensor["name"]
    if name not in QUERY_INPUTS:
        raise _bad(f"inputs.{name}", f"is not an input; use {list(QUERY_INPUTS)}")
    if tensor.get("datatype") != "BYTES":
        raise _bad(f"inputs.{name}", "must have datatype BYTES")
    data = tensor.get("data")
    if not isinstance(data, list) or len(data) != 1 or tensor.get("shape") not in ([1], [1, 1]):
        raise _bad(f"inputs.{name}", "must hold exactly one string (shape [1])")
    return name, data[0]


def v2_query(payload: Any, header_id: str | None) -> KnowledgeQuery:
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        raise _bad("inputs", "a v2 request is a JSON object with an 'inputs' list")
    values: dict[str, Any] = {}
    for index, tensor in enumerate(payload["inputs"]):
        name, value = _bytes_value(tensor, index)
        if name in values:
            raise _bad(f"inputs.{name}", "is given twice")
        values[name] = value
    params = payload.get("parameters") or {}
    if not isinstance(params, dict):
        raise _bad("parameters", "must be an object")
    context = values.get("context")
    if isinstance(context, str):
        try:
            context = orjson.loads(context)
        except orjson.JSONDecodeError:
            raise _bad("inputs.context", "must be a JSON object as text") from None
    return KnowledgeQuery(
        _query(values.get("query"), "inputs.query"),
        _context(context, "inputs.context"),
        _language(values.get("language", params.get("language")), "inputs.language"),
        _filters(params.get("filters")),
        _request_id(payload.get("id"), header_id),
    )
