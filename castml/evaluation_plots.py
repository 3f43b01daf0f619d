"""The evaluation's plots: holdout curves of candidate, @champion and baseline, and a SHAP summary.

Each plot is a PNG of `PNG_SIZE` pixels, drawn with matplotlib's object API on the Agg
canvas (no pyplot, so no global figure state and no display backend). The HTML report
carries every PNG inline (`data:` URIs, one self-contained file), and registration reads
them back from the report (`plots_from_html`) and logs them under `evaluation/plots/`:
the report is the one artifact that travels from the evaluate step to the register step
in every mode (a KFP cluster uploads an output artifact's file, not files beside it).

Why not `mlflow.models.evaluate` for these: its default evaluator draws one model per
plot, in a run that must already be active (the evaluate step runs before the registration
run exists), and it gets ROC, PR, calibration and lift curves only from a raw
scikit-learn/XGBoost model's `predict_proba`. Our candidates are pyfuncs whose output is a
frame of probability and label, and static predictions are labels, so it would give the
confusion matrix and label metrics we already compute, and no curve at all; it cannot put
candidate, champion and baseline on the same axes. So the curves are drawn here from
`sklearn.metrics` / `sklearn.calibration` over the scores `castml.evaluation` already has,
and the SHAP summary uses the `shap` package directly over the candidate's `score`.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from castml.protocol.mlflow_names import REPORT_ARTIFACT

# matplotlib, scikit-learn and shap load when a plot is drawn: registration and the CLI
# import this module (through `castml.evaluation`) and draw nothing.
if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Where registration logs the PNGs: beside the report, in the run's artifacts.
PLOTS_ARTIFACT_DIR = f"{Path(REPORT_ARTIFACT).parent.as_posix()}/plots"
PNG_SIZE = (800, 560)  # pixels, width x height, of every plot
SCATTER_ALPHA = 0.5  # regression's dots: thousands of holdout rows overlap
_DPI = 100
CLASSIFICATION_PLOTS = ("roc", "precision_recall", "calibration", "confusion_matrix")
REGRESSION_PLOTS = ("predicted_vs_actual", "residuals")
SHAP_PLOT = "shap_summary"
TITLES = {
    "roc": "ROC curve",
    "precision_recall": "Precision-recall curve",
    "calibration": "Calibration (reliability)",
    "confusion_matrix": "Confusion matrix at each model's threshold",
    "predicted_vs_actual": "Predicted against actual",
    "residuals": "Residuals",
    SHAP_PLOT: "SHAP summary of the candidate",
}
# One colour per role, the same in every plot: the candidate first, drawn last (on top).
_COLOURS = {"candidate": "#d62728", "champion": "#1f77b4", "baseline": "#7f7f7f"}
_IMG = re.compile(r'<img data-plot="(\w+)" [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@dataclass(frozen=True)
class Scored:
    """One model's holdout scores: `role` is candidate, champion or baseline."""

    role: str
    label: str  # the legend's name, e.g. "@champion v3"
    score: np.ndarray
    threshold: float


def _figure(columns: int = 1) -> tuple[Figure, list[Axes]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(PNG_SIZE[0] / _DPI, PNG_SIZE[1] / _DPI), dpi=_DPI)
    FigureCanvasAgg(figure)
    axes = [figure.add_subplot(1, columns, i + 1) for i in range(columns)]
    return figure, axes


def _png(figure: Figure, title: str) -> bytes:
    from io import BytesIO

    figure.suptitle(title)
    figure.tight_layout()
    buffer = BytesIO()
    # No bbox "tight": the PNG keeps exactly PNG_SIZE, whatever the labels' widths.
    figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _in_drawing_order(models: Sequence[Scored]) -> list[Scored]:
    return sorted(models, key=lambda m: m.role == "candidate")


