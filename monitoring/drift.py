"""Evidently checks of one window against a reference: data drift, prediction drift, quality.

Pure computation over two frames (no MLflow, no files), so the benchmark can time it
against the bare Evidently call on the same frames and the job stays a thin shell.
Both frames carry the spec's features and `score` (the model's probability);
`current` carries the target only where a delayed label arrived.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
from evidently import BinaryClassification, DataDefinition, Dataset, Report
from evidently.core.report import Snapshot
from evidently.metrics import F1Score, Precision, Recall, RocAuc, ValueDrift
from evidently.presets import DataDriftPreset

from castml.spec import ProjectSpec

SCORE = "score"
PREDICTED = "predicted_label"
MIN_LABELED_ROWS = 20  # below this a realised F1/ROC-AUC is noise, not evidence


@dataclass
class FeatureDrift:
    score: float
    method: str
    threshold: float
    drifted: bool


@dataclass
class DriftResult:
    """DESIGN.md §4 "Drift result"; `status` is `ok` or `insufficient_data`."""

    project: str
    model_version: str
    window: dict[str, str]
    rows: dict[str, int]
    status: str = "ok"
    reason: str | None = None
    drift_share: float | None = None
    dataset_drift: bool = False
    features: dict[str, FeatureDrift] = field(default_factory=dict)
    prediction_drift: FeatureDrift | None = None
    performance: dict[str, float] | None = None
    report_uri: str | None = None
    mlflow_run_id: str | None = None
    computed_at: str | None = None
    # The retrain request the job filed and its answer (retrain_filing.RetrainAnswer);
    # None: the spec's policy asked for none.
    retrain: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _dataset(frame: pd.DataFrame, columns: list[str], **definition: Any) -> Dataset:
    return Dataset.from_pandas(frame[columns], data_definition=DataDefinition(**definition))


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: ProjectSpec,
    method: str | None,
    score_method: str | None,
    category_method: str | None = "chisquare",
) -> Snapshot:
    """DataDriftPreset (per-column tests) over the features, and ValueDrift on the score.

    Each feature is tested as its type: numbers as numerical columns (`method`); categorical
    and bool features as categorical ones (`category_method`, on category frequencies); a datetime
    is left out (its values only move forward: every window would "drift").
    """
    categorical = [f.name for f in spec.features if f.dtype in {"categorical", "bool"}]
    numerical = [f.name for f in spec.features if f.dtype in {"float", "int"}]
    features = [f.name for f in spec.features if f.dtype != "datetime"]
    columns = [*features, SCORE]
    definition = {"numerical_columns": [*numerical, SCORE], "categorical_columns": categorical}
    report = Report(
        [
            DataDriftPreset(
                columns=features,
                drift_share=spec.monitoring.drift_share,
                num_method=method or None,
                cat_method=category_method or None,
                threshold=spec.monitoring.stattest_threshold,
            ),
            ValueDrift(
                column=SCORE,
                method=score_method or None,
                threshold=spec.monitoring.stattest_threshold,
            ),
        ],
        include_tests=True,
    )
    return report.run(
        _dataset(_as_logged(current, categorical), columns, **definition),
        _dataset(_as_logged(reference, categorical), columns, **definition),
    )


def observation_drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, spec: ProjectSpec, method: str | None
) -> Snapshot:
    """A forecast project's drift: its observed columns (the target's level among them: the
    demand that grew over a decade) against the reference the version was trained on. There
    is no per-request score to compare; realised error is the forecast job's metric."""
    columns = [*spec.feature_names, spec.target]
    report = Report(
        [
            DataDriftPreset(
                columns=columns,
                drift_share=spec.monitoring.drift_share,
                num_method=method or None,
                threshold=spec.monitoring.stattest_threshold,
            )
        ],
        include_tests=True,
    )
    return report.run(
        _dataset(current, columns, numerical_columns=columns),
        _dataset(reference, columns, numerical_columns=columns),
    )


