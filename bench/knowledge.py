"""The knowledge base's retrieval against its own single retrievers and LanceDB, in one run.

Issue 12 §6. Three measurements, all through castml.knowledge's own functions (build_index,
HybridRetriever, QueryRunner, retrieval_metrics.evaluate):

1. Quality on the packaged corpus's labelled queries (Korean and English, the answerable ones),
   each prepared the way the server prepares it (language, context enrichment): recall@5,
   recall@20, nDCG@10 and MRR of BM25 alone, dense (e5) alone, hybrid (RRF) and hybrid +
   rescoring; and of LanceDB's built-in hybrid search (its full-text index + vector search +
   its RRFReranker) over the same chunks and the SAME e5 vectors (ours, put in a LanceDB
   table), at the same candidate depth (30 a side, the top 20 scored).

       nDCG@10(hybrid_rescored) / max(nDCG@10(bm25), nDCG@10(dense))     target >= 1.10
       nDCG@10(hybrid_rescored) / nDCG@10(LanceDB hybrid)                target >= 1.0

   "LanceDB hybrid (raw text)" is LanceDB as it comes: its FTS tokenizer (split on spaces and
   punctuation, English stemming) sees the chunk and query text, and has no Korean morpheme
   analysis. "LanceDB hybrid (our tokens)" feeds its FTS our Kiwi/Snowball tokens instead
   (space-joined, whitespace tokenizer, no further stemming): that isolates the fusion.

2. Query latency over a ~10,000-chunk corpus: the packaged documents padded with case reports
   from the corpus's own generator (corpus_cases.make_case), written as Markdown/HTML and read
   back by the corpus reader. Per query, p50 and p99 of the full hybrid + rescoring path
   (tokenize, BM25, e5 query embedding, cosine, fusion, rescoring, dedup: `search`) against the
   BM25-only path (tokenize + BM25 scores + top-k), both from the same prepared query text:

       p50(hybrid_rescored) / p50(bm25 path)                             target <= 1.5
       p99(hybrid_rescored)                                              budget < 200 ms

   A per-stage profile of the hybrid path says where the time goes (each stage timed on its
   own, in a separate pass), and `hybrid_rescored_given_vector`, the same search with the
   query vector computed beforehand, what it costs besides the e5 query embedding.

3. Index build time per 1,000 chunks at that size: parse, chunk, tokenize + BM25 measured on
   all of it. e5 embeds 2-6 chunks a second on these 2 shared cores (over half an hour for
   10k chunks), so by default it embeds a sample of the corpus (EMBED_SAMPLE chunks), the
   build's embedding time is that rate times the chunk count, and the other chunks reuse the
   sample's vectors (the query path's cost does not depend on the values: one matrix-vector
   product, a fixed number of candidates). CASTML_BENCH_KB_FULL_EMBED=1 embeds every chunk.
   The packaged corpus's own build (step 1, longer chunks) is measured whole, e5 included.

Most of the hybrid path is the e5 query embedding (the queries carry the prediction context:
77 characters at the median, up to ~600), so the latency ratio is printed with the profile.

CASTML_BENCH_KB_CHUNKS sets the latency corpus size (default 10000), for quick runs.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from castml.knowledge.chunking import chunk_passages
from castml.knowledge.corpus_cases import Shot, case_documents, defective_shots, make_case
from castml.knowledge.corpus_documents import write_document
from castml.knowledge.corpus_model import LANGUAGES, Document, load_source
from castml.knowledge.corpus_reader import CATALOG_NAME, corpus_hash, read_corpus
from castml.knowledge.embedding import E5Embedder, Embedder, get_embedder
from castml.knowledge.eval_queries import EvalQuery, load_eval_queries
from castml.knowledge.index_store import KnowledgeIndex, build_index, chunk_search_text
from castml.knowledge.kb_steps import EVAL_DIR, PACKAGED_CORPUS
from castml.knowledge.passages import Chunk
from castml.knowledge.rank_fusion import top_k
from castml.knowledge.retrieval import DEFAULT_TOP, FIRST_STAGE_K, MODES, HybridRetriever
from castml.knowledge.retrieval_metrics import RANK_DEPTH, evaluate
from castml.knowledge.retriever_evaluation import QueryRunner
from castml.knowledge.tokenizing import KnowledgeTokenizer
from castml.spec import load_spec

RESULTS = Path(__file__).parent / "results"
PROJECT = "diecast"
CORPUS_CHUNKS = int(os.environ.get("CASTML_BENCH_KB_CHUNKS", "10000"))
FULL_EMBED = os.environ.get("CASTML_BENCH_KB_FULL_EMBED", "") == "1"
EMBED_SAMPLE = 96
LATENCY_PASSES = 2  # every labelled query, twice
WARMUP = 10
TARGET_QUALITY_RATIO = 1.10
TARGET_VS_LANCEDB = 1.0
TARGET_LATENCY_RATIO = 1.5
BUDGET_MS = 200.0
METRICS = ("ndcg@10", "recall@5", "recall@20", "mrr")

Ranked = dict[str, list[Chunk]]  # query id -> ranked chunks
Prepared = tuple[str, str, frozenset[str]]  # text, language, defects (QueryRunner.prepared)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _p(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


# -- LanceDB ------------------------------------------------------------------------------
class LanceHybrid:
    """A LanceDB table over our chunks and our vectors, searched by LanceDB's own hybrid."""

    def __init__(
        self,
        directory: Path,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        tokenizer: KnowledgeTokenizer | None = None,
    ) -> None:
        import lancedb

        # tokenizer given: the FTS column holds our tokens and the query is tokenized alike.
        self.tokenizer = tokenizer
        texts = [chunk_search_text(c) for c in chunks]
        if tokenizer is not None:
            texts = [" ".join(tokens) for tokens in tokenizer.tokenize_many(texts)]
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
        data = pa.table(
            {
                "id": pa.array(range(len(chunks)), pa.int64()),
                "text": pa.array(texts, pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]),
            }
        )
        self.table = lancedb.connect(str(directory)).create_table("chunks", data=data)
        if tokenizer is None:
            self.table.create_fts_index("text", replace=True)  # LanceDB's defaults
        else:
            self.table.create_fts_index(
                "text",
                replace=True,
                base_tokenizer="whitespace",
                stem=False,
                remove_stop_words=False,
                ascii_folding=False,
            )
        self.chunks = list(chunks)

    def query_text(self, text: str) -> str:
        if self.tokenizer is None:
            return text
        return " ".join(self.tokenizer.tokenize(text)) or text

    def hybrid(self, text: str, vector: np.ndarray, depth: int = RANK_DEPTH) -> list[Chunk]:
        from lancedb.rerankers import RRFReranker

        rows = (
            self.table.search(query_type="hybrid")
            .vector(vector.tolist())
            .text(self.query_text(text))
            .rerank(RRFReranker())
            .limit(FIRST_STAGE_K)  # each side's candidates, as ours
            .to_list()
        )
        return [self.chunks[int(r["id"])] for r in rows[:depth]]

    def fts(self, text: str, depth: int = RANK_DEPTH) -> list[Chunk]:
        rows = self.table.search(self.query_text(text), query_type="fts").limit(depth).to_list()
        return [self.chunks[int(r["id"])] for r in rows]