def classification_plots(
    y: np.ndarray, models: Sequence[Scored], class_names: tuple[str, str]
) -> dict[str, bytes]:
    """ROC, precision-recall, calibration and confusion matrices, for `y` in {0, 1}."""
    from sklearn import metrics as skm
    from sklearn.calibration import calibration_curve

    plots: dict[str, bytes] = {}
    figure, (ax,) = _figure()
    for m in _in_drawing_order(models):
        fpr, tpr, _ = skm.roc_curve(y, m.score)
        auc = skm.auc(fpr, tpr)
        ax.plot(fpr, tpr, color=_COLOURS[m.role], label=f"{m.label} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ls=":", color="black", lw=0.8, label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right")
    plots["roc"] = _png(figure, TITLES["roc"])

    figure, (ax,) = _figure()
    for m in _in_drawing_order(models):
        precision, recall, _ = skm.precision_recall_curve(y, m.score)
        ap = skm.average_precision_score(y, m.score)
        ax.plot(recall, precision, color=_COLOURS[m.role], label=f"{m.label} (AP {ap:.3f})")
    ax.axhline(float(np.mean(y)), ls=":", color="black", lw=0.8, label="prevalence")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower left")
    plots["precision_recall"] = _png(figure, TITLES["precision_recall"])

    figure, (ax,) = _figure()
    for m in _in_drawing_order(models):
        # Scores outside [0, 1] (a family that scores margins) are clipped, not refused.
        observed, predicted = calibration_curve(y, np.clip(m.score, 0, 1), n_bins=10)
        ax.plot(predicted, observed, marker="o", color=_COLOURS[m.role], label=m.label)
    ax.plot([0, 1], [0, 1], ls=":", color="black", lw=0.8, label="perfectly calibrated")
    ax.set(xlabel="mean predicted probability", ylabel="observed positive share")
    ax.set(xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="upper left")
    plots["calibration"] = _png(figure, TITLES["calibration"])

    plots["confusion_matrix"] = _confusion_matrices(y, models, class_names)
    return plots


def _confusion_matrices(
    y: np.ndarray, models: Sequence[Scored], class_names: tuple[str, str]
) -> bytes:
    from sklearn import metrics as skm

    figure, axes = _figure(len(models))
    for ax, m in zip(axes, models, strict=True):
        counts = skm.confusion_matrix(y, (m.score >= m.threshold).astype(int), labels=[0, 1])
        ax.imshow(counts, cmap="Blues", vmin=0)
        for (row, col), count in np.ndenumerate(counts):
            dark = count > counts.max() / 2
            ax.text(col, row, str(count), ha="center", va="center", color="white" if dark else "k")
        ax.set_xticks([0, 1], [f"pred. {c}" for c in class_names])
        ax.set_yticks([0, 1], list(class_names))
        ax.set_title(f"{m.label}\nthreshold {m.threshold:.3f}", fontsize=9)
    axes[0].set_ylabel("actual")
    return _png(figure, TITLES["confusion_matrix"])


def regression_plots(y: np.ndarray, models: Sequence[Scored]) -> dict[str, bytes]:
    """Predicted against actual, and residuals (actual - predicted) against predicted."""
    from sklearn import metrics as skm

    figure, (ax,) = _figure()
    for m in _in_drawing_order(models):
        r2 = skm.r2_score(y, m.score)
        ax.scatter(
            y,
            m.score,
            s=8,
            alpha=SCATTER_ALPHA,
            color=_COLOURS[m.role],
            label=f"{m.label} (R² {r2:.3f})",
        )
    low, high = float(np.min(y)), float(np.max(y))
    ax.plot([low, high], [low, high], ls=":", color="black", lw=0.8, label="predicted = actual")
    ax.set(xlabel="actual", ylabel="predicted")
    ax.legend(loc="upper left")
    plots = {"predicted_vs_actual": _png(figure, TITLES["predicted_vs_actual"])}

    figure, (ax,) = _figure()
    for m in _in_drawing_order(models):
        residual = y - m.score
        rmse = float(np.sqrt(np.mean(residual**2)))
        ax.scatter(
            m.score,
            residual,
            s=8,
            alpha=SCATTER_ALPHA,
            color=_COLOURS[m.role],
            label=f"{m.label} (RMSE {rmse:.3g})",
        )
    ax.axhline(0.0, ls=":", color="black", lw=0.8)
    ax.set(xlabel="predicted", ylabel="actual - predicted")
    ax.legend(loc="upper left")
    plots["residuals"] = _png(figure, TITLES["residuals"])
    return plots


