"""The knowledge pipeline's steps, each from files to files: parse -> chunk -> index ->
evaluate -> register. The KFP components (pipelines/knowledge_components.py) are thin
shells over these; `run_direct` runs them in this process, without KFP.

Between steps, passages and chunks travel as JSON lines, the labelled queries as JSON
lines, the index as its directory (castml.knowledge.index_store).
"""

from __future__ import annotations

import json
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from castml.knowledge.chunking import chunk_passages
from castml.knowledge.corpus_reader import corpus_hash, read_corpus
from castml.knowledge.embedding import get_embedder
from castml.knowledge.eval_queries import EvalQuery, load_eval_queries
from castml.knowledge.index_store import build_index, save_index
from castml.knowledge.kb_errors import CorpusError
from castml.knowledge.kb_gate import (
    KbEvaluation,
    flat_metrics,
    gate,
    knowledge_settings,
    score_index,
)
from castml.knowledge.kb_registration import KbRegistered, download_index, register_index
from castml.knowledge.passages import Chunk, DocumentMeta, Passage
from castml.knowledge.tokenizing import KnowledgeTokenizer
from castml.spec import KnowledgeSpec, load_spec

PACKAGED_CORPUS = Path(__file__).parent / "corpus"
EVAL_DIR = "eval"


@dataclass(frozen=True)
class Parsed:
    corpus_hash: str
    documents: int
    passages: int
    queries: int


@dataclass(frozen=True)
class BuildOptions:
    """The build's knobs; empty/0 values take the spec's `knowledge:` settings."""

    embedding_model: str = ""
    chunk_max_chars: int = 0
    chunk_overlap: int = 0

    def resolved(self, settings: KnowledgeSpec) -> KnowledgeSpec:
        return KnowledgeSpec(
            embedding_model=self.embedding_model or settings.embedding_model,
            chunk_max_chars=self.chunk_max_chars or settings.chunk_max_chars,
            chunk_overlap=self.chunk_overlap or settings.chunk_overlap,
            floors=settings.floors,
            max_regression=settings.max_regression,
        )


def corpus_dir_or_default(corpus_dir: str | Path | None) -> Path:
    return Path(corpus_dir) if corpus_dir else PACKAGED_CORPUS


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _passage_row(passage: Passage) -> dict[str, Any]:
    row = asdict(passage)
    row["doc"]["defects"] = list(passage.doc.defects)
    return row


def _passage(row: dict[str, Any]) -> Passage:
    doc = DocumentMeta(**{**row["doc"], "defects": tuple(row["doc"].get("defects", ()))})
    return Passage(doc=doc, section=row["section"], text=row["text"], page=row.get("page"))


def _query_row(query: EvalQuery) -> dict[str, Any]:
    return {
        "id": query.query_id,
        "query": query.query,
        "relevant": sorted(query.relevant),
        "language": query.language,
        "context": query.context,
    }


def parse_step(corpus_dir: Path, passages_path: Path, queries_path: Path) -> Parsed:
    """Every document's passages, and the labelled queries; a bad file is a CorpusError
    naming it, raised here, before anything is built or registered."""
    corpus_dir = Path(corpus_dir)
    passages = read_corpus(corpus_dir)
    eval_dir = corpus_dir / EVAL_DIR
    if not eval_dir.is_dir():
        raise CorpusError(eval_dir, "the corpus has no labelled queries (eval/*.jsonl)")
    queries = load_eval_queries(eval_dir)
    if not any(q.answerable for q in queries):
        raise CorpusError(eval_dir, "no labelled query names a relevant passage")
    _write_jsonl(passages_path, [_passage_row(p) for p in passages])
    # One JSON document: KFP's artifact path has no suffix, and only `.jsonl` reads as lines.
    queries_path.parent.mkdir(parents=True, exist_ok=True)
    queries_path.write_text(
        json.dumps({"queries": [_query_row(q) for q in queries]}, ensure_ascii=False),
        encoding="utf-8",
    )
    return Parsed(
        corpus_hash=corpus_hash(corpus_dir),
        documents=len({p.doc.doc_id for p in passages}),
        passages=len(passages),
        queries=len(queries),
    )


def chunk_step(passages_path: Path, chunks_path: Path, max_chars: int, overlap: int) -> int:
    chunks = chunk_passages(
        [_passage(row) for row in _read_jsonl(passages_path)], max_chars=max_chars, overlap=overlap
    )
    _write_jsonl(chunks_path, [c.to_json() for c in chunks])
    return len(chunks)