# -- 1. quality -----------------------------------------------------------------------------
def _scores(ranked: Ranked, queries: Sequence[EvalQuery]) -> dict[str, float]:
    out = evaluate(lambda q: ranked[q.query_id], queries)
    return {k: round(out[k], 4) for k in (*METRICS, "queries")}


def quality(
    tokenizer: KnowledgeTokenizer, embedder: Embedder, tmp: Path
) -> tuple[dict[str, Any], KnowledgeIndex, list[Prepared]]:
    """The side-by-side table; the index and the prepared queries, for the latency run."""
    started = time.perf_counter()
    passages = read_corpus(PACKAGED_CORPUS)
    chunks = chunk_passages(passages)
    index = build_index(chunks, tokenizer, embedder, corpus_hash(PACKAGED_CORPUS))
    build_s = time.perf_counter() - started
    runner = QueryRunner(HybridRetriever(index, tokenizer, embedder), load_spec(PROJECT))
    queries = [q for q in load_eval_queries(PACKAGED_CORPUS / EVAL_DIR) if q.answerable]
    prepared = {q.query_id: runner.prepared(q) for q in queries}
    vectors = {qid: embedder.embed_queries([p[0]])[0] for qid, p in prepared.items()}
    raw = LanceHybrid(tmp / "lance-raw", index.chunks, index.embeddings)
    ours = LanceHybrid(tmp / "lance-tok", index.chunks, index.embeddings, tokenizer)
    rankings: dict[str, Ranked] = {
        mode: {q.query_id: runner.ranked(q, mode) for q in queries} for mode in MODES
    }
    lances = (("raw", raw), ("tokens", ours))
    for label, lance in lances:
        rankings[f"lancedb_hybrid_{label}"] = {
            qid: lance.hybrid(p[0], vectors[qid]) for qid, p in prepared.items()
        }
    for label, lance in lances:
        rankings[f"lancedb_fts_{label}"] = {qid: lance.fts(p[0]) for qid, p in prepared.items()}
    by_language: dict[str, list[EvalQuery]] = {}
    for q in queries:
        by_language.setdefault(prepared[q.query_id][1], []).append(q)
    table: dict[str, Any] = {}
    for name, ranked in rankings.items():
        table[name] = {
            "all": _scores(ranked, queries),
            **{lang: _scores(ranked, qs) for lang, qs in sorted(by_language.items())},
        }
    ndcg = {name: row["all"]["ndcg@10"] for name, row in table.items()}
    best_single = max(ndcg["bm25"], ndcg["dense"])
    best_lance = max(ndcg["lancedb_hybrid_raw"], ndcg["lancedb_hybrid_tokens"])
    return (
        {
            "queries": len(queries),
            "queries_by_language": {k: len(v) for k, v in sorted(by_language.items())},
            "chunks": index.size,
            "build_seconds": round(build_s, 2),
            "build_seconds_per_1k_chunks": round(build_s / index.size * 1000, 1),
            "systems": table,
            "ratio_vs_best_single": round(ndcg["hybrid_rescored"] / best_single, 3),
            "ratio_vs_lancedb_raw": round(ndcg["hybrid_rescored"] / ndcg["lancedb_hybrid_raw"], 3),
            "ratio_vs_lancedb_best": round(ndcg["hybrid_rescored"] / best_lance, 3),
        },
        index,
        list(prepared.values()),
    )


