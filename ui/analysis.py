"""The Analysis tab's content, without Streamlit: top features against their normal ranges,
interactive SHAP charts (plotly), and a short reading in words."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import plotly.graph_objects as go

from ui.i18n import Language, t
from ui.service_calls import Explanation
from ui.shot_form import FormField, format_value

Status = Literal["low", "high", "normal"]
TOP_K = 10
UP_COLOUR = "#d62728"  # pushes towards defect
DOWN_COLOUR = "#1f77b4"


@dataclass(frozen=True)
class TopFeature:
    feature: str
    value: float
    attribution: float
    unit: str
    normal: tuple[float, float] | None
    status: Status


def status_of(value: float, normal: tuple[float, float] | None) -> Status:
    if normal is None or normal[0] <= value <= normal[1]:
        return "normal"
    return "low" if value < normal[0] else "high"


def top_features(
    explanation: Explanation, fields: dict[str, FormField], k: int = TOP_K
) -> list[TopFeature]:
    """The `k` largest attributions by magnitude (ties in spec order), each with its range."""
    order = sorted(explanation.attributions.items(), key=lambda kv: -abs(kv[1]))[:k]
    rows = []
    for name, attribution in order:
        f = fields.get(name)
        normal = f.normal if f else None
        value = explanation.values.get(name, float("nan"))
        rows.append(
            TopFeature(
                name, value, attribution, f.unit if f else "", normal, status_of(value, normal)
            )
        )
    return rows


def table_rows(rows: list[TopFeature], language: Language) -> list[dict[str, str]]:
    """The top features as table rows, headed in `language`."""
    out = []
    for row in rows:
        normal = (
            f"{format_value(row.normal[0])}–{format_value(row.normal[1])}" if row.normal else ""
        )
        out.append(
            {
                t("analysis.col.feature", language): row.feature,
                t("analysis.col.value", language): f"{format_value(row.value)} {row.unit}".strip(),
                t("analysis.col.normal", language): f"{normal} {row.unit}".strip(),
                t("analysis.col.status", language): t(f"analysis.status.{row.status}", language),
                t("analysis.col.attribution", language): f"{row.attribution:+.4f}",
            }
        )
    return out


def bar_figure(rows: list[TopFeature], title: str) -> go.Figure:
    """Horizontal bars, the largest on top; red raises the defect probability."""
    ordered = list(reversed(rows))
    figure = go.Figure(
        go.Bar(
            x=[r.attribution for r in ordered],
            y=[r.feature for r in ordered],
            orientation="h",
            marker_color=[UP_COLOUR if r.attribution > 0 else DOWN_COLOUR for r in ordered],
            customdata=[[format_value(r.value), r.unit] for r in ordered],
            hovertemplate=(
                "%{y} = %{customdata[0]} %{customdata[1]}<br>SHAP %{x:+.4f}<extra></extra>"
            ),
        )
    )
    figure.update_layout(title=title, height=120 + 28 * len(rows), margin={"l": 10, "r": 10})
    return figure


def waterfall_figure(
    explanation: Explanation, rows: list[TopFeature], language: Language, title: str
) -> go.Figure:
    """From the base value through the top features (the rest summed) to the prediction."""
    shown = sum(r.attribution for r in rows)
    rest = sum(explanation.attributions.values()) - shown
    names = [t("analysis.base", language)] + [r.feature for r in rows]
    deltas = [explanation.base_value] + [r.attribution for r in rows]
    measures = ["absolute"] + ["relative"] * len(rows)
    if abs(rest) > 1e-12:
        names.append(f"+{len(explanation.attributions) - len(rows)}")
        deltas.append(rest)
        measures.append("relative")
    names.append(t("analysis.final", language))
    deltas.append(explanation.prediction)
    measures.append("total")
    figure = go.Figure(
        go.Waterfall(
            x=names,
            y=deltas,
            measure=measures,
            increasing={"marker": {"color": UP_COLOUR}},
            decreasing={"marker": {"color": DOWN_COLOUR}},
        )
    )
    figure.update_layout(title=title, height=420, xaxis={"tickangle": -40})
    return figure


def _items(rows: list[TopFeature], language: Language) -> str:
    marks = {"low": "↓", "high": "↑", "normal": ""}
    return ", ".join(
        f"{r.feature} {format_value(r.value)}{(' ' + r.unit) if r.unit else ''}"
        + (
            f" ({t('analysis.status.' + r.status, language)}{marks[r.status]})"
            if r.status != "normal"
            else ""
        )
        for r in rows
    )


def reading(explanation: Explanation, rows: list[TopFeature], language: Language) -> str:
    """Three or four sentences: the probability, what raised and lowered it, what is abnormal."""
    up = [r for r in rows if r.attribution > 0][:3]
    down = [r for r in rows if r.attribution < 0][:2]
    abnormal = [r for r in rows if r.status != "normal"]
    parts = [
        t(
            "analysis.read.head",
            language,
            probability=explanation.prediction,
            base=explanation.base_value,
        )
    ]
    if up:
        parts.append(t("analysis.read.up", language, items=_items(up, language)))
    if down:
        parts.append(t("analysis.read.down", language, items=_items(down, language)))
    if abnormal:
        parts.append(t("analysis.read.abnormal", language, items=_items(abnormal, language)))
    else:
        parts.append(t("analysis.read.all_normal", language))
    return " ".join(parts)


def gauge_figure(probability: float, title: str, threshold: float = 0.5) -> go.Figure:
    """The defect probability as a gauge, green under the threshold, red over it."""
    figure = go.Figure(
        go.Indicator(
            mode="gauge+number",
            value=probability * 100,
            number={"suffix": " %", "valueformat": ".1f"},
            title={"text": title},
            gauge={
                "axis": {"range": [0, 100]},
                "bar": {"color": UP_COLOUR if probability >= threshold else "#2ca02c"},
                "steps": [
                    {"range": [0, threshold * 100], "color": "#e8f5e9"},
                    {"range": [threshold * 100, 100], "color": "#fdecea"},
                ],
                "threshold": {"line": {"color": "black", "width": 3}, "value": threshold * 100},
            },
        )
    )
    figure.update_layout(height=260, margin={"l": 20, "r": 20, "t": 60, "b": 10})
    return figure


def latent_figure(latent: list[float], title: str) -> go.Figure:
    figure = go.Figure(go.Bar(x=[f"z{i}" for i in range(len(latent))], y=latent))
    figure.update_layout(title=title, height=240, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure
