"""Document metadata from loose mappings (catalog entries, front matter, HTML meta tags).

The corpus writers may spell keys differently (`id` or `doc_id`, `type` or `doc_type`), so
one function reads every accepted spelling and fills what is missing from the file itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from castml.knowledge.language import detect_language
from castml.knowledge.passages import DocumentMeta

_KEYS = {
    "doc_id": ("doc_id", "id", "document", "document_id"),
    "title": ("title", "name"),
    "language": ("language", "lang"),
    "doc_type": ("doc_type", "type", "document_type", "kind"),
    "defects": ("defects", "defect_types", "defect", "defect_type"),
}


def _first(raw: Mapping[str, Any], field: str) -> Any:
    for key in _KEYS[field]:
        if raw.get(key) not in (None, ""):
            return raw[key]
    return None


def _defects(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [part for part in value.replace(";", ",").split(",")]
    return tuple(str(v).strip() for v in value if str(v).strip())


def merge_meta(
    path: Path, *sources: Mapping[str, Any] | None, sample_text: str = ""
) -> DocumentMeta:
    """The first source that names a field wins; the file name and the text fill the rest."""
    merged: dict[str, Any] = {}
    for source in sources:
        if not source:
            continue
        for field in _KEYS:
            if field not in merged:
                value = _first(source, field)
                if value is not None:
                    merged[field] = value
    title = str(merged.get("title") or path.stem)
    language = str(merged.get("language") or detect_language(sample_text or title)).lower()
    return DocumentMeta(
        doc_id=str(merged.get("doc_id") or path.stem),
        title=title,
        language=language[:2],
        doc_type=str(merged.get("doc_type") or "document"),
        defects=_defects(merged.get("defects")),
        path=str(path),
    )
