"""Settings of the monitoring deployables (`CASTML_` prefix), one class each.

The collector, the drift job and the retrain policy run as separate processes in a
cluster (Deployment, CronJob, Deployment), so each reads only what it needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import Field

from castml.settings import PlatformSettings, load_settings

S = TypeVar("S", bound=PlatformSettings)
GAUGES_GLOB = "drift-*.prom"
# The forecast job's textfiles (serving.forecast_metrics) share the metrics folder: it is a
# CronJob too, and the collector serves both on its /metrics.
TEXTFILE_GLOBS = (GAUGES_GLOB, "forecast-*.prom")


def gauges_file(directory: Path, project: str) -> Path:
    """The drift job's textfile for one project (matches GAUGES_GLOB)."""
    return directory / f"drift-{project}.prom"


class CollectorSettings(PlatformSettings):
    """The payload collector: KServe logger CloudEvents and delayed labels -> Parquet."""

    collector_host: str = Field(
        "127.0.0.1", description="Interface the collector binds (loopback by default)."
    )
    collector_port: int = Field(8090, description="Port of the collector's HTTP server.")
    collector_token: str | None = Field(
        None,
        description="Bearer token every ingest endpoint requires. Unset together with the "
        "HMAC key: the collector refuses to start (no anonymous ingest).",
    )
    collector_hmac_key: str | None = Field(
        None,
        description="Shared key for `X-Castml-Signature: sha256=<hex>` over the raw body, accepted "
        "instead of the bearer token.",
    )
    collector_queue_size: int = Field(
        10_000, description="Events held in memory before the collector answers 503 + Retry-After."
    )
    collector_batch_rows: int = Field(5_000, description="Rows per Parquet file, at most.")
    collector_flush_s: float = Field(
        2.0, description="Seconds between Parquet flushes; also bounds how stale the files are."
    )
    collector_orphan_s: float = Field(
        60.0,
        description="Seconds a request waits for its response (or the reverse) before it is "
        "written as an orphan.",
    )
    collector_retry_after_s: int = Field(1, description="Retry-After seconds on a 503.")
    collector_max_body_bytes: int = Field(
        8 * 1024 * 1024,
        description="Larger ingest bodies (events, feedback) answer 413 before they are parsed.",
    )
    collector_default_project: str = Field(
        "diecast", description="Project of feedback posts that name none."
    )
    collector_spec_files: list[Path] = Field(
        default_factory=list,
        description="Spec files (YAML paths, a JSON list) of projects that are not bundled: "
        "their traffic is logged too, by the name each spec holds.",
    )
    collector_wal_dir: Path | None = Field(
        None, description="Write-ahead log folder. Unset: <home>/collector-wal."
    )
    collector_dedupe_keys: int = Field(
        1_000_000, description="Recent event keys kept to answer duplicates idempotently."
    )
    collector_trust_network_ingest: bool = Field(
        False,
        description="Accept CloudEvents on `/` and `/v1/events` without credentials. Only for a "
        "cluster where a NetworkPolicy admits nothing but the predictor/transformer pods: the "
        "KServe logger sidecar cannot send a token or a signature. `/v1/feedback` and "
        "`/v1/retrain` stay authenticated either way.",
    )
    drift_metrics_dir: Path | None = Field(
        None,
        description="Folder of the drift job's Prometheus textfiles, appended to `/metrics`. "
        "Unset: <home>/metrics.",
    )

    @property
    def wal_dir(self) -> Path:
        return (self.collector_wal_dir or self.home / "collector-wal").resolve()

    @property
    def gauges_dir(self) -> Path:
        return (self.drift_metrics_dir or self.home / "metrics").resolve()


class DriftSettings(PlatformSettings):
    """The drift job: a window of logged traffic against the champion's reference sample."""

    drift_method: str = Field(
        "ks",
        description="Evidently stat test for every feature (ks: p-value, so the spec's "
        "stattest_threshold reads as a significance level). Empty: Evidently's choice by size.",
    )
    drift_score_method: str = Field(
        "ks", description="Stat test for prediction drift on the model's score."
    )
    drift_category_method: str = Field(
        "chisquare",
        description="Stat test for categorical and bool features (chisquare: a p-value, read "
        "against the spec's stattest_threshold like ks). Empty: Evidently's choice by size.",
    )
    drift_metrics_dir: Path | None = Field(
        None,
        description="Folder of the Prometheus textfiles, one per project "
        "(`drift-<project>.prom`, so the per-project CronJobs never overwrite one another); "
        "the collector serves them on its `/metrics`. Unset: <home>/metrics.",
    )

    drift_retrain_url: str | None = Field(
        None,
        description="The retrain endpoint the drift job files its requests with, e.g. "
        "http://<collector>:8080/v1/retrain. Unset: `castml drift run` asks the policy in its "
        "own process; a job with neither files nothing and says so in its result.",
    )
    retrain_token: str | None = Field(
        None, description="Bearer token of the retrain endpoint (its CASTML_RETRAIN_TOKEN)."
    )
    drift_retrain_timeout_s: float = Field(
        30.0, description="Seconds the drift job waits for the retrain endpoint's decision."
    )

    def metrics_path(self, project: str) -> Path:
        return gauges_file((self.drift_metrics_dir or self.home / "metrics").resolve(), project)


class RetrainSettings(PlatformSettings):
    """The retrain policy and its HTTP endpoint (also the Alertmanager webhook receiver)."""

    retrain_host: str = Field("127.0.0.1", description="Interface the retrain endpoint binds.")
    retrain_port: int = Field(8091, description="Port of the retrain endpoint.")
    retrain_token: str | None = Field(
        None, description="Bearer token the retrain endpoint requires (refuses to start without)."
    )
    retrain_max_run_hours: float = Field(
        6.0, description="A started run older than this no longer counts as in flight (dedupe)."
    )
    kfp_host: str | None = Field(
        None, description="KFP API endpoint: set, retrains are submitted there; unset, kfp.local."
    )

    @property
    def decisions_dir(self) -> Path:
        return self.home.resolve() / "retrain"


def from_env(cls: type[S], **wiring: object) -> S:
    """`cls` from the environment and the CLI's wiring, validated (castml.settings)."""
    return load_settings(cls, **wiring)