def shap_values(
    score: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    seed: int,
    rows: int = 60,
    background_rows: int = 15,
) -> tuple[np.ndarray, np.ndarray]:
    """(SHAP values `[n, F]`, the rows they explain) for up to `rows` holdout rows.

    A permutation explainer over the model function alone, so it serves every family:
    one antithetic permutation per row (2F + 1 calls of `score` on `background_rows`
    masked copies), against a background drawn from other holdout rows.
    """
    import shap

    order = np.random.default_rng(seed).permutation(len(x))
    rest = order[background_rows:] if len(x) > background_rows + 1 else order
    picked = np.concatenate([order[:background_rows], np.sort(rest[:rows])])
    # shap's maskers are numba code over numbers: raw values (an object array of text,
    # numbers and missing values, for a typed spec) are explained through per-column codes,
    # which the model function turns back into the values before scoring.
    codes, decode = _as_codes(x[picked])
    background, explained = codes[:background_rows], codes[background_rows:]

    def model(masked: np.ndarray) -> np.ndarray:
        return np.asarray(score(decode(masked)), dtype=np.float64)

    masker = shap.maskers.Independent(background, max_samples=background_rows)
    explainer = shap.PermutationExplainer(model, masker, seed=seed)
    result = explainer(explained, max_evals=2 * x.shape[1] + 1, silent=True)
    return np.asarray(result.values, dtype=np.float64), x[picked[background_rows:]]


def _as_codes(x: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """`x` as float64 (itself when numeric, else per-column codes), and its way back."""
    if x.dtype != object:
        return np.asarray(x, dtype=np.float64), lambda masked: masked.astype(x.dtype)
    import pandas as pd

    codes = np.empty(x.shape, dtype=np.float64)
    tables = []
    for column in range(x.shape[1]):
        # `use_na_sentinel=False`: a missing value is a value of its own, kept as it was.
        column_codes, uniques = pd.factorize(x[:, column], use_na_sentinel=False)
        codes[:, column] = column_codes
        tables.append(np.asarray(uniques, dtype=object))

    def decode(masked: np.ndarray) -> np.ndarray:
        index = masked.astype(np.int64)
        raw = np.empty(masked.shape, dtype=object)
        for column, table in enumerate(tables):
            raw[:, column] = table[index[:, column]]
        return raw

    return codes, decode


def shap_summary_plot(
    values: np.ndarray, rows: np.ndarray, feature_names: Sequence[str], top: int = 15
) -> bytes:
    """A beeswarm: one dot per explained row and feature, at its SHAP value, coloured by the
    feature's value (its rank within the rows); features by mean |SHAP|, largest on top."""
    importance = np.abs(values).mean(axis=0)
    order = np.argsort(importance, kind="stable")[::-1][:top][::-1]
    jitter = np.random.default_rng(0).uniform(-0.3, 0.3, size=values.shape[0])
    figure, (ax,) = _figure()
    for position, feature in enumerate(order):
        column = rows[:, feature]
        try:
            numeric = np.asarray(column, dtype=np.float64)
            colour = np.argsort(np.argsort(numeric, kind="stable")) / max(len(numeric) - 1, 1)
        except (TypeError, ValueError):  # a categorical held as text: no order to colour by
            colour = np.full(len(column), 0.5)
        points = ax.scatter(
            values[:, feature], position + jitter, c=colour, cmap="coolwarm", s=6, vmin=0, vmax=1
        )
    ax.axvline(0.0, color="black", lw=0.8)
    labels = [f"{feature_names[f]} ({importance[f]:.3g})" for f in order]
    ax.set_yticks(range(len(order)), labels, fontsize=8)
    ax.set_xlabel("SHAP value (effect on the candidate's score); label: mean |SHAP|")
    bar = figure.colorbar(points, ax=ax, label="feature value (rank)", ticks=[0, 1])
    bar.ax.set_yticklabels(["low", "high"])
    return _png(figure, f"{TITLES[SHAP_PLOT]} ({values.shape[0]} holdout rows)")


def plots_html(plots: Mapping[str, bytes]) -> str:
    """Every plot as an inline `<img>`: the report stays one self-contained file."""
    figures = []
    for name, png in plots.items():
        data = base64.b64encode(png).decode("ascii")
        title = html.escape(TITLES.get(name, name))
        figures.append(
            f'<figure><img data-plot="{name}" alt="{title}" width="{PNG_SIZE[0]}" '
            f'height="{PNG_SIZE[1]}" src="data:image/png;base64,{data}">'
            f"<figcaption>{title}</figcaption></figure>"
        )
    return "".join(figures)


def plots_from_html(report: str) -> dict[str, bytes]:
    """The PNGs `plots_html` embedded in a report, by name."""
    return {name: base64.b64decode(data) for name, data in _IMG.findall(report)}


def write_pngs(plots: Mapping[str, bytes], directory: Path) -> list[Path]:
    """`<directory>/<name>.png` for each plot."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, png in plots.items():
        path = directory / f"{name}.png"
        path.write_bytes(png)
        paths.append(path)
    return paths
