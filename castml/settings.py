"""Settings from the environment (`CASTML_` prefix), one class per deployable.

CLI flags only wire processes together; everything that differs between the
embedded mode and a cluster is configured here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PlatformSettings(BaseSettings):
    """What every castml process shares: where state lives and where MLflow is."""

    model_config = SettingsConfigDict(env_prefix="CASTML_", extra="ignore")

    home: Path = Field(
        Path(".castml"),
        description="Root of embedded-mode state: MLflow DB and artifacts, logs, pipeline runs.",
    )
    mlflow_uri: str | None = Field(
        None,
        description="MLflow tracking URI. Unset: the embedded server at http://<mlflow_host>:<mlflow_port>.",
    )
    mlflow_host: str = Field(
        "127.0.0.1", description="Interface the embedded MLflow server binds (loopback by default)."
    )
    mlflow_port: int = Field(5000, description="Port of the embedded MLflow server.")
    mlflow_timeout_s: float = Field(
        10.0, description="Seconds to wait for MLflow to answer before calling it unreachable."
    )
    debug: bool = Field(
        False, description="Show the traceback of an error a user caused, not one red line."
    )

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_uri or f"http://{self.mlflow_host}:{self.mlflow_port}"

    @property
    def mlflow_dir(self) -> Path:
        return self.home.resolve() / "mlflow"

    @property
    def logs_dir(self) -> Path:
        """The payload log (Parquet, `<project>/<version>/date=...`): the collector writes
        it, the drift job, the retrain's training set and lineage read it."""
        return self.home.resolve() / "logs"


S = TypeVar("S", bound=PlatformSettings)


def load_settings(cls: type[S], **wiring: object) -> S:
    """`cls` from the environment, with process-wiring overrides (CLI flags; None = unset).

    The overrides go through the same validation as the environment: a port flag of
    "abc" is refused here, not at bind time.
    """
    overrides: dict[str, Any] = {k: v for k, v in wiring.items() if v is not None}
    return cls(**overrides)


class PipelineSettings(PlatformSettings):
    """The training pipeline: how it runs locally and where a KFP API lives."""

    profile: str | None = Field(
        None,
        description="Hyper-parameter profile from the spec (e.g. `fast`); unset: full training.",
    )
    kfp_host: str | None = Field(
        None, description="KFP API endpoint for submit/schedule (cluster mode)."
    )
    pipeline_image: str = Field(
        "ghcr.io/castml/pipeline:0.1.0",
        description="Container image the KFP components run in on a cluster.",
    )
    pipeline_root: Path | None = Field(
        None, description="Where kfp.local keeps artifacts. Unset: <home>/pipeline-runs."
    )

    @property
    def local_pipeline_root(self) -> Path:
        return (self.pipeline_root or self.home / "pipeline-runs").resolve()