# -- 2./3. the ~10k corpus ---------------------------------------------------------------------
def _interleaved(shots: list[Shot]) -> list[Shot]:
    """Round-robin over the mechanisms, so the padding is not nearly all one defect."""
    groups: dict[str, list[Shot]] = {}
    for shot in shots:
        groups.setdefault(shot.mechanism, []).append(shot)
    out: list[Shot] = []
    for i in range(max(len(g) for g in groups.values())):
        out += [g[i % len(g)] for g in groups.values()]
    return out


def padding_documents(n_cases: int) -> list[Document]:
    """`n_cases` more case reports from the corpus generator, half per language."""
    features = {f.name: f for f in load_spec(PROJECT).features}
    src = load_source("cases.yaml")
    shots = _interleaved(defective_shots(features, src["mechanisms"]))
    docs: list[Document] = []
    per_language = -(-n_cases // len(LANGUAGES))
    for lang in LANGUAGES:
        # Case numbers and dates follow the index: start past the packaged corpus's own.
        reports = [
            make_case(lang, 1000 + i, shots[i % len(shots)], features, src)
            for i in range(per_language)
        ]
        docs += [replace(doc, doc_id=f"pad-{doc.doc_id}") for doc in case_documents(lang, reports)]
    return docs


def padded_corpus(directory: Path, target_chunks: int, real_chunks: int) -> Path:
    """The packaged documents plus enough generated case reports for ~target_chunks."""
    shutil.copytree(PACKAGED_CORPUS / "documents", directory / "documents")
    shutil.copy(PACKAGED_CORPUS / CATALOG_NAME, directory / CATALOG_NAME)
    pilot = padding_documents(20)
    probe = directory.parent / "probe"
    for doc in pilot:
        write_document(doc, probe, None)
    per_case = len(chunk_passages(read_corpus(probe))) / len(pilot)
    needed = max(0, target_chunks - real_chunks)
    for doc in padding_documents(int(np.ceil(needed / per_case))):
        write_document(doc, directory, None)
    return directory


class SampledE5(E5Embedder):
    """e5 on a sample of the passages; the rest reuse the sample's vectors (see the module
    docstring). Records how long the real embedding took and on how many passages."""

    def __init__(self, sample: int) -> None:
        super().__init__()
        self.sample = sample
        self.embedded = 0
        self.seconds = 0.0

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if self.sample <= 0 or len(texts) <= self.sample:
            picked = list(range(len(texts)))
        else:  # spread over the corpus: the packaged documents and the padding alike
            picked = np.linspace(0, len(texts) - 1, self.sample).astype(int).tolist()
        started = time.perf_counter()
        vectors = super().embed_passages([texts[i] for i in picked])
        self.seconds += time.perf_counter() - started
        self.embedded += len(picked)
        if len(picked) == len(texts):
            return vectors
        return vectors[np.arange(len(texts)) % len(picked)]


def build_large(
    tokenizer: KnowledgeTokenizer, tmp: Path, real_chunks: int
) -> tuple[KnowledgeIndex, dict[str, Any]]:
    corpus = padded_corpus(tmp / "corpus10k", CORPUS_CHUNKS, real_chunks)
    embedder = SampledE5(0 if FULL_EMBED else EMBED_SAMPLE)
    started = time.perf_counter()
    passages = read_corpus(corpus)
    parse_s = time.perf_counter() - started
    started = time.perf_counter()
    chunks = chunk_passages(passages)
    chunk_s = time.perf_counter() - started
    started = time.perf_counter()
    index = build_index(chunks, tokenizer, embedder, corpus_hash(corpus))
    index_s = time.perf_counter() - started
    n = index.size
    bm25_s = index_s - embedder.seconds  # build_index: tokenize + BM25, then embed
    embed_per_chunk = embedder.seconds / embedder.embedded
    per_1k = {
        "parse": parse_s / n * 1000,
        "chunk": chunk_s / n * 1000,
        "tokenize_bm25": bm25_s / n * 1000,
        "embed_e5": embed_per_chunk * 1000,
    }
    per_1k["total"] = sum(per_1k.values())
    build = {
        "chunks": n,
        "documents": len({c.doc_id for c in index.chunks}),
        "embedded_for_real": embedder.embedded,
        "embedding_extrapolated": embedder.embedded < n,
        "seconds_per_1k_chunks": {k: round(v, 3) for k, v in per_1k.items()},
        "seconds_total_at_size": round(per_1k["total"] * n / 1000, 1),
    }
    return index, build


def _bm25_path(retriever: HybridRetriever) -> Callable[[str], np.ndarray]:
    """The BM25-only query path: tokenize, BM25 scores of the known terms, top-k."""
    vocab = retriever.index.bm25.vocab_dict
    bm25 = retriever.index.bm25
    n = retriever.index.size

    def run(text: str) -> np.ndarray:
        terms = sorted({t for t in retriever.tokenizer.tokenize(text) if t in vocab})
        scores = bm25.get_scores(terms) if terms else np.zeros(n, np.float32)
        return top_k(scores, DEFAULT_TOP, floor=0.0)

    return run


class KnownQueries:
    """An Embedder that returns query vectors computed beforehand: the same search path
    minus the e5 query embedding, to see what the rest of the hybrid path costs."""

    def __init__(self, embedder: Embedder, texts: Sequence[str]) -> None:
        self.name, self.version, self.dim = embedder.name, embedder.version, embedder.dim
        unique = sorted(set(texts))
        self._vectors = dict(zip(unique, embedder.embed_queries(unique), strict=True))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vectors[t] for t in texts])

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError("query vectors only")


