"""Labelled evaluation queries: each names its relevant passages (chunk, passage or document ids).

Read from JSON (a list, or {"queries": [...]}) or JSONL files, or a folder of them; accepted
keys: `query`/`question`/`text`, `relevant`/`relevant_ids`/`relevant_passages`, `language`,
`context`, `id`. An empty relevant list marks a question with no answer in the corpus.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from castml.knowledge.kb_errors import CorpusError


@dataclass(frozen=True)
class EvalQuery:
    query_id: str
    query: str
    relevant: frozenset[str]
    language: str | None = None
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def answerable(self) -> bool:
        """False for a query labelled with no relevant passage: the right answer is none."""
        return bool(self.relevant)


def _pick(raw: dict[str, Any], *keys: str) -> Any:
    return next((raw[k] for k in keys if raw.get(k) not in (None, "")), None)


def _relevant(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset([value])
    ids = set()
    for item in value or []:
        if isinstance(item, dict):
            item = _pick(item, "id", "passage_id", "chunk_id", "doc_id", "document")
        if item:
            ids.add(str(item))
    return frozenset(ids)


def _records(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    raw = json.loads(text)
    records = raw.get("queries", []) if isinstance(raw, dict) else raw
    if not isinstance(records, list):
        raise ValueError("expected a list of queries")
    return records


def load_eval_queries(path: Path) -> list[EvalQuery]:
    path = Path(path)
    files = sorted(path.glob("*.json*")) if path.is_dir() else [path]
    queries: list[EvalQuery] = []
    for file in files:
        try:
            records = _records(file)
        except (OSError, ValueError) as exc:
            raise CorpusError(file, f"evaluation queries unreadable: {exc}") from None
        for n, raw in enumerate(records):
            if not isinstance(raw, dict):
                continue
            query = _pick(raw, "query", "question", "text")
            keys = ("relevant", "relevant_ids", "relevant_passages", "relevant_chunks")
            # An explicitly empty list labels a question the corpus cannot answer.
            if not query or not any(isinstance(raw.get(k), list | str) for k in keys):
                raise CorpusError(file, f"query #{n} lacks a query text or relevant ids")
            relevant = _relevant(_pick(raw, *keys))
            queries.append(
                EvalQuery(
                    query_id=str(raw.get("id", f"{file.stem}-{n}")),
                    query=str(query),
                    relevant=relevant,
                    language=_pick(raw, "language", "lang"),
                    context=dict(raw.get("context") or {}),
                )
            )
    return queries
