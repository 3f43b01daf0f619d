"""The knowledge base as the pipeline and the server use it: an index plus everything needed
to answer a T3 request — {query, context, language} -> a cited answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from castml.knowledge.answer_composer import KnowledgeAnswer, compose_answer
from castml.knowledge.feature_terms import KnowledgeTerms, load_knowledge_terms
from castml.knowledge.index_store import KnowledgeIndex, load_index
from castml.knowledge.kb_errors import KnowledgeQueryError
from castml.knowledge.language import resolve_language
from castml.knowledge.query_enrichment import enrich_query
from castml.knowledge.recommendations import recommendations
from castml.knowledge.retrieval import DEFAULT_TOP, Filters, HybridRetriever, Mode
from castml.knowledge.tokenizing import KnowledgeTokenizer
from castml.spec import ProjectSpec

MAX_QUERY_CHARS = 2000


def check_query(query: Any) -> str:
    """The query as text, or a KnowledgeQueryError (400) saying what is wrong with it."""
    if not isinstance(query, str):
        raise KnowledgeQueryError(f"query must be text, got {type(query).__name__}")
    text = query.strip()
    if not text:
        raise KnowledgeQueryError("query is empty")
    if len(text) > MAX_QUERY_CHARS:
        raise KnowledgeQueryError(
            f"query is {len(text)} characters; at most {MAX_QUERY_CHARS} are accepted"
        )
    if not any(ch.isalnum() for ch in text):
        raise KnowledgeQueryError("query holds no letters or digits")
    return text


class KnowledgeBase:
    def __init__(
        self,
        index: KnowledgeIndex,
        spec: ProjectSpec,
        tokenizer: KnowledgeTokenizer | None = None,
        terms: KnowledgeTerms | None = None,
    ) -> None:
        self.index = index
        self.spec = spec
        self.terms = terms or load_knowledge_terms()
        self.retriever = HybridRetriever(index, tokenizer or KnowledgeTokenizer())

    @classmethod
    def load(
        cls,
        index_dir: Path,
        spec: ProjectSpec,
        tokenizer: KnowledgeTokenizer | None = None,
        expect_corpus_hash: str | None = None,
    ) -> KnowledgeBase:
        """Load a saved index; a directory that does not match its manifest is refused."""
        return cls(load_index(index_dir, expect_corpus_hash), spec, tokenizer)

    @property
    def threshold(self) -> float:
        return self.retriever.rescorer.threshold

    def ask(
        self,
        query: Any,
        context: Mapping[str, Any] | None = None,
        language: str | None = None,
        filters: Filters | None = None,
        k: int = DEFAULT_TOP,
        mode: Mode = "hybrid_rescored",
    ) -> KnowledgeAnswer:
        text = check_query(query)
        if context is not None and not isinstance(context, Mapping):
            raise KnowledgeQueryError("context must be an object")
        choice = resolve_language(text, language)
        enriched = enrich_query(text, context, self.spec, self.terms, choice.language)
        hits = self.retriever.search(
            enriched.text,
            mode=mode,
            k=k,
            filters=filters,
            defects=enriched.defects,
            language=choice.language,
        )
        return compose_answer(
            hits,
            choice.language,
            self.threshold,
            recommendations(enriched.readings, choice.language),
            choice.note,
        )
