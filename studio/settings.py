"""The studio's settings (`CASTML_STUDIO_*`, plus the platform's `CASTML_HOME` and MLflow).

One class for the one deployable. Everything the AI report states as an assumption (the
ROI inputs) and every alert threshold lives here, so a number in a report can always be
traced to a setting or a metric.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from castml.llm_chat import ChatClient, LlmSettings

DEFAULT_FONT = Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf")


# Below this many clicks in the holdout an AUC's bootstrap CI means little: the drafted
# spec's gate (`gates.min_positives`) and the AI report both say so.
MIN_HOLDOUT_CLICKS = 30


class StudioSettings(LlmSettings):
    """The studio API: upload, train, runs, reports, PDF, performance, alerts."""

    studio_host: str = Field("127.0.0.1", description="Interface the studio binds (loopback).")
    studio_port: int = Field(8000, description="Port (8000: what the frontend's proxy expects).")
    studio_token: str | None = Field(
        None,
        description="Bearer token the write endpoints (upload, train, generate-pdf) require. "
        "Unset: accepted only on a loopback bind, with a warning at start-up.",
    )
    studio_cors_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:3000"],
        description="Origins allowed by CORS (JSON list in the environment).",
    )
    studio_max_upload_bytes: int = Field(
        50 * 1024 * 1024, description="Largest upload body; larger answers 413 unread."
    )
    studio_data_dir: Path | None = Field(
        None, description="Uploads, drafted specs, run files and PDFs. Unset: <home>/studio."
    )
    studio_max_trainings: int = Field(
        2, description="Trainings running at once; one more answers 503 with Retry-After."
    )
    studio_kfp_host: str | None = Field(
        None,
        description="KFP API (e.g. http://ml-pipeline.kubeflow:8888) that runs the training "
        "pipeline; unset: kfp.local in a child process on this machine. The pods read the "
        "upload and its spec from the run's MLflow artifacts, so the tracking URI must be "
        "one they can reach.",
    )
    studio_poll_s: float = Field(
        0.5, description="How often a training's MLflow run is read for new epochs."
    )
    studio_accuracy_alert: float = Field(
        0.7, description="performance_alert when the served model's accuracy falls below."
    )
    studio_response_alert_ms: float = Field(
        500.0, description="performance_alert when the served model's response time exceeds."
    )
    studio_metrics_interval_s: float = Field(
        2.0, description="Seconds between two messages on /ws/performance."
    )
    studio_latency_probes: int = Field(
        20, description="Predictions timed to measure a served model's response time."
    )
    studio_impressions_per_month: float = Field(
        1_000_000.0, description="ROI assumption: impressions the client serves a month."
    )
    studio_revenue_per_click: float = Field(
        0.5, description="ROI assumption: revenue one click brings, in the report's currency."
    )
    studio_targeted_share: float = Field(
        0.2,
        description="ROI assumption: share of impressions shown to the model's top-scored "
        "users (the lift of that top share is the ROI increase).",
    )
    studio_min_holdout_clicks: int = Field(
        MIN_HOLDOUT_CLICKS,
        description="Clicks the holdout must hold before the AI report claims a signal: "
        "with fewer, an AUC and its bootstrap CI rest on a handful of rows, and the report "
        "says no usable signal, naming the count.",
    )
    studio_currency: str = Field("USD", description="Currency the ROI figures are stated in.")
    # The AI report's LLM: the platform's CASTML_LLM_* (castml.llm_chat.LlmSettings), unless
    # these studio-only names, which the chart sets, name another endpoint for the studio.
    studio_llm_url: str | None = Field(
        None,
        description="OpenAI-compatible chat endpoint (base URL) that may rewrite the AI "
        "report's narrative; wins over CASTML_LLM_BASE_URL. Unset, as that: the "
        "deterministic report only.",
    )
    studio_llm_model: str | None = Field(
        None, description="Model name sent to the studio's LLM. Unset: CASTML_LLM_MODEL."
    )
    studio_llm_api_key: SecretStr | None = Field(
        None,
        description="Bearer key for CASTML_STUDIO_LLM_URL (never logged); with that unset, "
        "CASTML_LLM_API_KEY goes with CASTML_LLM_BASE_URL.",
    )
    studio_font_path: Path = Field(
        DEFAULT_FONT, description="TTF embedded in PDFs so that Korean renders (fonts-nanum)."
    )
    studio_family: Literal["auto", "lstm_seq", "gbm"] = Field(
        "auto",
        description="Model family a new upload's draft spec names; auto: lstm_seq when the "
        "upload has streams (an *_id or position column and a time column), else gbm.",
    )
    studio_serve_models: bool = Field(
        True,
        description="Measure response_time on a started predictor (python -m serving); "
        "false: on the model's pyfunc in process.",
    )

    @property
    def data_dir(self) -> Path:
        return (self.studio_data_dir or self.home / "studio").resolve()

    def report_llm(self) -> ChatClient | None:
        """The AI report's LLM client, or None: no endpoint configured for the studio."""
        if self.studio_llm_url:  # a key belongs to its endpoint: never the shared one here
            url, key = self.studio_llm_url, self.studio_llm_api_key
        elif self.llm_base_url:
            url, key = self.llm_base_url, self.llm_api_key
        else:
            return None
        return ChatClient(url, self.studio_llm_model or self.llm_model, key, self.llm_timeout_s)

    @property
    def binds_loopback(self) -> bool:
        if self.studio_host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.studio_host).is_loopback
        except ValueError:
            return False
