"""Knowledge base, first steps: parsing (Markdown, HTML, PDF), chunking, tokenizing, enrichment.

`write_fixture_corpus` builds the tiny Korean/English corpus the knowledge tests share.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from castml.knowledge.chunking import chunk_passages, windows
from castml.knowledge.corpus_reader import corpus_hash, read_corpus
from castml.knowledge.feature_terms import load_knowledge_terms
from castml.knowledge.kb_errors import CorpusError
from castml.knowledge.language import detect_language, resolve_language
from castml.knowledge.passages import Passage
from castml.knowledge.query_enrichment import enrich_query
from castml.knowledge.recommendations import recommendations
from castml.knowledge.tokenizing import KnowledgeTokenizer
from castml.spec import load_spec

EN_POROSITY = """---
id: en-gas-porosity
title: Gas porosity in HPDC
language: en
type: manual
defects: [gas_porosity]
---
# Gas porosity

## Mechanism
Gas porosity is caused by hydrogen dissolved in the melt and by air trapped in the shot sleeve.
Round, smooth-walled holes near the surface are the typical sign.

## Checks
Check the hydrogen content of the melt with a reduced pressure test before each shift.
Verify the vacuum level in the cavity stays below 18 kPa during the fast shot.

## Actions
Degas the melt with a rotary degasser until hydrogen is below 0.24 mL/100g.
Reduce the slow shot speed so the sleeve fills without folding air into the metal.
"""

KO_POROSITY = """---
id: ko-gas-porosity
title: 가스 기공 매뉴얼
language: ko
type: manual
defects: [gas_porosity]
---
# 가스 기공

## 발생 원인
가스 기공은 용탕에 녹아 있는 수소와 슬리브에 갇힌 공기 때문에 발생합니다.
습도가 높은 날에는 수소 흡수가 늘어 기공이 많아집니다.

## 점검
매 교대 전에 감압 시험으로 용탕의 수소 함량을 확인하세요.
고속 사출 동안 캐비티 진공도가 18 kPa 이하인지 점검하세요.

