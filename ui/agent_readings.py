"""A shot's readings against the spec: normal ranges, units, bounds, and the out-of-range ones.

The spec (castml.spec) is the one source of the ranges; the wording of a fallback
recommendation is the knowledge base's own (castml.knowledge.recommendations), so a
report reads the same whether the knowledge base answered or not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from castml.knowledge.query_enrichment import Reading
from castml.knowledge.recommendations import recommendations
from castml.spec import Feature, ProjectSpec
from ui.agent_report import FeatureReading


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def reading(feature: Feature, value: float, attribution: float | None = None) -> FeatureReading:
    normal = feature.normal
    status, deviation = "normal", 0.0
    if normal is not None:
        low, high = normal
        status = "below" if value < low else "above" if value > high else "normal"
        deviation = max(low - value, value - high, 0.0) / max(high - low, 1e-12)
    return FeatureReading(
        name=feature.name,
        value=value,
        unit=feature.unit,
        description=feature.description,
        normal=normal,
        bounds=feature.declared_bounds,
        status=status,
        deviation=round(deviation, 6),
        attribution=attribution,
    )


class ShotReadings:
    """The spec's view of one shot's numeric values."""

    def __init__(self, spec: ProjectSpec, shot: Mapping[str, Any]) -> None:
        self.spec = spec
        self.features = {f.name: f for f in spec.features if f.is_numeric}
        self.values: dict[str, float] = {}
        for name, raw in shot.items():
            number = _number(raw)
            if name in self.features and number is not None:
                self.values[name] = number

    def of(
        self, name: str, value: float | None = None, attribution: float | None = None
    ) -> FeatureReading | None:
        feature = self.features.get(name)
        value = self.values.get(name) if value is None else value
        if feature is None or value is None:
            return None
        return reading(feature, value, attribution)

    def out_of_range(self) -> list[FeatureReading]:
        """Every reading outside its normal range, furthest first."""
        found = [r for r in (self.of(n) for n in self.values) if r and r.status != "normal"]
        return sorted(found, key=lambda r: -r.deviation)

    def top(self, explained: Iterable[Mapping[str, Any]], k: int) -> list[FeatureReading]:
        """The explainer's top features (`{"feature", "value", "attribution"}`), as readings."""
        out = []
        for item in explained:
            name = item.get("feature", item.get("name"))
            attribution = _number(item.get("attribution"))
            value = _number(item.get("value"))
            found = self.of(str(name), value, attribution) if name is not None else None
            if found is not None:
                out.append(found)
        return out[:k]

    def recommendations(self, first: list[FeatureReading], language: str) -> list[str]:
        """The spec's recommendations for the out-of-range readings, `first` (top features)
        first, worded as the knowledge base words them."""
        ordered: list[FeatureReading] = []
        for r in [*first, *self.out_of_range()]:
            if r.status != "normal" and all(o.name != r.name for o in ordered):
                ordered.append(r)
        readings = [Reading(r.name, r.value, r.unit, r.normal, None) for r in ordered if r.normal]
        return recommendations(readings, language)
