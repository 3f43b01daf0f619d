"""A horizontal bar chart of the top attributions, as base64 PNG (matplotlib, Agg backend)."""

from __future__ import annotations

import base64
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on a server; set before pyplot is imported

from matplotlib.figure import Figure


def attribution_png(
    top: list[dict[str, Any]], base_value: float, prediction: float, title: str
) -> str:
    """`top`: [{"feature", "value", "attribution"}], largest magnitude first."""
    figure = Figure(figsize=(7, 0.35 * len(top) + 1.4), dpi=90)
    axes = figure.add_subplot()
    rows = list(reversed(top))  # largest at the top of the chart
    values = [row["attribution"] for row in rows]
    axes.barh(
        [f"{row['feature']} = {_shown(row['value'])}" for row in rows],
        values,
        color=["#c0392b" if v > 0 else "#2471a3" for v in values],
    )
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_xlabel(f"SHAP value (base {base_value:.3f} -> prediction {prediction:.3f})")
    axes.set_title(title, fontsize=10)
    axes.tick_params(axis="y", labelsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _shown(value: Any) -> str:
    """A number to 4 significant digits; a category or a timestamp as sent; missing as such."""
    if value is None:
        return "missing"
    return f"{value:.4g}" if isinstance(value, int | float) else str(value)
