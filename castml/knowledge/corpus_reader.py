"""Read a corpus directory: every Markdown, HTML and PDF document, with the catalog's metadata.

`catalog.json` (optional) lists each document's id, title, language, type and defects; a
document missing from it falls back to its own front matter / meta tags / file name. The
`eval/` folder (labelled queries) is not part of the corpus.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from castml.knowledge.kb_errors import CorpusError
from castml.knowledge.parse_html import parse_html
from castml.knowledge.parse_markdown import parse_markdown
from castml.knowledge.parse_pdf import parse_pdf
from castml.knowledge.passages import Passage

CATALOG_NAME = "catalog.json"
_SKIP_DIRS = {"eval", "__pycache__"}
Parser = Callable[[Path, Mapping[str, Any] | None], list[Passage]]
PARSERS: dict[str, Parser] = {
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".html": parse_html,
    ".htm": parse_html,
    ".pdf": parse_pdf,
}


def document_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in _SKIP_DIRS or part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix.lower() in PARSERS:
            yield path


def read_catalog(root: Path) -> dict[str, dict[str, Any]]:
    """Catalog entries keyed by every name a file may be matched on (relative path, id)."""
    path = root / CATALOG_NAME
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorpusError(path, f"not valid JSON: {exc}") from None
    entries = raw.get("documents", raw.get("docs", [])) if isinstance(raw, dict) else raw
    if not isinstance(entries, list):
        raise CorpusError(path, "expected a list of documents (or {'documents': [...]})")
    keyed: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise CorpusError(path, f"a catalog entry is not an object: {entry!r}")
        for key in ("path", "file", "filename", "id", "doc_id"):
            if entry.get(key):
                keyed[str(entry[key])] = entry
    return keyed


def _entry_for(root: Path, path: Path, catalog: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    rel = path.relative_to(root).as_posix()
    for key in (rel, path.name, path.stem):
        if key in catalog:
            return catalog[key]
    return None


def read_corpus(root: Path) -> list[Passage]:
    """Every passage of every document under `root`; a bad document is an error naming it."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(root, "the corpus directory does not exist")
    catalog = read_catalog(root)
    passages: list[Passage] = []
    seen: dict[str, Path] = {}
    for path in document_files(root):
        found = PARSERS[path.suffix.lower()](path, _entry_for(root, path, catalog))
        if found:
            doc_id = found[0].doc.doc_id
            if doc_id in seen and seen[doc_id] != path:
                raise CorpusError(path, f"document id {doc_id!r} is also used by {seen[doc_id]}")
            seen[doc_id] = path
        passages.extend(found)
    if not passages:
        raise CorpusError(root, "no Markdown, HTML or PDF document with text was found")
    return passages


def corpus_hash(root: Path) -> str:
    """sha256 over the documents and the catalog (paths and bytes): the index's data version."""
    root = Path(root)
    digest = hashlib.sha256()
    files = list(document_files(root))
    if (root / CATALOG_NAME).exists():
        files.append(root / CATALOG_NAME)
    for path in sorted(files):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()
