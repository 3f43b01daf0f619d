"""Query enrichment: the prediction's top SHAP features and its out-of-range readings add
knowledge terms (feature_terms.yaml) to the search text. Normal ranges come from the spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from castml.knowledge.feature_terms import KnowledgeTerms
from castml.spec import ProjectSpec

TOP_FEATURES_USED = 3


@dataclass(frozen=True)
class Reading:
    """A feature value against the spec's normal range."""

    name: str
    value: float
    unit: str
    normal: tuple[float, float]
    rank: int | None  # position among the top SHAP features, None when not among them

    @property
    def direction(self) -> str | None:
        low, high = self.normal
        return "below" if self.value < low else "above" if self.value > high else None

    @property
    def target(self) -> float:
        return (self.normal[0] + self.normal[1]) / 2

    @property
    def deviation(self) -> float:
        """How far outside the range, in range widths (0 inside)."""
        low, high = self.normal
        width = max(high - low, 1e-12)
        return max(low - self.value, self.value - high, 0.0) / width


@dataclass(frozen=True)
class EnrichedQuery:
    original: str
    text: str  # what retrieval searches: the query and the added terms
    added_terms: tuple[str, ...]
    top_features: tuple[str, ...]
    readings: tuple[Reading, ...]  # out-of-range readings, most important first
    defects: frozenset[str]  # defect keys named by the query or implied by readings
    predicted_defect: bool | None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out else None  # NaN is no reading


def _predicted_defect(prediction: Any) -> bool | None:
    if isinstance(prediction, Mapping):
        prediction = prediction.get("class", prediction.get("label", prediction.get("prediction")))
    if isinstance(prediction, str):
        return prediction.strip().lower() in {"defect", "1", "ng", "불량"}
    number = _number(prediction)
    return None if number is None else number >= 0.5


def _readings(spec: ProjectSpec, context: Mapping[str, Any]) -> list[Reading]:
    features = {f.name: f for f in spec.features if f.normal is not None}
    values: dict[str, float] = {}
    raw_values = context.get("features") or {}
    if isinstance(raw_values, Mapping):
        for name, value in raw_values.items():
            number = _number(value)
            if name in features and number is not None:
                values[name] = number
    ranks: dict[str, int] = {}
    for rank, item in enumerate(context.get("top_features") or []):
        if not isinstance(item, Mapping) or item.get("name") not in features:
            continue
        name = str(item["name"])
        ranks.setdefault(name, rank)
        number = _number(item.get("value"))
        if number is not None:
            values.setdefault(name, number)
    readings = []
    for name, value in values.items():
        feature = features[name]
        assert feature.normal is not None
        readings.append(Reading(name, value, feature.unit, feature.normal, ranks.get(name)))
    return readings


def top_feature_names(context: Mapping[str, Any] | None) -> list[str]:
    names = []
    for item in (context or {}).get("top_features") or []:
        if isinstance(item, Mapping) and item.get("name"):
            names.append(str(item["name"]))
    return names


def enrich_query(
    query: str,
    context: Mapping[str, Any] | None,
    spec: ProjectSpec,
    terms: KnowledgeTerms,
    language: str,
) -> EnrichedQuery:
    context = context or {}
    readings = _readings(spec, context)
    outside = sorted(
        (r for r in readings if r.direction),
        key=lambda r: (r.rank if r.rank is not None else 99, -r.deviation),
    )
    top = top_feature_names(context)[:TOP_FEATURES_USED]
    defects = set(terms.defects_in(query))
    added: list[str] = []
    for name in top:
        added.extend(terms.feature_terms(name, language))
    for reading in outside:
        added.extend(terms.feature_terms(reading.name, language))
        spec_terms = terms.features.get(reading.name)
        if spec_terms is not None:
            implied = spec_terms.high if reading.direction == "above" else spec_terms.low
            defects.update(implied)
    # Implied defects only widen the search when the query itself names none.
    if not terms.defects_in(query):
        for defect in sorted(defects):
            added.extend(terms.defect_terms(defect, language)[:1])
    unique: list[str] = []
    for term in added:
        if term not in unique and term.lower() not in query.lower():
            unique.append(term)
    text = query if not unique else f"{query} {' '.join(unique)}"
    return EnrichedQuery(
        original=query,
        text=text,
        added_terms=tuple(unique),
        top_features=tuple(top),
        readings=tuple(outside),
        defects=frozenset(defects),
        predicted_defect=_predicted_defect(context.get("prediction")),
    )