def _as_logged(frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """Categories as text on both sides: the log holds a bool as 0/1 and the training
    reference as True/False, and a category must compare equal across the two."""
    if not categorical:
        return frame
    out = frame.copy()
    for name in categorical:
        column = out[name]
        if column.dtype == bool or column.dtype.kind in "fiu":
            column = column.astype("float64")  # True/1/1.0 all become "1.0"
        out[name] = column.astype(str).where(column.notna(), None)
    return out


def quality_report(reference: pd.DataFrame, labeled: pd.DataFrame, spec: ProjectSpec) -> Snapshot:
    """Realised classification quality over the labeled rows, next to the reference's."""
    target = spec.target
    columns = [target, PREDICTED, SCORE]
    definition: dict[str, Any] = {
        "numerical_columns": [SCORE],
        "categorical_columns": [target, PREDICTED],
        "classification": [
            BinaryClassification(
                target=target, prediction_labels=PREDICTED, prediction_probas=SCORE
            )
        ],
    }
    ref = reference.assign(**{PREDICTED: (reference[SCORE] >= 0.5).astype("int64")})
    report = Report([F1Score(), RocAuc(), Precision(), Recall()])
    return report.run(
        _dataset(labeled, columns, **definition), _dataset(ref, columns, **definition)
    )


def read_drift(snapshot: Snapshot) -> tuple[float, dict[str, FeatureDrift], FeatureDrift | None]:
    """(drift share, per-feature result, prediction drift) from the snapshot's metrics and tests."""
    content = snapshot.dict()
    failed: dict[str, bool] = {}
    for test in content.get("tests", []):
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type", "").endswith("ValueDrift"):
            failed[params["column"]] = test.get("status") == "FAIL"
    share = 0.0
    per_column: dict[str, FeatureDrift] = {}
    for metric in content["metrics"]:
        config = metric["config"]
        if config["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
        elif config["type"].endswith("ValueDrift"):
            column = config["column"]
            per_column[column] = FeatureDrift(
                score=float(metric["value"]),
                method=str(config.get("method")),
                threshold=float(config.get("threshold") or 0.0),
                drifted=failed.get(column, False),
            )
    prediction = per_column.pop(SCORE, None)
    return share, per_column, prediction


def read_quality(snapshot: Snapshot) -> dict[str, float]:
    names = {"F1Score": "f1", "RocAuc": "roc_auc", "Precision": "precision", "Recall": "recall"}
    out: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        kind = metric["config"]["type"].rsplit(":", 1)[-1]
        if kind in names and isinstance(metric["value"], int | float):
            out[names[kind]] = float(metric["value"])
    return out


def labeled_rows(current: pd.DataFrame, target: str) -> pd.DataFrame:
    labeled = current[current[target].notna()] if target in current else current.iloc[0:0]
    return labeled.assign(
        **{
            target: labeled[target].astype("int64"),
            PREDICTED: (labeled[SCORE] >= 0.5).astype("int64"),
        }
    )


def evaluate(
    result: DriftResult,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: ProjectSpec,
    method: str | None = "ks",
    score_method: str | None = "ks",
    category_method: str | None = "chisquare",
) -> list[tuple[str, Snapshot]]:
    """Fill `result` in place; returns the snapshots to render, by artifact name."""
    if spec.task == "forecast":  # observations, not served requests
        snapshot = observation_drift_report(reference, current, spec, method)
        result.drift_share, result.features, result.prediction_drift = read_drift(snapshot)
        result.dataset_drift = result.drift_share >= spec.monitoring.drift_share
        return [("drift", snapshot)]
    snapshot = drift_report(reference, current, spec, method, score_method, category_method)
    result.drift_share, result.features, result.prediction_drift = read_drift(snapshot)
    result.dataset_drift = result.drift_share >= spec.monitoring.drift_share
    snapshots = [("drift", snapshot)]
    labeled = labeled_rows(current, spec.target)
    result.rows["labeled"] = len(labeled)
    if len(labeled) >= MIN_LABELED_ROWS and labeled[spec.target].nunique() == 2:
        quality = quality_report(reference, labeled, spec)
        result.performance = read_quality(quality)
        snapshots.append(("quality", quality))
    return snapshots
