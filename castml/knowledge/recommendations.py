"""Recommendations from the readings: feature, value, the spec's normal range, a target."""

from __future__ import annotations

from collections.abc import Sequence

from castml.knowledge.query_enrichment import Reading

_UNITS = {"degC": "°C"}
MAX_RECOMMENDATIONS = 5


def _num(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"


def _unit(unit: str) -> str:
    shown = _UNITS.get(unit, unit)
    return f" {shown}" if shown else ""


def recommend(reading: Reading, language: str) -> str:
    unit = _unit(reading.unit)
    low, high = reading.normal
    value, target = _num(reading.value), _num(reading.target)
    span = f"{_num(low)}–{_num(high)}{unit}"
    if language == "ko":
        side = "높습니다" if reading.direction == "above" else "낮습니다"
        return (
            f"{reading.name} {value}{unit}은(는) 정상 범위 {span}보다 {side}: "
            f"{target}{unit} 쪽으로 되돌리세요."
        )
    return (
        f"{reading.name} {value}{unit} is {reading.direction} its normal {span}: "
        f"bring it back toward {target}{unit}."
    )


def recommendations(readings: Sequence[Reading], language: str) -> list[str]:
    """One line per out-of-range reading, top SHAP features first (the order given)."""
    return [recommend(r, language) for r in readings if r.direction][:MAX_RECOMMENDATIONS]
