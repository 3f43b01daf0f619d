"""The die-casting knowledge corpus (issue 12 §1): documents, catalog, labelled queries."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from pypdf import PdfReader

from castml.knowledge import corpus_gen
from castml.knowledge.corpus_model import normal_range
from castml.knowledge.corpus_pdf import DEFAULT_FONT_DIR
from castml.knowledge.passages import slugify
from castml.spec import load_spec

CORPUS = Path(corpus_gen.__file__).parent / "corpus"
HANGUL = re.compile(r"[\uac00-\ud7a3]")
DEFECTS = {"gas_porosity", "cold_shut", "shrinkage", "flash", "soldering", "misrun", "cracks"}
DOC_TYPES = {"manual", "parameter_guide", "checklist", "case_report"}


@pytest.fixture(scope="module")
def catalog() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = json.loads(
        (CORPUS / "catalog.json").read_text(encoding="utf-8")
    )["documents"]
    return documents


@pytest.fixture(scope="module")
def queries() -> list[dict[str, Any]]:
    lines = (CORPUS / "eval" / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_catalog_and_files_match(catalog: list[dict[str, Any]]) -> None:
    on_disk = {p.relative_to(CORPUS).as_posix() for p in (CORPUS / "documents").iterdir()}
    listed = [entry["path"] for entry in catalog]
    assert len(listed) == len(set(listed))
    assert set(listed) == on_disk
    assert len({entry["doc_id"] for entry in catalog}) == len(catalog)
    for entry in catalog:
        data = (CORPUS / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]
        assert entry["path"] == f"documents/{entry['doc_id']}.{entry['format']}"


def test_size_languages_types_and_formats(catalog: list[dict[str, Any]]) -> None:
    assert len(catalog) >= 60
    by_language = Counter(entry["language"] for entry in catalog)
    assert set(by_language) == {"en", "ko"}
    assert abs(by_language["en"] - by_language["ko"]) <= len(catalog) // 10
    for language in ("en", "ko"):
        mine = [entry for entry in catalog if entry["language"] == language]
        assert {entry["doc_type"] for entry in mine} == DOC_TYPES
        assert {entry["format"] for entry in mine} == {"md", "html", "pdf"}
        manual = next(entry for entry in mine if entry["doc_type"] == "manual")
        assert set(manual["defects"]) == DEFECTS
        assert sum(entry["doc_type"] == "case_report" for entry in mine) >= 10
    for entry in catalog:
        assert set(entry["defects"]) <= DEFECTS, entry["doc_id"]


def _pdf_entries(catalog: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in catalog if entry["format"] == "pdf"]


def test_pdfs_have_pages_with_text_and_metadata(catalog: list[dict[str, Any]]) -> None:
    assert len(_pdf_entries(catalog)) >= 2
    for entry in _pdf_entries(catalog):
        reader = PdfReader(CORPUS / entry["path"])
        assert len(reader.pages) >= 2
        assert [p["page"] for p in entry["pages"]] == list(range(1, len(reader.pages) + 1))
        assert reader.metadata is not None
        assert reader.metadata.title == entry["title"]
        assert f"doc_id={entry['doc_id']}" in str(reader.metadata.get("/Keywords"))
        for number, page in enumerate(reader.pages, start=1):
            text = page.extract_text()
            assert len(text.strip()) > 100, (entry["doc_id"], number)
            has_hangul = bool(HANGUL.search(text))
            assert has_hangul == (entry["language"] == "ko"), (entry["doc_id"], number)
        # Each chapter's first page opens with the chapter title (a citation can name it).
        for page in entry["pages"][1:]:
            first_line = reader.pages[page["page"] - 1].extract_text().splitlines()[0]
            assert page["section"].startswith(first_line.strip()), (entry["doc_id"], page)


class _Headings(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, str] = {}
        self.h2: list[str] = []
        self.lang = ""
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "meta" and found.get("name"):
            self.meta[str(found["name"])] = str(found.get("content"))
        if tag == "html":
            self.lang = str(found.get("lang"))
        self._in_h2 = tag == "h2"

    def handle_endtag(self, tag: str) -> None:
        self._in_h2 = False

    def handle_data(self, data: str) -> None:
        if self._in_h2:
            self.h2.append(data)


def _file_meta_and_headings(entry: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    text = (CORPUS / entry["path"]).read_text(encoding="utf-8")
    if entry["format"] == "md":
        _, front, body = text.split("---\n", 2)
        headings = [line[3:] for line in body.splitlines() if line.startswith("## ")]
        return yaml.safe_load(front), headings
    parser = _Headings()
    parser.feed(text)
    meta: dict[str, Any] = dict(parser.meta)
    meta["defects"] = [d for d in meta.get("defects", "").split(",") if d]
    assert parser.lang == entry["language"]
    return meta, parser.h2


def test_markdown_and_html_carry_the_catalog_metadata(catalog: list[dict[str, Any]]) -> None:
    for entry in (e for e in catalog if e["format"] != "pdf"):
        meta, headings = _file_meta_and_headings(entry)
        for key in ("doc_id", "language", "doc_type", "defects"):
            assert meta[key] == entry[key], (entry["doc_id"], key)
        assert headings == entry["sections"], entry["doc_id"]


def test_parameter_guides_quote_the_spec(catalog: list[dict[str, Any]]) -> None:
    features = load_spec("diecast").features
    guides = [e for e in catalog if e["doc_type"] == "parameter_guide"]
    for language in ("en", "ko"):
        text = "\n".join(
            (CORPUS / e["path"]).read_text(encoding="utf-8")
            for e in guides
            if e["language"] == language
        )
        sections = {s for e in guides if e["language"] == language for s in e["sections"]}
        for feature in features:
            assert feature.name in sections, (language, feature.name)
            assert normal_range(feature, language) in text, (language, feature.name)


def _passage_exists(passage: dict[str, Any], entry: dict[str, Any]) -> bool:
    if entry["format"] == "pdf":
        pages = {p["page"]: p["section"] for p in entry["pages"]}
        return bool(
            pages.get(passage["page"]) == passage["section"]
            and passage["passage_id"] == f"{entry['doc_id']}#p{passage['page']}"
        )
    return bool(
        "page" not in passage
        and passage["section"] in entry["sections"]
        and passage["passage_id"] == f"{entry['doc_id']}#{slugify(passage['section'])}"
    )


def test_every_labelled_passage_exists(
    catalog: list[dict[str, Any]], queries: list[dict[str, Any]]
) -> None:
    documents = {entry["doc_id"]: entry for entry in catalog}
    for query in queries:
        for passage in query["relevant"]:
            entry = documents.get(passage["document"])
            assert entry is not None, (query["id"], passage)
            assert entry["language"] == query["language"], (query["id"], passage)
            assert _passage_exists(passage, entry), (query["id"], passage)


def test_queries_are_many_balanced_and_cover_the_kinds(queries: list[dict[str, Any]]) -> None:
    assert len(queries) >= 150
    assert len({q["id"] for q in queries}) == len(queries)
    languages = Counter(q["language"] for q in queries)
    assert abs(languages["en"] - languages["ko"]) <= len(queries) // 10
    for query in queries:
        has_hangul = bool(HANGUL.search(query["query"]))
        assert has_hangul == (query["language"] == "ko"), query["id"]
    kinds = Counter(q["kind"] for q in queries)
    assert kinds["prediction_context"] >= 30
    assert kinds["no_answer"] >= 4
    assert all(not q["relevant"] for q in queries if q["kind"] == "no_answer")
    assert all(q["relevant"] for q in queries if q["kind"] != "no_answer")
    for query in (q for q in queries if q["kind"] == "prediction_context"):
        top = query["context"]["top_features"]
        assert top and all(f["name"] in query["query"] for f in top)
    texts = {q["query"] for q in queries}
    assert "온도 650도에서 진동 0.15일 때 불량 원인은?" in texts
    assert "At 650 °C with vibration 0.15, what is causing the defects?" in texts


def test_the_generator_is_deterministic_and_the_checked_in_corpus_is_current(
    tmp_path: Path,
) -> None:
    # An English case report and an English PDF (Helvetica: no font package needed).
    only = {"case-en-01", "review-2026q2-en"}
    first, second = tmp_path / "a", tmp_path / "b"
    corpus_gen.build(first, only=only)
    corpus_gen.build(second, only=only)
    for name in ("case-en-01.md", "review-2026q2-en.pdf"):
        produced = (first / "documents" / name).read_bytes()
        assert produced == (second / "documents" / name).read_bytes(), name
        assert produced == (CORPUS / "documents" / name).read_bytes(), f"{name}: regenerate"


@pytest.mark.skipif(
    not (DEFAULT_FONT_DIR / "NanumGothic.ttf").exists(),
    reason="regenerating Korean PDFs needs the Debian package fonts-nanum",
)
def test_a_full_regeneration_reproduces_the_checked_in_corpus(tmp_path: Path) -> None:
    corpus_gen.build(tmp_path)
    produced = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    expected = sorted(
        p.relative_to(CORPUS)
        for p in CORPUS.rglob("*")
        if p.is_file() and p.parts[len(CORPUS.parts)] in {"documents", "eval", "catalog.json"}
    )
    assert produced == expected
    for relative in produced:
        assert (tmp_path / relative).read_bytes() == (CORPUS / relative).read_bytes(), relative


def test_a_missing_korean_font_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = corpus_gen.main(["--out", str(tmp_path), "--font-dir", str(tmp_path / "no-fonts")])
    assert code == 2
    assert "fonts-nanum" in capsys.readouterr().err
