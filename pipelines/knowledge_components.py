"""KFP v2 components of the knowledge pipeline: thin shells over `castml.knowledge.kb_steps`.

No `from __future__ import annotations` here: KFP reads the real annotation objects.
Imports live inside the bodies: each body is what runs in the component's process.
"""

from typing import NamedTuple

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from pipelines.components import _component


@_component
def parse(
    corpus_dir: str,
    passages: Output[Dataset],
    queries: Output[Dataset],
) -> NamedTuple("Parsed", [("corpus_hash", str), ("documents", int)]):  # type: ignore[valid-type]
    """Markdown, HTML and PDF -> passages (document, page, section); the labelled queries.

    A document that cannot be read fails the run here, naming the file.
    """
    from collections import namedtuple
    from pathlib import Path

    from castml.knowledge.kb_steps import corpus_dir_or_default, parse_step

    parsed = parse_step(corpus_dir_or_default(corpus_dir), Path(passages.path), Path(queries.path))
    passages.metadata.update({"corpus_hash": parsed.corpus_hash, "count": parsed.passages})
    queries.metadata["count"] = parsed.queries
    print(f"parsed {parsed.documents} documents into {parsed.passages} passages", flush=True)
    Parsed = namedtuple("Parsed", ["corpus_hash", "documents"])  # KFP reads NamedTuple outputs
    return Parsed(parsed.corpus_hash, parsed.documents)


@_component
def chunk(
    project: str,
    chunk_max_chars: int,
    chunk_overlap: int,
    passages: Input[Dataset],
    chunks: Output[Dataset],
) -> None:
    """Sections -> overlapping windows (the spec's chunking unless overridden)."""
    from pathlib import Path

    from castml.knowledge.kb_gate import knowledge_settings
    from castml.knowledge.kb_steps import BuildOptions, chunk_step
    from castml.spec import load_spec

    settings = BuildOptions("", chunk_max_chars, chunk_overlap).resolved(
        knowledge_settings(load_spec(project))
    )
    count = chunk_step(
        Path(passages.path), Path(chunks.path), settings.chunk_max_chars, settings.chunk_overlap
    )
    chunks.metadata["count"] = count
    print(f"chunked into {count} chunks", flush=True)


@_component
def index(
    project: str,
    corpus_hash: str,
    embedding_model: str,
    chunk_max_chars: int,
    chunk_overlap: int,
    chunks: Input[Dataset],
    knowledge_index: Output[Model],
) -> None:
    """BM25 over kiwipiepy / stemmed tokens, and the offline embedding of every chunk."""
    from pathlib import Path

    from castml.knowledge.kb_gate import knowledge_settings
    from castml.knowledge.kb_steps import BuildOptions, index_step
    from castml.spec import load_spec

    settings = BuildOptions(embedding_model, chunk_max_chars, chunk_overlap).resolved(
        knowledge_settings(load_spec(project))
    )
    manifest = index_step(
        Path(chunks.path),
        Path(knowledge_index.path),
        corpus_hash,
        settings.embedding_model,
        settings.chunk_max_chars,
        settings.chunk_overlap,
    )
    knowledge_index.metadata.update(
        {"corpus_hash": corpus_hash, "embedding": manifest["embedding"]["name"]}
    )


@_component
def evaluate(
    project: str,
    mlflow_uri: str,
    knowledge_index: Input[Model],
    queries: Input[Dataset],
    metrics: Output[Metrics],
    evaluation: Output[Artifact],
) -> NamedTuple("Gate", [("passed", bool), ("verdict", str)]):  # type: ignore[valid-type]
    """The four retrievers side by side, the same on the @champion index; the gate."""
    from collections import namedtuple
    from pathlib import Path

    from castml.knowledge.kb_steps import evaluate_step

    result = evaluate_step(
        project, Path(knowledge_index.path), Path(queries.path), mlflow_uri, Path(evaluation.path)
    )
    for name, value in result.metrics.items():
        metrics.log_metric(name, round(value, 6))
    Gate = namedtuple("Gate", ["passed", "verdict"])  # KFP reads NamedTuple outputs
    return Gate(result.passed, result.verdict.tag)


@_component
def register(
    project: str,
    mlflow_uri: str,
    corpus_dir: str,
    embedding_model: str,
    chunk_max_chars: int,
    chunk_overlap: int,
    retrain_reason: str,
    pipeline_run_id: str,
    knowledge_index: Input[Model],
    evaluation: Input[Artifact],
) -> int:
    """Log the run, register `<project>-kb`, move @challenger (and a first @champion)."""
    from pathlib import Path

    from castml.knowledge.kb_gate import knowledge_settings
    from castml.knowledge.kb_steps import BuildOptions, corpus_dir_or_default, register_step
    from castml.spec import load_spec

    settings = BuildOptions(embedding_model, chunk_max_chars, chunk_overlap).resolved(
        knowledge_settings(load_spec(project))
    )
    registered = register_step(
        project,
        Path(knowledge_index.path),
        Path(evaluation.path),
        mlflow_uri,
        pipeline_run_id,
        retrain_reason,
        settings,
        str(corpus_dir_or_default(corpus_dir)),
    )
    aliases = ", ".join(f"@{a}" for a in registered.aliases) or "no alias"
    print(
        f"registered knowledge index version {registered.version} ({aliases}); "
        f"gate {registered.gate}",
        flush=True,
    )
    return registered.version
