"""The "AI report": composed from a run's real metrics and importances by templates.

Every number is either a metric of the run's holdout evaluation, an importance computed by
`studio.reports.importance`, or derived from those by a formula stated in `formulas`,
with the ROI assumptions taken from settings (`assumptions`). Nothing is made up.

No skill, said plainly: when the 95 % CI of the holdout ROC-AUC includes 0.5, the model
ranks clicks no better than chance; the report then says "no usable signal", gives no
insights drawn from the importances (they would describe noise) and an ROI of 0. The same
when the holdout holds fewer than `studio_min_holdout_clicks` clicks: an AUC over a handful
of clicks (and its bootstrap CI) cannot tell a signal from luck.

The AUC's CI: the evaluation's own bootstrap CI when it reports one (`roc_auc_ci_low`
and `roc_auc_ci_high`), else the Hanley-McNeil (1982) normal approximation from the AUC
and the holdout's class counts (its confusion matrix).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from studio.settings import StudioSettings

CI_KEYS = (("roc_auc_ci_low", "roc_auc_ci_high"), ("auc_ci_low", "auc_ci_high"))
NO_SIGNAL = "no usable signal"


def hanley_mcneil(auc: float, positives: int, negatives: int) -> tuple[float, float]:
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / max(1, positives * negatives)
    half = 1.96 * math.sqrt(max(variance, 0.0))
    return max(0.0, auc - half), min(1.0, auc + half)


def _class_counts(evaluation: dict[str, Any]) -> tuple[int, int]:
    matrix = evaluation.get("confusion_matrix") or [[0, 0], [0, 0]]
    (tn, fp), (fn, tp) = matrix
    return int(fn + tp), int(tn + fp)


def auc_interval(
    metrics: dict[str, float], evaluation: dict[str, Any]
) -> tuple[float, float, str] | None:
    """(low, high, how it was computed) of the holdout ROC-AUC, or None without an AUC."""
    for low_key, high_key in CI_KEYS:
        reported = {**evaluation.get("candidate", {}), **evaluation, **metrics}
        if low_key in reported and high_key in reported:
            return float(reported[low_key]), float(reported[high_key]), "the evaluation's bootstrap"
    auc = metrics.get("roc_auc")
    if auc is None or not math.isfinite(auc):
        return None
    positives, negatives = _class_counts(evaluation)
    if positives == 0 or negatives == 0:
        return None
    low, high = hanley_mcneil(auc, positives, negatives)
    return low, high, "Hanley-McNeil normal approximation"


def targeted_lift(evaluation: dict[str, Any], base_rate: float, share: float) -> float:
    """CTR among the top `share` of impressions by score, over the base CTR (ROC-derived)."""
    roc = evaluation.get("roc") or {}
    fpr, tpr = np.asarray(roc.get("fpr", [0, 1])), np.asarray(roc.get("tpr", [0, 1]))
    reached = base_rate * tpr + (1 - base_rate) * fpr  # share of impressions at each cut
    tpr_at = float(np.interp(share, reached, tpr))
    return tpr_at / share


def compose(
    metrics: dict[str, float],
    evaluation: dict[str, Any],
    top: list[dict[str, Any]],
    base_rate: float,
    settings: StudioSettings,
) -> dict[str, Any]:
    accuracy = float(metrics.get("accuracy", float("nan")))
    auc = float(metrics.get("roc_auc", float("nan")))
    interval = auc_interval(metrics, evaluation)
    clicks = _class_counts(evaluation)[0]
    too_few = clicks < settings.studio_min_holdout_clicks
    no_signal = too_few or interval is None or interval[0] <= 0.5 <= interval[1]
    share = settings.studio_targeted_share
    impressions = settings.studio_impressions_per_month
    per_click = settings.studio_revenue_per_click
    lift = 1.0 if no_signal else targeted_lift(evaluation, base_rate, share)
    roi_increase = round((lift - 1.0) * 100, 2)
    revenue = round(impressions * share * base_rate * (lift - 1.0) * per_click, 2)
    ci_text = "unavailable" if interval is None else f"{interval[0]:.3f}-{interval[1]:.3f}"
    how = "" if interval is None else f" ({interval[2]})"
    top_features = [
        {k: row[k] for k in ("feature", "importance", "pValue", "ci")} for row in top[:5]
    ]
    significant = [row for row in top[:5] if float(row["pValue"]) < 0.05]
    if no_signal:
        why = (
            f"the holdout holds only {clicks} click(s), fewer than the "
            f"{settings.studio_min_holdout_clicks} needed to tell a signal from chance"
            if too_few
            else "which includes 0.5 (chance)"
        )
        summary = (
            f"No usable signal: the model's holdout ROC-AUC is {auc:.3f} with a 95% CI of "
            f"{ci_text}{how}, {why}. It is not shown to rank clicks better than a constant "
            f"click rate of {base_rate:.2%}, so no targeting gain is claimed. "
            "신호 없음: 이 모델이 클릭을 우연 수준 이상으로 예측한다는 근거가 없습니다."
        )
        insights = [
            f"{NO_SIGNAL}: ROC-AUC {auc:.3f}, 95% CI {ci_text}; {why}.",
            "The feature importances below describe how a forest splits this data, not "
            "effects on clicks; they are shown, not interpreted.",
        ]
        plan = [
            "Do not target with this model: keep serving the constant click rate.",
            "Collect features that plausibly drive clicks (item content, user history, "
            "context) or more rows, then retrain.",
            "Retrain and re-check: the report changes once the AUC's CI excludes 0.5.",
        ]
    else:
        summary = (
            f"The model ranks clicks above chance: holdout ROC-AUC {auc:.3f} (95% CI "
            f"{ci_text}{how}), accuracy {accuracy:.3f}. Showing the campaign to the top "
            f"{share:.0%} of impressions by score lifts the click rate {lift:.2f}x over "
            f"the base {base_rate:.2%}. 요약: 모델이 클릭을 우연보다 잘 예측합니다."
        )
        insights = [f"ROC-AUC {auc:.3f} (95% CI {ci_text}) excludes 0.5: the ranking is real."]
        insights += [
            f"{row['feature']} ranks #{rank} (importance {float(row['importance']):.3f}, CI "
            f"{row['ci'][0]:.3f}-{row['ci'][1]:.3f}); it differs between clicked and "
            f"non-clicked rows (p={float(row['pValue']):.2g})."
            for rank, row in enumerate(top[:5], start=1)
            if row in significant
        ]
        plan = [
            f"Target the top {share:.0%} of impressions by model score (expected lift "
            f"{lift:.2f}x, +{revenue:,.0f} {settings.studio_currency} a month under the "
            "stated assumptions).",
            "Run an A/B test against the current policy before a full roll-out.",
        ] + [f"Monitor {row['feature']}: the model leans on it most." for row in significant[:2]]
    return {
        "summary": summary,
        "accuracy": accuracy,
        "rocAuc": auc,
        "aucCi": None if interval is None else [interval[0], interval[1]],
        "noSignal": no_signal,
        "roiIncrease": roi_increase,
        "additionalRevenue": revenue,
        "topFeatures": top_features,
        "aiInsights": insights,
        "actionPlan": plan,
        "narrativeSource": "template",
        "formulas": {
            "accuracy": "the holdout evaluation's accuracy at the model's decision threshold",
            "aucCi": "95% CI of the holdout ROC-AUC" + how,
            "noSignal": "true when the AUC's 95% CI includes 0.5 or the holdout holds fewer "
            "than minHoldoutClicks clicks",
            "lift": "TPR at the cut reaching targetedShare of impressions / targetedShare "
            "(from the holdout ROC curve); 1 when noSignal",
            "roiIncrease": "(lift - 1) x 100 %",
            "additionalRevenue": "impressionsPerMonth x targetedShare x baseCtr x (lift - 1) "
            "x revenuePerClick",
        },
        "assumptions": {
            "impressionsPerMonth": impressions,
            "revenuePerClick": per_click,
            "targetedShare": share,
            "baseCtr": base_rate,
            "currency": settings.studio_currency,
            "minHoldoutClicks": settings.studio_min_holdout_clicks,
            "holdoutClicks": clicks,
        },
    }
