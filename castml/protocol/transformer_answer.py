"""The transformer's public answer (DESIGN.md §4), once: pydantic models and their JSON schema.

One instance answers

    {"prediction": {"class", "probability", "confidence"} | {"value"},
     "latent_features", "processing_time_ms", "model_version", "request_id"}

(`class` for a classification project, `value` for a regression one); a batch answers
`{"predictions": [<one per instance>], "model_version", "request_id", "processing_time_ms"}`.
`answer_json_schema()` publishes it.

The transformer builds its answers with `instance_answers` and `batch_answer`: a
hand-built fast path of plain dicts in exactly these models' shape. Measured per
instance (12 latent values): plain dict + orjson 4.3 us; `model_validate` +
`model_dump_json` 11 us; `model_construct` + `model_dump` 9.5 us. A 4,096-row batch
would pay 20-30 ms more through pydantic (see `make bench` for the transformer's p50).
`tests/unit/serving/test_transformer_answer.py` checks what they build against the
models and the JSON schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Confidence = Literal["low", "medium", "high"]
CONFIDENCE_BANDS: tuple[Confidence, ...] = ("low", "medium", "high")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ClassPrediction(_Strict):
    """A classifier's decision for one instance."""

    class_name: str = Field(alias="class", description="The class name from the project spec.")
    probability: float = Field(
        ge=0.0, le=1.0, description="Probability of the positive class, rounded to 6 places."
    )
    confidence: Confidence = Field(
        description="How far the probability lies from the decision threshold (see "
        "serving.transformer): low, medium or high."
    )


class ValuePrediction(_Strict):
    """A regression model's prediction for one instance."""

    value: float = Field(description="The predicted value.")


class InstanceAnswer(_Strict):
    """The answer for one instance (and the whole answer to a `{"features": ...}` request)."""

    prediction: ClassPrediction | ValuePrediction
    latent_features: list[float] = Field(
        description=(
            "The AutoEncoder's latent vector of the instance (ae_gbm), rounded to 6 places; "
            "empty for a model family without one (gbm, xgboost)."
        )
    )
    processing_time_ms: float = Field(ge=0.0, description="Time the transformer took.")
    model_version: str = Field(
        pattern=r"^[^/]+/[^/]+$", description="`<project>/<version>` that answered."
    )
    request_id: str = Field(
        description="The request's id: the client's x-request-id, or one the transformer made; "
        "the predictor logged the request under it."
    )


class BatchAnswer(_Strict):
    """The answer to an `{"instances": [...]}` request."""

    predictions: list[InstanceAnswer]
    model_version: str = Field(pattern=r"^[^/]+/[^/]+$")
    request_id: str
    processing_time_ms: float = Field(ge=0.0)


TransformerAnswer = InstanceAnswer | BatchAnswer
ANSWER_ADAPTER: TypeAdapter[InstanceAnswer | BatchAnswer] = TypeAdapter(TransformerAnswer)


def answer_json_schema() -> dict[str, Any]:
    """The JSON schema of a `:predict` answer (one instance, or a batch)."""
    return ANSWER_ADAPTER.json_schema(by_alias=True)


def instance_answers(
    model_version: str,
    request_id: str,
    processing_time_ms: float,
    latent: list[list[float]],
    classes: Sequence[str] | None = None,
    probabilities: Sequence[float] | None = None,
    bands: Sequence[str] | None = None,
    values: Sequence[float] | None = None,
) -> list[dict[str, Any]]:
    """`InstanceAnswer`s as plain dicts (the hand-built fast path, see the module doc).

    Classification: `classes`, `probabilities` and `bands`; regression: `values`.
    """
    common = {
        "model_version": model_version,
        "request_id": request_id,
        "processing_time_ms": processing_time_ms,
    }
    if values is not None:
        return [
            {"prediction": {"value": v}, "latent_features": lat, **common}
            for v, lat in zip(values, latent, strict=True)
        ]
    if classes is None or probabilities is None or bands is None:
        raise ValueError("a classification answer needs classes, probabilities and bands")
    return [
        {
            "prediction": {"class": c, "probability": p, "confidence": band},
            "latent_features": lat,
            **common,
        }
        for c, p, band, lat in zip(classes, probabilities, bands, latent, strict=True)
    ]


def batch_answer(instances: list[dict[str, Any]]) -> dict[str, Any]:
    """A `BatchAnswer` as a plain dict, from `instance_answers`' output (at least one)."""
    first = instances[0]
    return {
        "predictions": instances,
        "model_version": first["model_version"],
        "request_id": first["request_id"],
        "processing_time_ms": first["processing_time_ms"],
    }


if __name__ == "__main__":  # publish: python -m castml.protocol.transformer_answer > schema.json
    import json

    print(json.dumps(answer_json_schema(), indent=2))
