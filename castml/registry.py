"""MLflow names and registry operations: the contract of DESIGN.md §4.

Experiment `castml/<project>`, registered model `<project>`, aliases `champion`
(serving) and `challenger` (passed the gates), version tags `castml.*`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from castml.errors import MlflowUnavailableError, RegistryError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

# The names live in the protocol; re-exported so that `registry.CHAMPION` keeps reading well.
from castml.protocol.mlflow_names import (
    ALIASES,
    BACKGROUND_ARTIFACT,
    CHALLENGER,
    CHAMPION,
    MODEL_DIR_IN_PYFUNC,
    MODEL_NAME,
    REFERENCE_ARTIFACT,
    REPORT_ARTIFACT,
    RETRAIN_REASONS,
    TAG_DATA_HASH,
    TAG_GATE,
    TAG_PIPELINE_RUN,
    TAG_PROMOTED_FROM,
    TAG_RETRAIN_REASON,
    experiment_name,
    monitoring_experiment_name,
)

__all__ = [
    "ALIASES",
    "BACKGROUND_ARTIFACT",
    "CHALLENGER",
    "CHAMPION",
    "MODEL_DIR_IN_PYFUNC",
    "MODEL_NAME",
    "REFERENCE_ARTIFACT",
    "REPORT_ARTIFACT",
    "RETRAIN_REASONS",
    "TAG_DATA_HASH",
    "TAG_GATE",
    "TAG_PIPELINE_RUN",
    "TAG_PROMOTED_FROM",
    "TAG_RETRAIN_REASON",
    "experiment_name",
    "monitoring_experiment_name",
]


def ensure_reachable(uri: str, timeout_s: float = 10.0) -> None:
    """Fail fast, naming the URI, instead of letting MLflow retry for minutes."""
    if not uri.startswith(("http://", "https://")):
        return  # file/sqlite stores: nothing to reach
    try:
        response = httpx.get(f"{uri.rstrip('/')}/health", timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise MlflowUnavailableError(uri, f"{type(exc).__name__}: {exc}") from exc
    if response.status_code != 200:
        raise MlflowUnavailableError(uri, f"/health answered {response.status_code}")


def client(uri: str, timeout_s: float = 10.0) -> MlflowClient:
    from mlflow import MlflowClient

    ensure_reachable(uri, timeout_s)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def alias_version(mlflow_client: MlflowClient, project: str, alias: str) -> ModelVersion | None:
    """The version behind `alias`, or None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(project, alias)
    except MlflowException:
        return None


def resolve_version(mlflow_client: MlflowClient, project: str, ref: str | int) -> ModelVersion:
    """A concrete version from `3`, `champion` or `@champion`: what serving pins."""
    from mlflow.exceptions import MlflowException

    text = str(ref).lstrip("@")
    if text.isascii() and text.isdigit():
        try:
            return mlflow_client.get_model_version(project, text)
        except MlflowException as exc:
            raise RegistryError(f"model '{project}' has no version {text}") from exc
    found = alias_version(mlflow_client, project, text)
    if found is None:
        raise RegistryError(f"model '{project}' has no alias @{text}")
    return found


@dataclass(frozen=True)
class VersionRow:
    version: int
    aliases: list[str]
    gate: str
    reason: str
    data_hash: str
    run_id: str
    created_ms: int


def list_versions(mlflow_client: MlflowClient, project: str) -> list[VersionRow]:
    versions = mlflow_client.search_model_versions(f"name='{project}'")
    # Search results carry no aliases (MLflow 3); the registered model has them all.
    by_version: dict[str, list[str]] = {}
    if versions:
        for alias, version in mlflow_client.get_registered_model(project).aliases.items():
            by_version.setdefault(str(version), []).append(alias)
    rows = [
        VersionRow(
            version=int(v.version),
            aliases=sorted(by_version.get(str(v.version), [])),
            gate=v.tags.get(TAG_GATE, ""),
            reason=v.tags.get(TAG_RETRAIN_REASON, ""),
            data_hash=v.tags.get(TAG_DATA_HASH, ""),
            run_id=v.run_id or "",
            created_ms=int(v.creation_timestamp or 0),
        )
        for v in versions
    ]
    return sorted(rows, key=lambda r: r.version)


def promotion_candidate(mlflow_client: MlflowClient, project: str) -> VersionRow | None:
    """What a model owner would promote next: a passed, non-champion version, @challenger first."""
    rows = list_versions(mlflow_client, project)
    champion = next((r.version for r in rows if CHAMPION in r.aliases), None)
    passed = [r for r in rows if r.version != champion and r.gate.startswith("passed")]
    return max(passed, key=lambda r: (CHALLENGER in r.aliases, r.version), default=None)


def download_model_dir(project: str, version: int | str, dest: Path, tracking_uri: str) -> Path:
    """Download a registered version and return its model directory."""
    import mlflow.artifacts
    from mlflow import MlflowClient

    # Resolve through an explicit client: `models:/` URIs would use the process-wide
    # registry URI, which defaults to a local SQLite file, not this server.
    source = MlflowClient(tracking_uri, registry_uri=tracking_uri).get_model_version_download_uri(
        project, str(version)
    )
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=source, dst_path=str(dest), tracking_uri=tracking_uri
    )
    return Path(local) / MODEL_DIR_IN_PYFUNC
