"""The knowledge pipeline: parse -> chunk -> index (BM25 + embeddings) -> evaluate -> register.

No `from __future__ import annotations`: KFP reads the real annotation objects.
`corpus_dir` empty: the corpus packaged with castml (castml/knowledge/corpus). The build
knobs (embedding model, chunking) empty/0: the spec's `knowledge:` block.
"""

from typing import cast

from kfp import dsl

from pipelines import knowledge_components as steps

PIPELINE_NAME = "castml-knowledge"


@dsl.pipeline(  # type: ignore[untyped-decorator]
    name=PIPELINE_NAME,
    description="Build, gate and register a castml project's knowledge index.",
)
def knowledge_pipeline(
    project: str = "diecast",
    mlflow_uri: str = "http://mlflow.castml.svc.cluster.local:5000",
    corpus_dir: str = "",
    retrain_reason: str = "manual",
    embedding_model: str = "",
    chunk_max_chars: int = 0,
    chunk_overlap: int = 0,
) -> int:
    parsed = steps.parse(corpus_dir=corpus_dir)
    chunked = steps.chunk(
        project=project,
        chunk_max_chars=chunk_max_chars,
        chunk_overlap=chunk_overlap,
        passages=parsed.outputs["passages"],
    )
    indexed = steps.index(
        project=project,
        corpus_hash=parsed.outputs["corpus_hash"],
        embedding_model=embedding_model,
        chunk_max_chars=chunk_max_chars,
        chunk_overlap=chunk_overlap,
        chunks=chunked.outputs["chunks"],
    )
    evaluated = steps.evaluate(
        project=project,
        mlflow_uri=mlflow_uri,
        knowledge_index=indexed.outputs["knowledge_index"],
        queries=parsed.outputs["queries"],
    )
    registered = steps.register(
        project=project,
        mlflow_uri=mlflow_uri,
        corpus_dir=corpus_dir,
        embedding_model=embedding_model,
        chunk_max_chars=chunk_max_chars,
        chunk_overlap=chunk_overlap,
        retrain_reason=retrain_reason,
        pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        knowledge_index=indexed.outputs["knowledge_index"],
        evaluation=evaluated.outputs["evaluation"],
    )
    return cast(int, registered.output)
