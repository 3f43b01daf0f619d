"""HTML -> one passage per section (h1-h4), with the stdlib parser (no extra dependency)."""

from __future__ import annotations

from collections.abc import Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from castml.knowledge.document_meta import merge_meta
from castml.knowledge.kb_errors import CorpusError
from castml.knowledge.passages import Passage

_HEADINGS = {"h1", "h2", "h3", "h4"}
_SKIP = {"script", "style", "noscript", "template"}
# Tags that end a line of text, so that list items and table cells do not run together.
_BLOCKS = {"p", "li", "tr", "div", "br", "section", "article", "td", "th", "dd", "dt", "pre"}


class _SectionCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title = ""
        self.sections: list[tuple[str, list[str]]] = [("", [])]
        self._stack: list[str] = []
        self._skip = 0
        self._heading: list[str] | None = None
        self._line: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "html" and values.get("lang"):
            self.meta.setdefault("language", values["lang"])
        if tag == "meta" and values.get("name"):
            self.meta[values["name"].lower()] = values.get("content", "")
        if tag in _SKIP:
            self._skip += 1
        elif tag in _HEADINGS:
            self._flush()
            self._heading = []
        elif tag in _BLOCKS:
            self._flush()
        self._stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in _HEADINGS and self._heading is not None:
            self.sections.append((" ".join("".join(self._heading).split()), []))
            self._heading = None
        elif tag in _BLOCKS:
            self._flush()
        if self._stack and self._stack[-1] == tag:
            self._stack.pop()

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._stack and self._stack[-1] == "title":
            self.title += data
        elif self._heading is not None:
            self._heading.append(data)
        else:
            self._line.append(data)

    def _flush(self) -> None:
        line = " ".join("".join(self._line).split())
        if line:
            self.sections[-1][1].append(line)
        self._line = []

    def close(self) -> None:
        super().close()
        self._flush()


def parse_html(path: Path, catalog_entry: Mapping[str, Any] | None = None) -> list[Passage]:
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(path, str(exc)) from None
    collector = _SectionCollector()
    collector.feed(raw)
    collector.close()
    title = " ".join(collector.title.split())
    sample = " ".join(" ".join(lines) for _, lines in collector.sections)[:2000]
    meta = merge_meta(
        path, catalog_entry, collector.meta, {"title": title} if title else None, sample_text=sample
    )
    passages = [
        Passage(doc=meta, section=heading or meta.title, text="\n".join(lines))
        for heading, lines in collector.sections
        if lines
    ]
    if not passages:
        raise CorpusError(path, "the HTML holds no text")
    return passages
