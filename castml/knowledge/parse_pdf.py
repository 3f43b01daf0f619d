"""PDF -> one passage per page (pypdf), so that a citation can name the page."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pypdf import PdfReader
from pypdf.errors import PyPdfError

from castml.knowledge.document_meta import merge_meta
from castml.knowledge.kb_errors import CorpusError
from castml.knowledge.passages import Passage

# pypdf logs recoverable damage as warnings; a document we cannot read raises, which we report.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def _pdf_meta(reader: PdfReader) -> dict[str, Any]:
    info: Mapping[str, Any] = reader.metadata or {}
    out: dict[str, Any] = {}
    if info.get("/Title"):
        out["title"] = str(info["/Title"])
    # The corpus generator may put catalog fields in the document info as /Castml<Field>.
    for key, value in info.items():
        name = str(key).lstrip("/")
        if name.lower().startswith("castml"):
            out[name[6:].lower()] = str(value)
    return out


def parse_pdf(path: Path, catalog_entry: Mapping[str, Any] | None = None) -> list[Passage]:
    try:
        reader = PdfReader(str(path), strict=False)
        pages = [(page.extract_text() or "") for page in reader.pages]
    except (PyPdfError, OSError, ValueError, KeyError, TypeError) as exc:
        raise CorpusError(path, f"not a readable PDF ({type(exc).__name__}: {exc})") from None
    if not any(text.strip() for text in pages):
        raise CorpusError(path, "the PDF has no extractable text")
    meta = merge_meta(path, catalog_entry, _pdf_meta(reader), sample_text=" ".join(pages)[:2000])
    passages = []
    for number, text in enumerate(pages, start=1):
        lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
        if not lines:
            continue
        # A page's first line is usually its heading; it labels the page in citations.
        # Lines of a PDF page are visual lines that cut sentences: the body is joined with
        # spaces so that the answer quotes whole sentences; the heading stays a line.
        text = "\n".join([lines[0], " ".join(lines[1:])]).strip()
        passages.append(Passage(doc=meta, section=lines[0][:80], text=text, page=number))
    return passages
