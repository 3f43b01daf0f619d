"""The records the knowledge base passes between steps: a parsed passage and an indexed chunk."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class DocumentMeta:
    """What the catalog (or a document's own front matter) says about one document."""

    doc_id: str
    title: str
    language: str
    doc_type: str
    defects: tuple[str, ...] = ()
    path: str = ""


@dataclass(frozen=True)
class Passage:
    """A section of a document (Markdown/HTML) or one page of a PDF, before chunking."""

    doc: DocumentMeta
    section: str
    text: str
    page: int | None = None

    @property
    def passage_id(self) -> str:
        # A page names a PDF passage; a section slug names the others. Stable across builds.
        where = f"p{self.page}" if self.page is not None else slugify(self.section)
        return f"{self.doc.doc_id}#{where}"


@dataclass(frozen=True)
class Chunk:
    """The unit the index stores and retrieval returns."""

    chunk_id: str
    passage_id: str
    doc_id: str
    title: str
    language: str
    doc_type: str
    defects: tuple[str, ...]
    section: str
    page: int | None
    text: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["defects"] = list(self.defects)
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Chunk:
        return cls(**{**raw, "defects": tuple(raw.get("defects", ()))})

    def ids(self) -> set[str]:
        """Every id an evaluation query may use to name this chunk as relevant."""
        return {self.chunk_id, self.passage_id, self.doc_id}


_SLUG_DROP = re.compile(r"[^\w]+", re.UNICODE)


def slugify(text: str) -> str:
    """A lower-case id from a heading; keeps Hangul (\\w is Unicode) so Korean stays readable."""
    slug = _SLUG_DROP.sub("-", text.strip().lower()).strip("-")
    return slug[:60] or "body"
