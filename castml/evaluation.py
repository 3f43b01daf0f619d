"""Evaluate a candidate on the holdout: against its floors, the baseline and @champion."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from castml import evaluation_plots
from castml.data.sequence_windows import sequence_view
from castml.evaluation_plots import Scored
from castml.models.holdout_metrics import (
    GateVerdict,
    apply_gates,
    classification_metrics,
    regression_metrics,
)
from castml.models.train import EXTRA_BASELINES_DIR, BaselineModel, features_and_target
from castml.recent_window import RECENT_COLUMN, RecentWindow, judgeable, recent_gate
from castml.runtime.loaded_model import load_model
from castml.runtime.manifest import MANIFEST
from castml.skill_interval import auc_interval
from castml.spec import ProjectSpec


@dataclass
class Evaluation:
    task: str
    test_rows: int
    candidate: dict[str, float]
    baseline: dict[str, float]
    champion: dict[str, float] | None
    champion_version: int | None
    champion_note: str
    gate: GateVerdict
    threshold: float
    confusion_matrix: list[list[int]] | None
    roc: dict[str, list[float]] | None
    # PNGs by name (`castml.evaluation_plots`) and what drawing them took; they travel in
    # the HTML report, never in evaluation.json, whose shape other code reads.
    plots: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)
    plot_seconds: dict[str, float] = field(default_factory=dict, repr=False, compare=False)
    # A family's further baselines on the same holdout (lstm_seq: logistic regression),
    # by name; the one above is `baseline`.
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    # A retrain on logged traffic: candidate and champion on the holdout's logged rows
    # alone (`castml.recent_window.RecentWindow.to_json`); None otherwise.
    recent: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        raw = asdict(self)
        del raw["plots"], raw["plot_seconds"]
        return raw

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Evaluation:
        raw = dict(raw)
        raw["gate"] = GateVerdict(**raw["gate"])
        return cls(**raw)


def _scores(
    spec: ProjectSpec, y: np.ndarray, score: np.ndarray, threshold: float
) -> dict[str, float]:
    if spec.is_classification:
        return classification_metrics(y, score, threshold) | _probability_metrics(y, score)
    return regression_metrics(y, score)


def _probability_metrics(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """The ROC-AUC's 95 % bootstrap CI (`castml.skill_interval`), PR-AUC (average
    precision), log loss and the Brier score (calibration) of the probabilities."""
    interval = auc_interval(y, score)
    both = len(np.unique(y)) == 2
    p = np.clip(np.asarray(score, dtype=np.float64), 1e-7, 1 - 1e-7)
    return {
        "roc_auc_ci_low": interval.low,
        "roc_auc_ci_high": interval.high,
        "pr_auc": float(skm.average_precision_score(y, p)) if both else float("nan"),
        "log_loss": float(skm.log_loss(y, p, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, p)),
    }


def no_skill_gate(
    gate: GateVerdict, spec: ProjectSpec, candidate: dict[str, float], positives: int
) -> GateVerdict:
    """Refuse a classifier whose ROC-AUC CI holds 0.5: it ranks no better than chance; and,
    where the spec asks for it, one judged on too few positives for the CI to mean much
    (a 10k-row Open Bandit file leaves 6 clicks in its holdout: its CI excluded 0.5)."""
    low, high = candidate.get("roc_auc_ci_low"), candidate.get("roc_auc_ci_high")
    if not spec.is_classification or low is None or high is None:
        return gate
    needed = spec.gates.min_positives
    if positives < needed:
        reason = (
            f"no skill shown: {positives} positives in the holdout, fewer than the "
            f"{needed} the gate needs to judge the ROC-AUC ({candidate['roc_auc']:.3f}, "
            f"CI [{low:.3f}, {high:.3f}])"
        )
        return GateVerdict(False, [*gate.reasons, reason])
    if low > 0.5 or high < 0.5:
        return gate
    reason = (
        f"no skill: ROC-AUC {candidate['roc_auc']:.3f}, 95 % bootstrap CI "
        f"[{low:.3f}, {high:.3f}] includes 0.5 (no usable signal)"
    )
    return GateVerdict(False, [*gate.reasons, reason])


def evaluate(
    spec: ProjectSpec,
    model_dir: Path,
    baseline_dir: Path,
    test: pd.DataFrame,
    champion: tuple[int, Path] | None,
    *,
    plots: bool = True,
) -> Evaluation:
    """Score candidate, baseline and (when there is one) the champion on the same holdout;
    with `plots`, also draw the evaluation's plots (`castml.evaluation_plots`)."""
    if spec.task == "forecast":  # rolling-origin backtests instead of a row-wise holdout
        from castml.forecast_evaluation import evaluate_forecast

        return evaluate_forecast(
            spec,
            model_dir,
            test.drop(columns=[RECENT_COLUMN], errors="ignore"),
            champion,
            plots=plots,
        )
    recent_rows: np.ndarray | None = None
    if RECENT_COLUMN in test:
        if spec.sequence is None:  # a window reorders rows: the mask would not line up
            recent_rows = test[RECENT_COLUMN].to_numpy(dtype=bool)
        test = test.drop(columns=[RECENT_COLUMN])
    spec, test = sequence_view(spec, test)  # a sequence model's input: each row's window
    x, y = features_and_target(test, spec)
    model = load_model(model_dir)
    score = model.score(x)
    threshold = model.manifest.threshold
    candidate = _scores(spec, y, score, threshold)
    baseline_model = BaselineModel(baseline_dir)
    baseline_score = baseline_model.score(x)
    baseline = _scores(spec, y, baseline_score, baseline_model.threshold)
    baselines = _extra_baselines(spec, baseline_dir / EXTRA_BASELINES_DIR, x, y)
    scored = [
        Scored("candidate", "candidate", score, threshold),
        Scored("baseline", "baseline", baseline_score, baseline_model.threshold),
    ]

    champion_metrics, champion_version, note = None, None, "no champion yet"
    recent: RecentWindow | None = None
    if champion is not None:
        champion_version, champion_dir = champion
        try:
            reigning = load_model(champion_dir)
            if reigning.features != spec.model_input_names:
                raise ValueError("its features differ from the spec's")
            champion_score = reigning.score(x)
            champion_threshold = reigning.manifest.threshold
            champion_metrics = _scores(spec, y, champion_score, champion_threshold)
            label = f"@champion v{champion_version}"
            scored.insert(1, Scored("champion", label, champion_score, champion_threshold))
            note = f"champion is version {champion_version}"
            if recent_rows is not None and recent_rows.any():
                m = recent_rows
                recent = RecentWindow(
                    int(m.sum()),
                    _scores(spec, y[m], score[m], threshold),
                    _scores(spec, y[m], champion_score[m], champion_threshold),
                    judgeable(spec, y[m]),
                )
        except (OSError, ValueError, KeyError) as exc:
            note = f"champion version {champion_version} cannot be scored on this holdout: {exc}"

    confusion, roc = None, None
    if spec.is_classification:
        confusion = skm.confusion_matrix(
            y, (score >= threshold).astype(int), labels=[0, 1]
        ).tolist()
        fpr, tpr, _ = skm.roc_curve(y, score)
        keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 50)).astype(int))
        roc = {"fpr": fpr[keep].round(5).tolist(), "tpr": tpr[keep].round(5).tolist()}
    drawn, seconds = _plots(spec, model.score, x, y, scored) if plots else ({}, {})
    return Evaluation(
        task=str(spec.task),
        test_rows=len(test),
        candidate=candidate,
        baseline=baseline,
        champion=champion_metrics,
        champion_version=champion_version,
        champion_note=note,
        gate=recent_gate(
            no_skill_gate(
                apply_gates(candidate, champion_metrics, spec.gates),
                spec,
                candidate,
                int(np.sum(y == 1)) if spec.is_classification else 0,
            ),
            spec,
            recent,
        ),
        threshold=threshold,
        confusion_matrix=confusion,
        roc=roc,
        plots=drawn,
        plot_seconds=seconds,
        baselines=baselines,
        recent=None if recent is None else recent.to_json(),
    )