def latency(
    index: KnowledgeIndex,
    tokenizer: KnowledgeTokenizer,
    embedder: Embedder,
    prepared: Sequence[Prepared],
    tmp: Path,
) -> dict[str, Any]:
    retriever = HybridRetriever(index, tokenizer, embedder)
    lance = LanceHybrid(tmp / "lance-10k", index.chunks, index.embeddings)
    bm25_path = _bm25_path(retriever)
    known = HybridRetriever(index, tokenizer, KnownQueries(embedder, [p[0] for p in prepared]))
    paths: dict[str, Callable[[Prepared], object]] = {
        "bm25_path": lambda p: bm25_path(p[0]),
        "bm25_mode": lambda p: retriever.search(p[0], "bm25", defects=p[2], language=p[1]),
        "hybrid_rescored": lambda p: retriever.search(
            p[0], "hybrid_rescored", defects=p[2], language=p[1]
        ),
        "hybrid_rescored_given_vector": lambda p: known.search(
            p[0], "hybrid_rescored", defects=p[2], language=p[1]
        ),
        "lancedb_hybrid": lambda p: lance.hybrid(p[0], embedder.embed_queries([p[0]])[0]),
    }
    names = list(paths)
    times: dict[str, list[float]] = {name: [] for name in names}
    rounds = [p for _ in range(LATENCY_PASSES) for p in prepared]
    for i, query in enumerate([*prepared[:WARMUP], *rounds]):
        # Rotate the order so a busy moment on the shared cores falls on every path alike.
        for name in names[i % len(names) :] + names[: i % len(names)]:
            started = time.perf_counter()
            paths[name](query)
            if i >= WARMUP:
                times[name].append(_ms(started))
    summary = {
        name: {"p50_ms": round(statistics.median(v), 3), "p99_ms": round(_p(v, 99), 3)}
        for name, v in times.items()
    }
    stages = profile(retriever, prepared)
    bm25_p50 = summary["bm25_path"]["p50_ms"]
    return {
        "queries": len(rounds),
        "paths": summary,
        "profile_p50_ms": stages,
        "ratio_p50": round(summary["hybrid_rescored"]["p50_ms"] / bm25_p50, 3),
        "ratio_p50_without_query_embedding": round(
            summary["hybrid_rescored_given_vector"]["p50_ms"] / bm25_p50, 3
        ),
    }


