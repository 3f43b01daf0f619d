"""The report's charts as PNG bytes (matplotlib, headless): importance bars, correlation map."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

TOP = 10


def importance_png(rows: list[dict[str, Any]]) -> bytes:
    top = rows[:TOP][::-1]
    figure, axes = plt.subplots(figsize=(6.5, 3.6), dpi=110)
    values = [float(r["importance"]) for r in top]
    low = [max(0.0, float(r["importance"]) - float(r["ci"][0])) for r in top]
    high = [max(0.0, float(r["ci"][1]) - float(r["importance"])) for r in top]
    axes.barh([str(r["feature"]) for r in top], values, xerr=[low, high], color="#1f77b4")
    axes.set_xlabel("combined importance (share), 95% bootstrap CI")
    axes.set_title("Feature importance (random forest + SHAP + LIME)")
    figure.tight_layout()
    return _png(figure)


def correlation_png(correlation: dict[str, Any]) -> bytes:
    names = [str(n) for n in correlation["features"]]
    figure, axes = plt.subplots(figsize=(6.5, 5.2), dpi=110)
    image = axes.imshow(correlation["matrix"], cmap="coolwarm", vmin=-1, vmax=1)
    axes.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    axes.set_yticks(range(len(names)), names, fontsize=7)
    axes.set_title("Pearson correlation")
    figure.colorbar(image, ax=axes, shrink=0.8)
    figure.tight_layout()
    return _png(figure)


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