def _extra_baselines(
    spec: ProjectSpec, folder: Path, x: np.ndarray, y: np.ndarray
) -> dict[str, dict[str, float]]:
    if not folder.is_dir():
        return {}
    out = {}
    for directory in sorted(p for p in folder.iterdir() if (p / MANIFEST).is_file()):
        extra = load_model(directory)
        out[directory.name] = _scores(spec, y, extra.score(x), extra.manifest.threshold)
    return out


def _plots(
    spec: ProjectSpec,
    score: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    scored: list[Scored],
) -> tuple[dict[str, bytes], dict[str, float]]:
    """The task's curves of every scored model, then the candidate's SHAP summary."""
    started = time.perf_counter()
    if spec.is_classification:
        names = spec.class_names or ("0", "1")
        drawn = evaluation_plots.classification_plots(y, scored, names)
    else:
        drawn = evaluation_plots.regression_plots(y, scored)
    curves_done = time.perf_counter()
    values, rows = evaluation_plots.shap_values(score, x, spec.split.seed)
    drawn[evaluation_plots.SHAP_PLOT] = evaluation_plots.shap_summary_plot(
        values, rows, spec.feature_names
    )
    seconds = {
        "curves": curves_done - started,
        "shap_summary": time.perf_counter() - curves_done,
    }
    return drawn, seconds


