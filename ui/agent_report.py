"""What the assistant agent answers: pydantic models with a JSON form (`model_dump(mode="json")`,
`model_json_schema()`).

`AgentReport` is one shot's report: prediction, the top features against their normal
ranges, the cited root-cause answer, recommendations, the versions that answered and each
step's timing. `AgentAnswer` answers a free question. A step that failed is named in
`steps` with the reason in plain words; the parts it would have filled stay empty.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

StepName = Literal["predict", "explain", "knowledge"]
StepStatus = Literal["ok", "failed", "skipped"]
RangeStatus = Literal["below", "normal", "above"]
Confidence = Literal["low", "medium", "high"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)


class StepResult(_Model):
    """One call of the agent: which server, how it went, how long it took."""

    step: StepName
    status: StepStatus
    url: str = Field(description="The endpoint called.")
    elapsed_ms: float = Field(ge=0, description="Wall time of the step, retries included.")
    attempts: int = Field(ge=0, description="Calls made (1 + retries used); 0 when skipped.")
    error: str | None = Field(
        None, description="Why the step failed or was skipped, in plain words; None when ok."
    )
    http_status: int | None = Field(None, description="The server's status code, if it answered.")


class Prediction(_Model):
    """The transformer's decision for the shot."""

    class_name: str = Field(alias="class", description="Class name from the project spec.")
    probability: float = Field(ge=0, le=1, description="Probability of the positive class.")
    confidence: Confidence
    threshold: float | None = Field(None, description="Decision threshold, when known.")
    latent_features: list[float] = Field(default_factory=list)
    processing_time_ms: float = Field(ge=0, description="Time the transformer took.")


class FeatureReading(_Model):
    """One feature's value set against the spec's normal range (and its SHAP attribution)."""

    name: str
    value: float
    unit: str = ""
    description: str = ""
    normal: tuple[float, float] | None = Field(None, description="The spec's normal range.")
    bounds: tuple[float, float] | None = Field(None, description="The spec's hard bounds.")
    status: RangeStatus = Field(description="Where the value lies against the normal range.")
    deviation: float = Field(
        0.0, ge=0, description="How far outside the normal range, in range widths (0 inside)."
    )
    attribution: float | None = Field(
        None, description="SHAP attribution to the probability; None without the explainer."
    )


class Explanation(_Model):
    """The explainer's attribution of the shot, for a chart (e.g. a waterfall)."""

    method: str
    base_value: float
    prediction: float
    attributions: dict[str, float] = Field(description="Every raw feature's attribution.")
    processing_time_ms: float = Field(ge=0)


class Source(BaseModel):
    """A cited passage: document plus page (PDF) or section."""

    # The knowledge base may add keys later; a source stays readable.
    model_config = ConfigDict(extra="ignore")

    document: str
    page: int | None = None
    section: str | None = None
    relevance: float
    title: str | None = None
    id: str | None = None

    @property
    def where(self) -> str:
        return f"p. {self.page}" if self.page is not None else f"§ {self.section or '-'}"


class CitedAnswer(_Model):
    """The knowledge base's answer, citing its sources."""

    answer: str
    sources: list[Source] = Field(default_factory=list)
    recommendations: list[str] = Field(default_factory=list)
    language: str
    language_note: str | None = None
    no_answer: bool = Field(description="True when the knowledge base had no good answer.")


class ModelVersions(_Model):
    """`<name>/<version>` of each model that answered; None where its step failed."""

    predictor: str | None = Field(None, description="Served by the transformer's predictor.")
    explainer: str | None = Field(None, description="The version the explainer explained.")
    knowledge: str | None = Field(None, description="The knowledge index, `<project>-kb/N`.")


class AgentReport(_Model):
    """One shot, through predict -> explain -> knowledge."""

    project: str
    request_id: str = Field(description="Sent as x-request-id to every step (one trail).")
    language: str = Field(description="The language the answer was asked in.")
    question: str = Field(description="What the knowledge base was asked.")
    features: dict[str, Any] = Field(description="The shot as sent.")
    prediction: Prediction | None = None
    top_features: list[FeatureReading] = Field(
        default_factory=list,
        description="By |attribution| (explainer); without it, the readings furthest outside "
        "their normal range.",
    )
    out_of_range: list[FeatureReading] = Field(
        default_factory=list, description="Every reading outside its normal range, worst first."
    )
    explanation: Explanation | None = None
    answer: CitedAnswer | None = None
    recommendations: list[str] = Field(
        default_factory=list,
        description="The knowledge base's; without it, the spec's normal ranges (same wording).",
    )
    recommendations_from: Literal["knowledge", "spec", "none"] = "none"
    versions: ModelVersions = Field(default_factory=ModelVersions)
    steps: list[StepResult] = Field(description="predict, explain, knowledge: in that order.")
    total_ms: float = Field(ge=0, description="Wall time of the whole report.")

    @property
    def complete(self) -> bool:
        """Every step answered."""
        return all(s.status == "ok" for s in self.steps)

    @property
    def failed(self) -> list[StepResult]:
        return [s for s in self.steps if s.status != "ok"]

    def step(self, name: StepName) -> StepResult:
        return next(s for s in self.steps if s.step == name)

    def context(self) -> dict[str, Any]:
        """The knowledge base's `context` for this shot (what a follow-up question carries)."""
        context: dict[str, Any] = {"features": self.features}
        if self.prediction is not None:
            context["prediction"] = {
                "class": self.prediction.class_name,
                "probability": self.prediction.probability,
                "confidence": self.prediction.confidence,
            }
        top = [
            {"name": f.name, "value": f.value, "attribution": f.attribution}
            for f in self.top_features
            if f.attribution is not None
        ]
        if top:
            context["top_features"] = top
        return context


class AgentAnswer(_Model):
    """A free question, asked of the knowledge base (with a shot as context when there is one)."""

    question: str
    language: str | None = Field(None, description="The language asked for; None: detected.")
    context_request_id: str | None = Field(
        None, description="The report whose shot was the context; None without one."
    )
    answer: CitedAnswer | None = None
    knowledge_version: str | None = None
    step: StepResult
    total_ms: float = Field(ge=0)

    @property
    def ok(self) -> bool:
        return self.step.status == "ok"
