"""The knowledge role's query-log record: one logged half of a `<project>-kb` query.

The knowledge role (serving.knowledge_log) sends each query and its answer as the two
KServe-logger CloudEvents the predictor sends, sharing one `ce-id`; the collector reads
them into these halves at ingest (`monitoring.kb_ingest`), keeps them in its write-ahead
log until Parquet holds them and joins them into one row per query
(`monitoring.kb_rows`), under `logs/<project>-kb/<version>/date=YYYY-MM-DD/`.

Their keys carry the `kb:` scope: a client may send the same request id to the
transformer and to the knowledge role (the assistant agent does), and the two must
neither dedupe nor join each other. The compact WAL form lives only in `encode`/`decode`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from castml.protocol.mlflow_names import KB_SUFFIX
from castml.protocol.payload_record import MAX_EPOCH_S, UndecodableRecordError

SCOPE = "kb:"
MAX_QUERY = 2000  # characters: what the knowledge role accepts (castml.knowledge.check_query)
MAX_TEXT = 256  # a language, a predicted class, a document or source id
MAX_SOURCES = 100  # the role retrieves at most 20 (kb_top_k); room for a wider setting


def kb_base(name: str) -> str | None:
    """`diecast-kb` -> `diecast`; None for a name that is not a knowledge base's."""
    if name.endswith(KB_SUFFIX) and len(name) > len(KB_SUFFIX):
        return name[: -len(KB_SUFFIX)]
    return None


@dataclass(slots=True)
class KbQuery:
    """A logged query (the request half). `project` is the kb model name, `diecast-kb`."""

    event_id: str
    project: str
    received_at: float
    query: str
    language: str | None  # as asked; the answer's says which one was used
    prediction_class: str | None  # the context's prediction, when the query carried one
    prediction_probability: float | None
    extensions: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{SCOPE}request:{self.event_id}"

    @property
    def pair(self) -> str:
        return f"{SCOPE}{self.event_id}"

    @property
    def partner_key(self) -> str:
        return f"{SCOPE}response:{self.event_id}"


@dataclass(slots=True)
class KbAnswer:
    """A logged answer (the response half): the version that answered and what it cited."""

    event_id: str
    project: str
    received_at: float
    model_name: str | None
    model_version: str | None
    language: str | None
    no_answer: bool
    source_ids: list[str]  # chunk ids, in the answer's order
    documents: list[str]  # the document of each source, same order
    top_relevance: float | None
    extensions: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{SCOPE}response:{self.event_id}"

    @property
    def pair(self) -> str:
        return f"{SCOPE}{self.event_id}"

    @property
    def partner_key(self) -> str:
        return f"{SCOPE}request:{self.event_id}"


KbHalf = KbQuery | KbAnswer


def encode(record: KbHalf) -> bytes:
    """The compact WAL form; its kinds (`kb-query`, `kb-answer`) are no payload record's."""
    if isinstance(record, KbQuery):
        body: dict[str, Any] = {
            "k": "kb-query",
            "id": record.event_id,
            "p": record.project,
            "rt": record.received_at,
            "ext": record.extensions,
            "q": record.query,
            "lang": record.language,
            "pc": record.prediction_class,
            "pp": record.prediction_probability,
        }
    else:
        body = {
            "k": "kb-answer",
            "id": record.event_id,
            "p": record.project,
            "rt": record.received_at,
            "ext": record.extensions,
            "mn": record.model_name,
            "mv": record.model_version,
            "lang": record.language,
            "na": record.no_answer,
            "src": record.source_ids,
            "docs": record.documents,
            "top": record.top_relevance,
        }
    return orjson.dumps(body)


def _epoch(value: Any) -> float:
    epoch = float(value)
    if not 0.0 <= epoch <= MAX_EPOCH_S:
        raise ValueError(f"time {value!r} out of range")
    return epoch


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def decode(payload: bytes) -> KbHalf:
    """A half from its WAL form; raises `UndecodableRecordError` for anything else."""
    try:
        raw = orjson.loads(payload)
        kind = raw["k"]
        if kind == "kb-query":
            return KbQuery(
                str(raw["id"]),
                str(raw["p"]),
                _epoch(raw["rt"]),
                str(raw["q"]),
                _text(raw.get("lang")),
                _text(raw.get("pc")),
                _number(raw.get("pp")),
                raw.get("ext") or {},
            )
        if kind == "kb-answer":
            return KbAnswer(
                str(raw["id"]),
                str(raw["p"]),
                _epoch(raw["rt"]),
                _text(raw.get("mn")),
                _text(raw.get("mv")),
                _text(raw.get("lang")),
                bool(raw["na"]),
                [str(s) for s in raw["src"]],
                [str(d) for d in raw["docs"]],
                _number(raw.get("top")),
                raw.get("ext") or {},
            )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UndecodableRecordError(f"not a kb query-log record: {exc!r}") from None
    raise UndecodableRecordError(f"not a kb query-log record: kind {kind!r}")