def profile(retriever: HybridRetriever, prepared: Sequence[Prepared]) -> dict[str, float]:
    """Median ms per stage of the hybrid path, each stage timed on its own; `rest` is the
    whole search minus those (fusion, rescoring features, rescoring, dedup, masks)."""
    stages: dict[str, list[float]] = {
        k: [] for k in ("tokenize", "bm25_terms", "embed_query", "cosine_topk", "search", "rest")
    }
    index = retriever.index
    for text, language, defects in prepared:
        started = time.perf_counter()
        tokens = retriever.tokenizer.tokenize(text)
        stages["tokenize"].append(_ms(started))
        started = time.perf_counter()
        retriever._term_scores(tokens)
        stages["bm25_terms"].append(_ms(started))
        started = time.perf_counter()
        vector = retriever.embedder.embed_queries([text])[0]
        stages["embed_query"].append(_ms(started))
        started = time.perf_counter()
        top_k(index.embeddings @ vector, FIRST_STAGE_K)
        stages["cosine_topk"].append(_ms(started))
        started = time.perf_counter()
        retriever.search(text, "hybrid_rescored", defects=defects, language=language)
        stages["search"].append(_ms(started))
        parts = ("tokenize", "bm25_terms", "embed_query", "cosine_topk")
        stages["rest"].append(stages["search"][-1] - sum(stages[k][-1] for k in parts))
    return {k: round(statistics.median(v), 3) for k, v in stages.items()}


# -- the run ---------------------------------------------------------------------------------
def run() -> dict[str, Any]:
    started = time.perf_counter()
    tokenizer = KnowledgeTokenizer()
    embedder = get_embedder("e5")
    with tempfile.TemporaryDirectory(prefix="castml-bench-kb-") as name:
        tmp = Path(name)
        quality_result, small, prepared = quality(tokenizer, embedder, tmp)
        large, build = build_large(tokenizer, tmp, small.size)
        latency_result = latency(large, tokenizer, embedder, prepared, tmp)
    paths = latency_result["paths"]
    results = {
        "quality": quality_result,
        "latency": latency_result,
        "build": build,
        "targets": {
            "ndcg_vs_best_single": TARGET_QUALITY_RATIO,
            "ndcg_vs_lancedb": TARGET_VS_LANCEDB,
            "latency_ratio_p50": TARGET_LATENCY_RATIO,
            "budget_ms": BUDGET_MS,
        },
        "quality_ok": quality_result["ratio_vs_best_single"] >= TARGET_QUALITY_RATIO,
        "vs_lancedb_ok": quality_result["ratio_vs_lancedb_best"] >= TARGET_VS_LANCEDB,
        "latency_ratio_ok": latency_result["ratio_p50"] <= TARGET_LATENCY_RATIO,
        "budget_ok": paths["hybrid_rescored"]["p99_ms"] < BUDGET_MS,
        "seconds": round(time.perf_counter() - started, 1),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "knowledge.json").write_text(json.dumps(results, indent=2))
    return results


