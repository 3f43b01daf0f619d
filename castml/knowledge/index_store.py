"""The knowledge index: chunks + a BM25 index + a matrix of normalised embeddings, in one directory.

That directory is the artifact the pipeline logs to MLflow. `manifest.json` records the corpus
hash, the embedding model (name, key, version), the chunk count and a sha256 per file; loading
an index whose files or model do not match their manifest is refused (IndexMismatchError), so
a server never answers from a half-copied or foreign index.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bm25s
import numpy as np

from castml.knowledge.chunking import DEFAULT_MAX_CHARS, DEFAULT_OVERLAP, chunk_passages
from castml.knowledge.corpus_reader import corpus_hash, read_corpus
from castml.knowledge.embedding import DEFAULT_MODEL, Embedder, get_embedder, model_key
from castml.knowledge.kb_errors import IndexMismatchError
from castml.knowledge.passages import Chunk
from castml.knowledge.tokenizing import KnowledgeTokenizer

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CHUNKS = "chunks.jsonl"
EMBEDDINGS = "embeddings.npy"
BM25_DIR = "bm25"


def chunk_search_text(chunk: Chunk) -> str:
    """What BM25 and the embedding see: the title and heading carry much of a chunk's topic."""
    return f"{chunk.title}\n{chunk.section}\n{chunk.text}"


@dataclass
class KnowledgeIndex:
    chunks: list[Chunk]
    bm25: bm25s.BM25
    embeddings: np.ndarray  # (n_chunks, dim) float32, rows of unit length
    manifest: dict[str, Any]
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. a trained rescorer's weights

    @property
    def size(self) -> int:
        return len(self.chunks)


def build_index(
    chunks: list[Chunk],
    tokenizer: KnowledgeTokenizer,
    embedder: Embedder,
    corpus_digest: str,
    chunking: dict[str, int] | None = None,
) -> KnowledgeIndex:
    if not chunks:
        raise ValueError("cannot build an index over no chunks")
    texts = [chunk_search_text(c) for c in chunks]
    started = time.perf_counter()
    bm25 = bm25s.BM25()
    bm25.index(tokenizer.tokenize_many(texts), show_progress=False)
    embeddings = embedder.embed_passages(texts)
    manifest = {
        "format_version": FORMAT_VERSION,
        "corpus_hash": corpus_digest,
        "chunk_count": len(chunks),
        "embedding": {
            "key": model_key(embedder),
            "name": embedder.name,
            "version": embedder.version,
            "dim": int(embeddings.shape[1]),
        },
        "chunking": chunking or {"max_chars": DEFAULT_MAX_CHARS, "overlap": DEFAULT_OVERLAP},
        "documents": len({c.doc_id for c in chunks}),
        "build_seconds": round(time.perf_counter() - started, 3),
    }
    return KnowledgeIndex(chunks, bm25, embeddings, manifest)


def build_index_from_corpus(
    corpus_dir: Path,
    tokenizer: KnowledgeTokenizer,
    model: str = DEFAULT_MODEL,
    max_chars: int = DEFAULT_MAX_CHARS,
    overlap: int = DEFAULT_OVERLAP,
) -> KnowledgeIndex:
    """parse -> chunk -> tokenize + embed: the whole build from a corpus directory."""
    chunks = chunk_passages(read_corpus(corpus_dir), max_chars=max_chars, overlap=overlap)
    return build_index(
        chunks,
        tokenizer,
        get_embedder(model),
        corpus_hash(corpus_dir),
        chunking={"max_chars": max_chars, "overlap": overlap},
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _index_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)


def save_index(index: KnowledgeIndex, directory: Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / CHUNKS).open("w", encoding="utf-8") as out:
        for chunk in index.chunks:
            out.write(json.dumps(chunk.to_json(), ensure_ascii=False) + "\n")
    np.save(directory / EMBEDDINGS, index.embeddings.astype(np.float32), allow_pickle=False)
    index.bm25.save(str(directory / BM25_DIR), show_progress=False)
    for name, payload in index.extras.items():
        (directory / f"{name}.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    manifest = dict(index.manifest)
    manifest["files"] = {
        p.relative_to(directory).as_posix(): _sha256(p) for p in _index_files(directory)
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    index.manifest = manifest
    return directory


def _refuse(directory: Path, reason: str) -> IndexMismatchError:
    return IndexMismatchError(f"knowledge index at {directory} refused: {reason}")


def verify_index_dir(directory: Path, expect_corpus_hash: str | None = None) -> dict[str, Any]:
    """The manifest, after checking every file against it; raises IndexMismatchError."""
    directory = Path(directory)
    try:
        manifest: dict[str, Any] = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _refuse(directory, f"no {MANIFEST}") from None
    except ValueError as exc:
        raise _refuse(directory, f"{MANIFEST} is not valid JSON ({exc})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise _refuse(directory, f"format {manifest.get('format_version')} != {FORMAT_VERSION}")
    listed: dict[str, str] = manifest.get("files") or {}
    present = {p.relative_to(directory).as_posix() for p in _index_files(directory)}
    for name in sorted(set(listed) | present):
        if name not in present:
            raise _refuse(directory, f"{name} is listed in the manifest but missing")
        if name not in listed:
            raise _refuse(directory, f"{name} is not listed in the manifest")
        if _sha256(directory / name) != listed[name]:
            raise _refuse(directory, f"{name} does not match its sha256 in the manifest")
    if expect_corpus_hash is not None and manifest.get("corpus_hash") != expect_corpus_hash:
        raise _refuse(
            directory,
            f"corpus hash {manifest.get('corpus_hash')} != expected {expect_corpus_hash}",
        )
    return manifest


def load_index(directory: Path, expect_corpus_hash: str | None = None) -> KnowledgeIndex:
    directory = Path(directory)
    manifest = verify_index_dir(directory, expect_corpus_hash)
    with (directory / CHUNKS).open(encoding="utf-8") as lines:
        chunks = [Chunk.from_json(json.loads(line)) for line in lines if line.strip()]
    embeddings = np.load(directory / EMBEDDINGS, allow_pickle=False)
    bm25 = bm25s.BM25.load(str(directory / BM25_DIR), show_progress=False)
    count = manifest.get("chunk_count")
    if not (count == len(chunks) == embeddings.shape[0] == bm25.scores["num_docs"]):
        raise _refuse(
            directory,
            f"chunk count in manifest ({count}), chunks ({len(chunks)}), embeddings "
            f"({embeddings.shape[0]}) and BM25 ({bm25.scores['num_docs']}) differ",
        )
    emb = manifest.get("embedding", {})
    try:
        embedder = get_embedder(emb.get("key", DEFAULT_MODEL))
    except ValueError as exc:
        raise _refuse(directory, str(exc)) from None
    if (emb.get("name"), emb.get("version")) != (embedder.name, embedder.version):
        raise _refuse(
            directory,
            f"built with {emb.get('name')} {emb.get('version')}, but this process embeds "
            f"queries with {embedder.name} {embedder.version}",
        )
    extras = {
        p.stem: json.loads(p.read_text(encoding="utf-8"))
        for p in directory.glob("*.json")
        if p.name != MANIFEST
    }
    return KnowledgeIndex(chunks, bm25, embeddings, manifest, extras)
