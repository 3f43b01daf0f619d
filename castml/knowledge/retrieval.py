"""Hybrid retrieval over a KnowledgeIndex: BM25 top-k + dense top-k, fused by reciprocal rank,
rescored (rescoring.py), deduplicated, filtered on metadata; the best `k` (8) come back.

The four modes (`bm25`, `dense`, `hybrid`, `hybrid_rescored`) share one code path so the
evaluation compares retrievers, not implementations. The hot path is numpy: one sparse BM25
pass per query term, one matrix-vector product for the cosines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from castml.knowledge.embedding import Embedder, get_embedder
from castml.knowledge.feature_terms import normalise_defect
from castml.knowledge.index_store import KnowledgeIndex
from castml.knowledge.language import detect_language
from castml.knowledge.passages import Chunk
from castml.knowledge.rank_fusion import reciprocal_rank_fusion, top_k
from castml.knowledge.rescoring import COS_CENTRE, FEATURES, LinearRescorer, default_rescorer
from castml.knowledge.tokenizing import KnowledgeTokenizer

Mode = Literal["bm25", "dense", "hybrid", "hybrid_rescored"]
MODES: tuple[Mode, ...] = ("bm25", "dense", "hybrid", "hybrid_rescored")
FIRST_STAGE_K = 30  # each retriever's candidates, and how many the rescorer sees
DEFAULT_TOP = 8


@dataclass(frozen=True)
class Filters:
    """Metadata filters; an empty tuple means no filter on that field."""

    defects: tuple[str, ...] = ()
    doc_types: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float  # the mode's ranking score
    relevance: float  # the rescorer's probability of relevance (0-1)
    bm25: float
    cosine: float
    bm25_rank: int | None
    dense_rank: int | None


@dataclass
class _Candidates:
    bm25: np.ndarray
    cosine: np.ndarray
    bm25_order: np.ndarray
    dense_order: np.ndarray
    term_hits: np.ndarray  # (n_terms, n_chunks) bool: chunk contains the query term
    features: dict[int, np.ndarray] = field(default_factory=dict)


class HybridRetriever:
    def __init__(
        self,
        index: KnowledgeIndex,
        tokenizer: KnowledgeTokenizer,
        embedder: Embedder | None = None,
        rescorer: LinearRescorer | None = None,
    ) -> None:
        self.index = index
        self.tokenizer = tokenizer
        self.embedder = embedder or get_embedder(index.manifest["embedding"]["key"])
        stored = index.extras.get("rescorer")
        self.rescorer = rescorer or (
            LinearRescorer.from_json(stored) if stored else default_rescorer()
        )
        chunks = index.chunks
        self._languages = np.array([c.language for c in chunks])
        self._doc_types = np.array([c.doc_type.lower() for c in chunks])
        self._defects = [frozenset(normalise_defect(d) for d in c.defects) for c in chunks]
        self._vocab: dict[str, int] = index.bm25.vocab_dict

    # -- first stage -------------------------------------------------------------------
    def _mask(self, filters: Filters | None) -> np.ndarray:
        mask = np.ones(self.index.size, dtype=bool)
        if filters is None:
            return mask
        if filters.languages:
            mask &= np.isin(self._languages, [x.lower()[:2] for x in filters.languages])
        if filters.doc_types:
            mask &= np.isin(self._doc_types, [x.lower() for x in filters.doc_types])
        if filters.defects:
            wanted = {normalise_defect(d) for d in filters.defects}
            mask &= np.array([bool(d & wanted) for d in self._defects])
        return mask

    def _term_scores(self, tokens: list[str]) -> np.ndarray:
        terms = sorted({t for t in tokens if t in self._vocab})
        if not terms:
            return np.zeros((0, self.index.size), dtype=np.float32)
        return np.stack([self.index.bm25.get_scores([t]) for t in terms]).astype(np.float32)

    def _first_stage(
        self, text: str, mask: np.ndarray, need_dense: bool, need_bm25: bool
    ) -> _Candidates:
        n = self.index.size
        tokens = self.tokenizer.tokenize(text)
        per_term = self._term_scores(tokens) if need_bm25 else np.zeros((0, n), np.float32)
        bm25 = per_term.sum(axis=0) if per_term.size else np.zeros(n, np.float32)
        bm25_masked = np.where(mask, bm25, -np.inf)
        bm25_order = (
            top_k(bm25_masked, FIRST_STAGE_K, floor=0.0) if need_bm25 else np.array([], int)
        )
        if need_dense:
            query = self.embedder.embed_queries([text])[0]
            # einsum, not `@`: for a 10k x 384 matrix OpenBLAS's gemv wakes its thread team,
            # whose threads then spin and take the cores from the next query's e5 embedding.
            # On 2 shared cores (bench/knowledge.py, 10k chunks) `@` cost 5.8 ms p50 and
            # doubled the embedding (25 against 13 ms); einsum's single-threaded loop, 0.7 ms.
            cosine = np.einsum("ij,j->i", self.index.embeddings, query)
            dense_order = top_k(np.where(mask, cosine, -np.inf), FIRST_STAGE_K)
        else:
            cosine = np.zeros(n, np.float32)
            dense_order = np.array([], dtype=int)
        n_terms = max(len(set(tokens)), 1)
        hits = per_term > 0
        # Terms outside the vocabulary count as missing from every chunk.
        hits = (
            np.vstack([hits, np.zeros((n_terms - hits.shape[0], n), bool)])
            if hits.shape[0] < n_terms
            else hits
        )
        return _Candidates(bm25, cosine, bm25_order, dense_order, hits)

    # -- second stage -----------------------------------------------------------------
    def _features(
        self, idx: np.ndarray, cand: _Candidates, language: str, defects: frozenset[str]
    ) -> np.ndarray:
        best_bm25 = float(cand.bm25.max()) if cand.bm25.size else 0.0
        best_cos = float(cand.cosine[idx].max()) if idx.size else 0.0
        bm25_rank = {int(i): r for r, i in enumerate(cand.bm25_order.tolist())}
        dense_rank = {int(i): r for r, i in enumerate(cand.dense_order.tolist())}
        rows = []
        for i in idx.tolist():
            chunk_defects = self._defects[i]
            match = 0.0 if not defects else (1.0 if chunk_defects & defects else -1.0)
            rows.append(
                [
                    cand.bm25[i] / best_bm25 if best_bm25 > 0 else 0.0,
                    cand.cosine[i] - COS_CENTRE,
                    cand.cosine[i] - best_cos,
                    60.0 / (61 + bm25_rank[i]) if i in bm25_rank else 0.0,
                    60.0 / (61 + dense_rank[i]) if i in dense_rank else 0.0,
                    float(cand.term_hits[:, i].mean()) if cand.term_hits.size else 0.0,
                    match,
                    1.0 if self._languages[i] == language else 0.0,
                ]
            )
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(FEATURES))

    def candidates(
        self,
        text: str,
        mode: Mode = "hybrid_rescored",
        filters: Filters | None = None,
        defects: Iterable[str] = (),
        language: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, _Candidates]:
        """Ranked candidate indices, their mode scores, their rescoring features."""
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}; choose one of {MODES}")
        language = language or detect_language(text)
        wanted = frozenset(normalise_defect(d) for d in defects)
        mask = self._mask(filters)
        cand = self._first_stage(text, mask, need_dense=mode != "bm25", need_bm25=mode != "dense")
        if mode == "bm25":
            order = cand.bm25_order
            scores = cand.bm25[order]
        elif mode == "dense":
            order = cand.dense_order
            scores = cand.cosine[order]
        else:
            fused = reciprocal_rank_fusion([cand.bm25_order, cand.dense_order])[:FIRST_STAGE_K]
            order = np.array([i for i, _ in fused], dtype=int)
            scores = np.array([s for _, s in fused], dtype=np.float64)
        features = self._features(order, cand, language, wanted)
        if mode == "hybrid_rescored" and order.size:
            scores = self.rescorer.score(features)
            resort = np.argsort(-scores, kind="stable")
            order, scores, features = order[resort], scores[resort], features[resort]
        return order, scores, features, cand

    def search(
        self,
        text: str,
        mode: Mode = "hybrid_rescored",
        k: int = DEFAULT_TOP,
        filters: Filters | None = None,
        defects: Iterable[str] = (),
        language: str | None = None,
    ) -> list[Hit]:
        order, scores, features, cand = self.candidates(text, mode, filters, defects, language)
        relevance = self.rescorer.score(features) if order.size else np.zeros(0)
        bm25_rank = {int(i): r for r, i in enumerate(cand.bm25_order.tolist())}
        dense_rank = {int(i): r for r, i in enumerate(cand.dense_order.tolist())}
        hits: list[Hit] = []
        seen_passages: set[str] = set()
        seen_texts: set[str] = set()
        for pos, i in enumerate(order.tolist()):
            chunk = self.index.chunks[i]
            # Overlapping windows of one section, and the same text in two documents
            # (a translated copy is not the same text), are cited once.
            key = " ".join(chunk.text.split())
            if chunk.passage_id in seen_passages or key in seen_texts:
                continue
            seen_passages.add(chunk.passage_id)
            seen_texts.add(key)
            hits.append(
                Hit(
                    chunk=chunk,
                    score=float(scores[pos]),
                    relevance=float(relevance[pos]),
                    bm25=float(cand.bm25[i]),
                    cosine=float(cand.cosine[i]),
                    bm25_rank=bm25_rank.get(i),
                    dense_rank=dense_rank.get(i),
                )
            )
            if len(hits) >= k:
                break
        return hits
