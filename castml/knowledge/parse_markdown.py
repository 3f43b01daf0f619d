"""Markdown with YAML front matter -> one passage per section (the nearest heading above)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from castml.knowledge.document_meta import merge_meta
from castml.knowledge.kb_errors import CorpusError
from castml.knowledge.passages import Passage

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^(```|~~~)")


def split_front_matter(path: Path, text: str) -> tuple[dict[str, Any], str]:
    if not text.startswith("---"):
        return {}, text
    end = text.find("\n---", 3)
    if end < 0:
        raise CorpusError(path, "front matter opened with '---' is never closed")
    try:
        meta = yaml.safe_load(text[3:end]) or {}
    except yaml.YAMLError as exc:
        raise CorpusError(path, f"front matter is not valid YAML: {exc}") from None
    if not isinstance(meta, dict):
        raise CorpusError(path, "front matter is not a mapping")
    body = text[end + 4 :]
    return meta, body.split("\n", 1)[1] if "\n" in body else ""


def _clean(line: str) -> str:
    # Emphasis and link markup would otherwise become BM25 tokens and clutter the answer.
    line = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", line)
    line = re.sub(r"[*`]{1,3}", "", line)
    # Underscores inside a word are part of it (Process_Temperature), not emphasis.
    return re.sub(r"(?<!\w)_{1,3}|_{1,3}(?!\w)", "", line).strip()


def parse_markdown(path: Path, catalog_entry: Mapping[str, Any] | None = None) -> list[Passage]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(path, str(exc)) from None
    front, body = split_front_matter(path, text)
    meta = merge_meta(path, catalog_entry, front, sample_text=body[:2000])
    sections: list[tuple[str, list[str]]] = [(meta.title, [])]
    in_fence = False
    for line in body.splitlines():
        if _FENCE.match(line.strip()):
            in_fence = not in_fence
            continue
        heading = None if in_fence else _HEADING.match(line)
        if heading:
            sections.append((_clean(heading.group(2)), []))
        elif line.strip():
            sections[-1][1].append(_clean(line.lstrip("-*+> ").strip()))
    return [
        Passage(doc=meta, section=title, text="\n".join(lines))
        for title, lines in sections
        if any(lines)
    ]
