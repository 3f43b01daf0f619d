"""Writing Markdown and HTML documents, and the catalog that lists every written document."""

from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path
from typing import Any

import yaml

from castml.knowledge.corpus_model import LANGUAGES, Document
from castml.knowledge.corpus_pdf import write_pdf


def write_markdown(doc: Document, path: Path) -> None:
    front = {
        "doc_id": doc.doc_id,
        "title": doc.title,
        "language": doc.language,
        "doc_type": doc.doc_type,
        "defects": list(doc.defects),
    }
    lines = [
        "---",
        yaml.safe_dump(front, allow_unicode=True, sort_keys=False).strip(),
        "---",
        "",
        f"# {doc.title}",
        "",
    ]
    for section in doc.chapters[0].sections:
        lines += [f"## {section.heading}", ""]
        lines += [p for par in section.paragraphs for p in (par, "")]
        if section.items:
            lines += [f"- {item}" for item in section.items] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")


def write_html(doc: Document, path: Path) -> None:
    e = html.escape
    meta = {
        "doc_id": doc.doc_id,
        "language": doc.language,
        "doc_type": doc.doc_type,
        "defects": ",".join(doc.defects),
    }
    out = [
        "<!DOCTYPE html>",
        f'<html lang="{doc.language}">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{e(doc.title)}</title>",
    ]
    out += [f'<meta name="{k}" content="{e(v)}">' for k, v in meta.items()]
    out += ["</head>", "<body>", "<article>", f"<h1>{e(doc.title)}</h1>"]
    for section in doc.chapters[0].sections:
        out += ["<section>", f"<h2>{e(section.heading)}</h2>"]
        out += [f"<p>{e(p)}</p>" for p in section.paragraphs]
        if section.items:
            out += ["<ul>", *[f"<li>{e(item)}</li>" for item in section.items], "</ul>"]
        out.append("</section>")
    out += ["</article>", "</body>", "</html>", ""]
    path.write_text("\n".join(out), encoding="utf-8")


def write_document(doc: Document, out: Path, font_dir: Path | None) -> dict[str, Any]:
    path = out / doc.path
    path.parent.mkdir(parents=True, exist_ok=True)
    {"md": write_markdown, "html": write_html}.get(doc.fmt, lambda d, p: write_pdf(d, p, font_dir))(
        doc, path
    )
    entry: dict[str, Any] = {
        "doc_id": doc.doc_id,
        "title": doc.title,
        "language": doc.language,
        "doc_type": doc.doc_type,
        "defects": list(doc.defects),
        "format": doc.fmt,
        "path": doc.path,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    if doc.fmt == "pdf":
        entry["pages"] = doc.pages
        entry["sections"] = [c.title for c in doc.chapters]
    else:
        entry["sections"] = [s.heading for s in doc.chapters[0].sections]
    return entry


def write_catalog(out: Path, entries: list[dict[str, Any]]) -> None:
    catalog = {
        "corpus": "diecast",
        "version": 1,
        "languages": list(LANGUAGES),
        "documents": entries,
    }
    (out / "catalog.json").write_text(
        json.dumps(catalog, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