## 조치
회전식 탈가스 장치로 수소 함량이 0.24 mL/100g 이하가 될 때까지 탈가스하세요.
저속 사출 속도를 줄여 공기 혼입을 막으세요.
"""

EN_FLASH = """<!doctype html><html lang="en"><head><title>Flash troubleshooting</title>
<meta name="doc_id" content="en-flash"><meta name="type" content="checklist">
<meta name="defects" content="flash"><style>h1 {color: red}</style></head><body>
<h1>Flash troubleshooting</h1>
<h2>Why flash forms</h2>
<p>Flash is caused by metal escaping at the parting line when the clamping force is too low
for the casting pressure.</p>
<h2>What to check</h2>
<ul><li>Check the clamping force against the 7600-8900 kN normal range.</li>
<li>Inspect the parting line for dirt and worn die faces.</li></ul>
<h2>What to do</h2>
<p>Increase the clamping force or lower the intensification pressure; clean the parting line.</p>
</body></html>
"""

KO_COLD_SHUT = """<!doctype html><html lang="ko"><head><title>냉간 접합 점검표</title>
<meta name="doc_id" content="ko-cold-shut"><meta name="type" content="checklist">
<meta name="defects" content="cold_shut"></head><body>
<h2>원인</h2>
<p>냉간 접합은 금형 온도와 용탕 온도가 낮아 두 흐름이 완전히 융합되지 못할 때 발생합니다.</p>
<h2>점검</h2>
<p>금형 온도가 190도 이상인지 열화상으로 확인하세요.</p>
<h2>조치</h2>
<p>사출 속도를 높이고 금형 예열 시간을 늘리세요.</p>
</body></html>
"""

PDF_PAGES = [
    [
        "Die soldering",
        "Die soldering is caused by molten aluminium reacting with a hot die surface.",
        "Check the die surface temperature with the pyrometer after each spray.",
        "Increase the release agent spray time and the cooling water flow.",
    ],
    [
        "Die wear and heat checking",
        "Heat checking cracks on the die result from thermal cycling of the die steel.",
        "Inspect the die surface every 5000 shots for fine crack networks.",
        "Keep the die temperature stable and replace worn inserts.",
    ],
]

CATALOG = [
    {"id": "en-gas-porosity", "path": "manual/en_gas_porosity.md"},
    {"id": "ko-gas-porosity", "path": "manual/ko_gas_porosity.md"},
    {
        "id": "en-die-soldering",
        "path": "manual/en_die_soldering.pdf",
        "title": "Die soldering and wear",
        "language": "en",
        "type": "manual",
        "defects": ["soldering", "die_wear"],
    },
]


def write_pdf(path: Path, pages: list[list[str]]) -> None:
    pdf = canvas.Canvas(str(path), pagesize=A4)
    for lines in pages:
        y = 800
        for line in lines:
            pdf.drawString(60, y, line)
            y -= 20
        pdf.showPage()
    pdf.save()


def write_fixture_corpus(root: Path) -> Path:
    (root / "manual").mkdir(parents=True)
    (root / "checklists").mkdir()
    (root / "eval").mkdir()
    (root / "manual/en_gas_porosity.md").write_text(EN_POROSITY, encoding="utf-8")
    (root / "manual/ko_gas_porosity.md").write_text(KO_POROSITY, encoding="utf-8")
    (root / "checklists/en_flash.html").write_text(EN_FLASH, encoding="utf-8")
    (root / "checklists/ko_cold_shut.html").write_text(KO_COLD_SHUT, encoding="utf-8")
    write_pdf(root / "manual/en_die_soldering.pdf", PDF_PAGES)
    (root / "catalog.json").write_text(json.dumps({"documents": CATALOG}), encoding="utf-8")
    (root / "eval/queries.json").write_text("[]", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fixture_corpus(tmp_path_factory.mktemp("kb") / "corpus")


@pytest.fixture(scope="module")
def passages(corpus: Path) -> list[Passage]:
    return read_corpus(corpus)


@pytest.fixture(scope="module")
def tokenizer() -> KnowledgeTokenizer:
    return KnowledgeTokenizer()


def test_markdown_keeps_front_matter_and_sections(passages: list[Passage]) -> None:
    ko = [p for p in passages if p.doc.doc_id == "ko-gas-porosity"]
    assert [p.section for p in ko] == ["발생 원인", "점검", "조치"]
    assert {p.doc.language for p in ko} == {"ko"}
    assert ko[0].doc.defects == ("gas_porosity",)
    assert ko[0].doc.doc_type == "manual"
    assert "수소" in ko[0].text


def test_html_sections_and_meta_tags(passages: list[Passage]) -> None:
    flash = [p for p in passages if p.doc.doc_id == "en-flash"]
    assert [p.section for p in flash] == ["Why flash forms", "What to check", "What to do"]
    assert flash[0].doc.title == "Flash troubleshooting"
    assert flash[0].doc.doc_type == "checklist"
    assert "7600-8900 kN" in flash[1].text
    assert "color" not in " ".join(p.text for p in flash)  # <style> is not text
    # No metadata for language in the catalog: <html lang> supplies it.
    assert next(p.doc.language for p in passages if p.doc.doc_id == "ko-cold-shut") == "ko"


def test_pdf_keeps_pages_and_catalog_metadata(passages: list[Passage]) -> None:
    pdf = [p for p in passages if p.doc.doc_id == "en-die-soldering"]
    assert [p.page for p in pdf] == [1, 2]
    assert pdf[1].section == "Die wear and heat checking"
    assert "5000 shots" in pdf[1].text
    assert pdf[0].doc.defects == ("soldering", "die_wear")
    assert pdf[0].passage_id == "en-die-soldering#p1"


def test_eval_folder_is_not_corpus(passages: list[Passage]) -> None:
    assert not [p for p in passages if "eval" in p.doc.path]


def test_corrupt_pdf_is_an_error_naming_the_file(tmp_path: Path) -> None:
    root = write_fixture_corpus(tmp_path / "corpus")
    bad = root / "manual/broken.pdf"
    bad.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage without xref\n")
    with pytest.raises(CorpusError, match=r"broken\.pdf"):
        read_corpus(root)


def test_corpus_hash_changes_with_a_document(tmp_path: Path) -> None:
    root = write_fixture_corpus(tmp_path / "corpus")
    before = corpus_hash(root)
    assert corpus_hash(root) == before
    (root / "manual/en_gas_porosity.md").write_text(EN_POROSITY + "\nMore.\n", encoding="utf-8")
    assert corpus_hash(root) != before


def test_windows_overlap_and_stable_chunk_ids(passages: list[Passage]) -> None:
    text = " ".join(f"Sentence number {i} about die temperature." for i in range(60))
    pieces = windows(text, max_chars=300, overlap=80)
    assert len(pieces) > 3
    assert all(len(p) <= 300 for p in pieces)
    for left, right in itertools.pairwise(pieces):
        tail = left[-40:]
        assert tail in right, "consecutive windows share their overlap"
    first = chunk_passages(passages, max_chars=120, overlap=30)
    again = chunk_passages(read_corpus(Path(passages[0].doc.path).parents[1]), 120, 30)
    assert [c.chunk_id for c in first] == [c.chunk_id for c in again]
    assert len({c.chunk_id for c in first}) == len(first)
    assert any(c.chunk_id.endswith("~1") for c in first), "a long section is cut in windows"


def test_korean_tokens_are_morphemes(tokenizer: KnowledgeTokenizer) -> None:
    tokens = tokenizer.tokenize("금형 온도가 낮으면 냉간 접합이 발생합니다")
    assert {"금형", "온도", "냉간", "접합", "발생"} <= set(tokens)
    assert "온도가" not in tokens and "가" not in tokens  # particles are dropped
    mixed = tokenizer.tokenize("Gas porosity 원인은 수소")
    assert {"gas", "poros", "원인", "수소"} <= set(mixed)


def test_english_tokens_are_stemmed_without_stopwords(tokenizer: KnowledgeTokenizer) -> None:
    tokens = tokenizer.tokenize("What is causing the cracks at higher pressures?")
    assert tokens == ["crack", "higher", "pressur"]


def test_language_detection_and_fallback() -> None:
    assert detect_language("온도 650도에서 진동 0.15일 때 불량 원인은?") == "ko"
    assert detect_language("Process_Pressure 120 MPa 원인") == "ko"
    assert detect_language("why flash at Process_Pressure 120 MPa") == "en"
    choice = resolve_language("가스 기공 원인", "klingon")
    assert choice.language == "ko" and choice.note and "klingon" in choice.note


def test_enrichment_adds_terms_and_out_of_range_readings() -> None:
    spec = load_spec("diecast")
    context = {
        "prediction": {"class": "defect", "probability": 0.91},
        "top_features": [
            {"name": "Sensor_HydrogenContent", "value": 0.41},
            {"name": "Process_Pressure", "value": 80.0},
        ],
        "features": {"Process_Pressure": 80.0, "Process_ClampingForce": 7000},
    }
    enriched = enrich_query("defect cause?", context, spec, load_knowledge_terms(), "en")
    assert "hydrogen content" in enriched.added_terms
    assert "casting pressure" in enriched.added_terms  # a top feature, even in range
    assert [r.name for r in enriched.readings] == [
        "Sensor_HydrogenContent",
        "Process_ClampingForce",
    ]
    assert {"gas_porosity", "flash"} <= enriched.defects
    assert enriched.predicted_defect is True
    lines = recommendations(enriched.readings, "en")
    assert lines[1] == (
        "Process_ClampingForce 7000 kN is below its normal 7600–8900 kN: "
        "bring it back toward 8250 kN."
    )
    ko = recommendations(enriched.readings, "ko")
    assert ko[0].startswith("Sensor_HydrogenContent 0.41 mL/100g은(는) 정상 범위 0.06–0.24")


def test_recommendation_example_from_the_issue() -> None:
    spec = load_spec("diecast")
    context = {"features": {"Process_Pressure": 120.3}}
    enriched = enrich_query("why?", context, spec, load_knowledge_terms(), "en")
    assert recommendations(enriched.readings, "en") == [
        "Process_Pressure 120.3 MPa is above its normal 65–95 MPa: bring it back toward 80 MPa."
    ]


def test_underscores_inside_headings_are_kept(tmp_path: Path) -> None:
    doc = tmp_path / "guide.md"
    doc.write_text(
        "---\nid: g\n---\n## **Process_Temperature**\nKeep it _near_ 670 degC.\n",
        encoding="utf-8",
    )
    (passage,) = read_corpus(tmp_path)
    assert passage.section == "Process_Temperature"
    assert passage.passage_id == "g#process_temperature"
    assert passage.text == "Keep it near 670 degC."


REAL_CORPUS = Path(__file__).parents[2] / "castml/knowledge/corpus"


@pytest.mark.skipif(
    not (REAL_CORPUS / "catalog.json").exists(), reason="the generated corpus is not there"
)
def test_real_corpus_parses_and_every_labelled_passage_exists() -> None:
    from castml.knowledge.eval_queries import load_eval_queries

    chunks = chunk_passages(read_corpus(REAL_CORPUS))
    catalog = json.loads((REAL_CORPUS / "catalog.json").read_text(encoding="utf-8"))
    assert {c.doc_id for c in chunks} == {d["doc_id"] for d in catalog["documents"]}
    assert {c.language for c in chunks} == {"en", "ko"}
    assert any(c.page for c in chunks if c.language == "ko"), "Korean PDF pages are read"
    known = set().union(*(c.ids() for c in chunks))
    queries = load_eval_queries(REAL_CORPUS / "eval")
    missing = {q.query_id: sorted(q.relevant - known) for q in queries if q.relevant - known}
    assert not missing
