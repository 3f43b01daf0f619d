"""Feature importance: random forest, SHAP and LIME, each alone or combined, with p-values
and bootstrap confidence intervals.

One random forest (seeded, balanced classes) is fitted on the run's table
(`studio.reports.table`); then
- `rf`: its impurity importance, per tree;
- `shap`: mean |SHAP value| of the click class (TreeExplainer, exact for trees) per row;
- `lime`: mean |LIME weight| per explained row (clicked and non-clicked rows alike);
- `combined`: the mean of the three, each first scaled to sum to 1.
CI (95 %): a percentile bootstrap that resamples what each method averages over (trees,
rows, explained rows; all three for `combined`), `BOOTSTRAP` times.
p-value: whether the feature differs between clicked and non-clicked rows, a two-sided
Mann-Whitney U test for numbers and bools, a chi-square test of independence for a
categorical (its `MAX_CATEGORIES` most frequent values, the rest pooled). It is a test of
the feature's association with clicks, not of the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from castml.errors import CastmlError
from studio.reports.table import MAX_CATEGORIES, Table

METHODS = ("rf", "shap", "lime", "combined")
BOOTSTRAP = 200
SHAP_ROWS = 150
LIME_ROWS = 12
Array = npt.NDArray[np.float64]


class UnknownMethodError(CastmlError):
    status_code = 422


def _forest(table: Table, seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    if len(np.unique(table.y)) < 2:
        raise CastmlError("importance needs clicked and non-clicked rows")
    return RandomForestClassifier(
        n_estimators=60,
        max_depth=8,
        min_samples_leaf=3,
        class_weight="balanced",
        random_state=seed,
        n_jobs=1,
    ).fit(table.x, table.y)


def _explained_rows(table: Table, count: int, seed: int) -> npt.NDArray[np.int64]:
    """Rows to explain: half clicked (when there are that many), half not, seeded."""
    rng = np.random.default_rng(seed)
    positives, negatives = np.flatnonzero(table.y == 1), np.flatnonzero(table.y == 0)
    take = min(len(positives), count // 2)
    chosen = np.r_[
        rng.choice(positives, take, replace=False),
        rng.choice(negatives, min(len(negatives), count - take), replace=False),
    ]
    return np.sort(chosen).astype(np.int64)


def _shap_rows(forest: Any, table: Table, seed: int) -> Array:
    import shap

    rows = table.x[_explained_rows(table, SHAP_ROWS, seed)]
    values = np.asarray(shap.TreeExplainer(forest).shap_values(rows, check_additivity=False))
    if values.ndim == 3:  # (rows, features, classes): the click class
        values = values[:, :, 1]
    return np.asarray(np.abs(values), dtype=np.float64)


def _lime_rows(forest: Any, table: Table, seed: int) -> Array:
    from lime.lime_tabular import LimeTabularExplainer

    explainer = LimeTabularExplainer(
        table.x,
        feature_names=table.features,
        class_names=["no_click", "click"],
        categorical_features=[i for i, k in enumerate(table.kinds) if k == "categorical"],
        discretize_continuous=True,
        random_state=seed,
    )
    weights = np.zeros((0, len(table.features)))
    for row in _explained_rows(table, LIME_ROWS, seed):
        explanation = explainer.explain_instance(
            table.x[row], forest.predict_proba, num_features=len(table.features), num_samples=800
        )
        found = np.zeros(len(table.features))
        for index, weight in explanation.as_map()[1]:
            found[index] = abs(weight)
        weights = np.vstack([weights, found])
    return weights


def _scaled(vector: Array) -> Array:
    total = float(vector.sum())
    return vector / total if total > 0 else vector


def p_values(table: Table) -> tuple[Array, list[str]]:
    """Each feature's p-value between the classes, and the test that gave it."""
    clicked = table.y == 1
    values, tests = [], []
    for index, kind in enumerate(table.kinds):
        column = table.x[:, index]
        if kind == "categorical":
            codes = np.minimum(column, MAX_CATEGORIES).astype(int)
            counts = pd.crosstab(codes, clicked).to_numpy()
            counts = counts[counts.sum(axis=1) > 0]
            p = 1.0 if counts.shape[0] < 2 else float(stats.chi2_contingency(counts)[1])
            tests.append("chi-square test of independence")
        else:
            a, b = column[clicked], column[~clicked]
            same = np.ptp(column) == 0
            p = 1.0 if same else float(stats.mannwhitneyu(a, b, alternative="two-sided")[1])
            tests.append("two-sided Mann-Whitney U test")
        values.append(p)
    return np.asarray(values), tests


def importance(table: Table, method: str = "combined", seed: int = 0) -> list[dict[str, Any]]:
    """`[{feature, importance, pValue, ci, description, method, test}]`, most important first."""
    if method not in METHODS:
        raise UnknownMethodError(f"unknown importance method '{method}' (use {', '.join(METHODS)})")
    forest = _forest(table, seed)
    parts: dict[str, Array] = {}
    if method in ("rf", "combined"):
        parts["rf"] = np.array([tree.feature_importances_ for tree in forest.estimators_])
    if method in ("shap", "combined"):
        parts["shap"] = _shap_rows(forest, table, seed)
    if method in ("lime", "combined"):
        parts["lime"] = _lime_rows(forest, table, seed)
    point = np.mean([_scaled(rows.mean(axis=0)) for rows in parts.values()], axis=0)
    rng = np.random.default_rng(seed)
    draws = np.empty((BOOTSTRAP, len(table.features)))
    for b in range(BOOTSTRAP):
        draws[b] = np.mean(
            [
                _scaled(rows[rng.integers(0, len(rows), len(rows))].mean(axis=0))
                for rows in parts.values()
            ],
            axis=0,
        )
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    p, tests = p_values(table)
    what = " + ".join(parts)
    answer = [
        {
            "feature": name,
            "importance": round(float(point[i]), 6),
            "pValue": float(p[i]),
            "ci": [round(float(low[i]), 6), round(float(high[i]), 6)],
            "method": method,
            "test": tests[i],
            "description": (
                f"{what} importance {point[i]:.3f} (share of the total; 95% bootstrap CI "
                f"{low[i]:.3f}-{high[i]:.3f}); p={p[i]:.3g}, {tests[i]} between clicked "
                "and non-clicked rows"
            ),
        }
        for i, name in enumerate(table.features)
    ]
    return sorted(answer, key=lambda row: -float(row["importance"]))