def _ok(flag: bool) -> str:
    return "ok" if flag else "MISSED"


def _print(r: dict[str, Any]) -> None:
    q, lat, build = r["quality"], r["latency"], r["build"]
    langs = list(q["queries_by_language"])
    print(
        f"quality: {q['queries']} answerable labelled queries "
        f"({', '.join(f'{k} {v}' for k, v in q['queries_by_language'].items())}), "
        f"{q['chunks']} chunks (index built in {q['build_seconds']:.1f} s)"
    )
    head = "".join(f"{m:>10}" for m in METRICS) + "".join(f"{'nDCG ' + x:>10}" for x in langs)
    print(f"{'retriever':<24}{head}")
    for name, row in q["systems"].items():
        cells = "".join(f"{row['all'][m]:>10.3f}" for m in METRICS)
        cells += "".join(f"{row[x]['ndcg@10']:>10.3f}" for x in langs)
        print(f"{name:<24}{cells}")
    print(
        f"nDCG@10 hybrid_rescored / best single retriever = {q['ratio_vs_best_single']:.3f}x "
        f"(target >= {TARGET_QUALITY_RATIO}x) {_ok(r['quality_ok'])}"
    )
    print(
        f"nDCG@10 hybrid_rescored / LanceDB hybrid (raw text) = {q['ratio_vs_lancedb_raw']:.3f}x,"
        f" / best LanceDB variant = {q['ratio_vs_lancedb_best']:.3f}x "
        f"(target >= {TARGET_VS_LANCEDB}x) {_ok(r['vs_lancedb_ok'])}"
    )
    print(f"\nlatency: {lat['queries']} queries over {build['chunks']} chunks (ms)")
    print(f"{'path':<30}{'p50':>10}{'p99':>10}")
    for name, row in lat["paths"].items():
        print(f"{name:<30}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}")
    hy = lat["paths"]["hybrid_rescored"]
    print(
        f"p50 hybrid_rescored / bm25 path = {lat['ratio_p50']:.2f}x "
        f"(target <= {TARGET_LATENCY_RATIO}x) {_ok(r['latency_ratio_ok'])}; "
        f"p99 {hy['p99_ms']:.1f} ms (budget < {BUDGET_MS:.0f} ms) {_ok(r['budget_ok'])}"
    )
    prof = lat["profile_p50_ms"]
    print("hybrid path profile, p50 ms: " + ", ".join(f"{k} {v:.2f}" for k, v in prof.items()))
    print(
        "p50 hybrid_rescored with the query vector given (no e5 call) / bm25 path = "
        f"{lat['ratio_p50_without_query_embedding']:.2f}x"
    )
    per = build["seconds_per_1k_chunks"]
    note = (
        f"e5 measured on {build['embedded_for_real']} chunks, extrapolated"
        if build["embedding_extrapolated"]
        else "all chunks embedded"
    )
    print(
        f"\nbuild per 1,000 chunks at {build['chunks']} chunks ({build['documents']} documents):"
        f" {per['total']:.1f} s = parse {per['parse']:.2f} + chunk {per['chunk']:.2f} + "
        f"tokenize/BM25 {per['tokenize_bm25']:.2f} + embed {per['embed_e5']:.1f} ({note}); "
        f"whole build {build['seconds_total_at_size']:.0f} s"
    )
    print(
        f"packaged corpus, built whole ({q['chunks']} chunks, e5 on every one): "
        f"{q['build_seconds_per_1k_chunks']:.1f} s per 1,000 chunks"
    )
    print(f"bench took {r['seconds']:.0f} s")


def main() -> None:  # `python -m bench knowledge` (bench/__main__.py)
    _print(run())


if __name__ == "__main__":
    main()