def index_step(
    chunks_path: Path,
    index_dir: Path,
    corpus_digest: str,
    embedding_model: str,
    max_chars: int,
    overlap: int,
) -> dict[str, Any]:
    """Tokenize (BM25) and embed every chunk; the saved index's manifest."""
    chunks = [Chunk.from_json(row) for row in _read_jsonl(chunks_path)]
    index = build_index(
        chunks,
        KnowledgeTokenizer(),
        get_embedder(embedding_model),
        corpus_digest,
        chunking={"max_chars": max_chars, "overlap": overlap},
    )
    save_index(index, index_dir)
    return index.manifest


def evaluate_step(
    project: str,
    index_dir: Path,
    queries_path: Path,
    tracking_uri: str,
    evaluation_path: Path,
) -> KbEvaluation:
    """The four retrievers on the candidate and on the @champion index (same queries); the gate."""
    from castml import registry
    from castml.protocol.mlflow_names import CHAMPION, kb_model_name

    spec = load_spec(project)
    queries = load_eval_queries(queries_path)
    tokenizer = KnowledgeTokenizer()
    retrievers = score_index(index_dir, queries, spec, tokenizer)
    metrics = flat_metrics(retrievers)
    champion_version: int | None = None
    champion_metrics: dict[str, float] | None = None
    reigning = registry.alias_version(
        registry.client(tracking_uri), kb_model_name(spec.name), CHAMPION
    )
    if reigning is not None:
        with tempfile.TemporaryDirectory() as tmp:
            champion_version, champion_dir = download_index(
                spec.name, reigning.version, Path(tmp), tracking_uri
            )
            champion_metrics = flat_metrics(score_index(champion_dir, queries, spec, tokenizer))
    verdict = gate(metrics, champion_metrics, knowledge_settings(spec))
    result = KbEvaluation(
        retrievers=retrievers,
        metrics=metrics,
        champion_version=champion_version,
        champion_metrics=champion_metrics,
        passed=verdict.passed,
        reasons=verdict.reasons,
        queries=sum(q.answerable for q in queries),
    )
    evaluation_path.parent.mkdir(parents=True, exist_ok=True)
    evaluation_path.write_text(json.dumps(result.to_json(), indent=2), encoding="utf-8")
    return result


def register_step(
    project: str,
    index_dir: Path,
    evaluation_path: Path,
    tracking_uri: str,
    pipeline_run_id: str,
    reason: str,
    settings: KnowledgeSpec,
    corpus_dir: str,
) -> KbRegistered:
    spec = load_spec(project)
    evaluation = KbEvaluation.from_json(json.loads(evaluation_path.read_text(encoding="utf-8")))
    params = {
        "embedding.model": settings.embedding_model,
        "chunking.max_chars": settings.chunk_max_chars,
        "chunking.overlap": settings.chunk_overlap,
        "corpus": corpus_dir,
        "queries": evaluation.queries,
    }
    return register_index(
        spec.name, tracking_uri, index_dir, evaluation, pipeline_run_id, reason, params
    )


def run_direct(
    project: str,
    tracking_uri: str,
    workdir: Path,
    *,
    corpus_dir: str = "",
    options: BuildOptions = BuildOptions(),
    reason: str = "manual",
) -> KbRegistered:
    """Every step in this process, in order, through the same files as the pipeline."""
    corpus = corpus_dir_or_default(corpus_dir)
    settings = options.resolved(knowledge_settings(load_spec(project)))
    parsed = parse_step(corpus, workdir / "passages.jsonl", workdir / "queries.json")
    chunk_step(
        workdir / "passages.jsonl",
        workdir / "chunks.jsonl",
        settings.chunk_max_chars,
        settings.chunk_overlap,
    )
    index_step(
        workdir / "chunks.jsonl",
        workdir / "index",
        parsed.corpus_hash,
        settings.embedding_model,
        settings.chunk_max_chars,
        settings.chunk_overlap,
    )
    evaluate_step(
        project, workdir / "index", workdir / "queries.json", tracking_uri, workdir / "eval.json"
    )
    return register_step(
        project,
        workdir / "index",
        workdir / "eval.json",
        tracking_uri,
        f"direct-{uuid.uuid4().hex[:12]}",
        reason,
        settings,
        str(corpus),
    )
