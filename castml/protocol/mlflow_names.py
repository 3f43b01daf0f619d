"""Every MLflow name castml uses: experiments, the registered model, aliases, tags, artifacts.

DESIGN.md §4: experiment `castml/<project>`, monitoring runs in `castml/<project>/monitoring`,
registered model `<project>`, aliases `champion` (served) and `challenger` (passed the
gates), version and run tags under `castml.`.
"""

from __future__ import annotations

CHAMPION = "champion"
CHALLENGER = "challenger"
ALIASES = (CHAMPION, CHALLENGER)

# Model-version tags
TAG_DATA_HASH = "castml.data_hash"
TAG_PIPELINE_RUN = "castml.pipeline_run_id"
TAG_GATE = "castml.gate"
TAG_RETRAIN_REASON = "castml.retrain_reason"
TAG_PROMOTED_FROM = "castml.promoted_from"
TAG_RETRAIN_EVIDENCE = "castml.retrain_evidence"
TAG_RETRAIN_RUN = "castml.retrain_run_id"
TAG_DIGESTS = "castml.digests"  # sha256 of every served file (castml.model_digests)
TAG_DATA_PREFIX = "castml.data."  # lineage of the training data: source, uri, logged rows...
TAG_DATA_SOURCE = f"{TAG_DATA_PREFIX}source"
TAG_DATA_URI = f"{TAG_DATA_PREFIX}uri"
RETRAIN_REASONS = ("initial", "schedule", "drift", "performance", "manual")

# Run tags of monitoring runs (drift jobs, retrain data sets)
TAG_PROJECT = "castml.project"
TAG_MODEL_VERSION = "castml.model_version"
TAG_DRIFT_STATUS = "castml.drift.status"
TAG_DATASET_DRIFT = "castml.drift.dataset_drift"
TAG_DRIFT_RETRAIN = "castml.drift.retrain"  # the filed request's outcome: started, skipped...

# Artifacts inside a training run
MODEL_NAME = "model"  # the logged pyfunc model
MODEL_DIR_IN_PYFUNC = "artifacts/model"  # the model directory inside the pyfunc
REFERENCE_ARTIFACT = "reference/reference.parquet"  # drift reference: features, target, score
BACKGROUND_ARTIFACT = "explainer/background.npy"  # SHAP background, float32 [B, F]
REPORT_ARTIFACT = "evaluation/report.html"


def experiment_name(project: str) -> str:
    return f"castml/{project}"


def monitoring_experiment_name(project: str) -> str:
    return f"castml/{project}/monitoring"


def model_uri(project: str, version: str | int) -> str:
    """A pinned version's URI: serving loads `models:/<project>/N`, never `@alias`."""
    return f"models:/{project}/{version}"


# The knowledge base (T3): its retrieval index is a registered model of its own,
# `<project>-kb`, with the same aliases, gates and lineage tags as any project. A version
# is a pyfunc whose artifact `index` is the index directory (castml.knowledge.index_store);
# `castml.data_hash` holds the corpus hash.
KB_SUFFIX = "-kb"
INDEX_DIR_IN_PYFUNC = "artifacts/index"  # the index directory inside the pyfunc
KB_EVALUATION_ARTIFACT = "evaluation/retrievers.json"  # the four retrievers side by side


def kb_model_name(project: str) -> str:
    """`diecast` -> `diecast-kb`: the knowledge base's registered model."""
    return f"{project}{KB_SUFFIX}"