def ablation_rows(evaluation: Evaluation) -> list[tuple[str, float, float, float | None]]:
    """(metric, full model, 30-feature baseline, champion) rows, for tables."""
    champion = evaluation.champion or {}
    return [
        (name, value, evaluation.baseline[name], champion.get(name))
        for name, value in evaluation.candidate.items()
    ]


def render_report(spec: ProjectSpec, evaluation: Evaluation, data_hash: str) -> str:
    """A self-contained HTML evaluation report (logged to MLflow with the run)."""

    def cell(value: float | None) -> str:
        return "&ndash;" if value is None else f"{value:.4f}"

    rows = "".join(
        f"<tr><td>{name}</td><td>{cell(full)}</td><td>{cell(base)}</td><td>{cell(champ)}</td></tr>"
        for name, full, base, champ in ablation_rows(evaluation)
    )
    verdict = "PASSED" if evaluation.gate.passed else "FAILED"
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in evaluation.gate.reasons)
    confusion = ""
    if evaluation.confusion_matrix:
        (tn, fp), (fn, tp) = evaluation.confusion_matrix
        negative, positive = spec.class_names or ("0", "1")
        confusion = (
            "<h2>Confusion matrix (holdout)</h2><table><tr><th></th>"
            f"<th>predicted {negative}</th><th>predicted {positive}</th></tr>"
            f"<tr><th>actual {negative}</th><td>{tn}</td><td>{fp}</td></tr>"
            f"<tr><th>actual {positive}</th><td>{fn}</td><td>{tp}</td></tr></table>"
        )
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>castml evaluation: {spec.name}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}</style></head><body>
<h1>Evaluation of a {html.escape(spec.name)} candidate</h1>
<p>Task {evaluation.task}; {evaluation.test_rows} holdout rows; data hash <code>{data_hash}</code>;
decision threshold {evaluation.threshold:.4f}; {html.escape(evaluation.champion_note)}.</p>
<h2>Gate: {verdict}</h2><ul>{reasons}</ul>
<h2>Ablation</h2><table><tr><th>metric</th><th>AutoEncoder + GBM</th><th>GBM on raw features</th>
<th>@champion</th></tr>{rows}</table>{_recent_section(evaluation)}{confusion}{_plots_section(evaluation)}</body></html>"""


def _recent_section(evaluation: Evaluation) -> str:
    """The recent window's table: what a drift or performance retrain is gated on too."""
    recent = evaluation.recent
    if not recent:
        return ""
    names = [n for n in recent["candidate"] if not n.startswith("roc_auc_ci")]
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{recent['candidate'][n]:.4f}</td>"
        f"<td>{recent['champion'].get(n, float('nan')):.4f}</td></tr>"
        for n in names
    )
    note = f" {html.escape(recent['note'])}." if recent.get("note") else ""
    return (
        f"<h2>Recent window ({recent['rows']} holdout rows from the logged traffic)</h2>"
        f"<p>Candidate and @champion on the logged rows alone: the gate applies the spec's "
        f"no-regression tolerances here too.{note}</p><table><tr><th>metric</th>"
        f"<th>candidate</th><th>@champion</th></tr>{rows}</table>"
    )


def _plots_section(evaluation: Evaluation) -> str:
    if not evaluation.plots:
        return ""
    cost = ", ".join(f"{name} {s:.1f} s" for name, s in evaluation.plot_seconds.items())
    return (
        "<h2>Plots (holdout)</h2><p>Candidate, @champion (when there is one) and baseline on "
        f"the same axes. Drawing them took {html.escape(cost)}.</p>"
        + evaluation_plots.plots_html(evaluation.plots)
    )
