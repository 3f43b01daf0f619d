"""The History tab's data, without Streamlit: the collector's Parquet log and the latest drift run.

The collector writes one row per instance under `<logs>/<project>/<version>/date=YYYY-MM-DD/`
and delayed labels under `<logs>/<project>/feedback/date=.../` (DESIGN.md §4 "Payload
log"; the columns are the collector's inference and feedback schemas). This module only
reads them. pandas is fine here: this is a page of charts, not a request path.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from castml.protocol.mlflow_names import (
    TAG_DRIFT_STATUS,
    TAG_MODEL_VERSION,
    monitoring_experiment_name,
)
from castml.protocol.payload_record import RESERVED_GROUPS, check_project

FEEDBACK_GROUP: Final = "feedback"
WINDOWS: Final[dict[str, timedelta | None]] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}
# What the History tab reads of an inference row (the collector writes more).
_COLUMNS: Final = (
    "request_id",
    "probability",
    "label",
    "model_version",
    "request_time",
    "logged_at",
)


def _read(files: list[Path], columns: list[str] | None) -> pd.DataFrame:
    tables = []
    for path in files:
        try:
            table = pq.read_table(path, columns=columns)
        except (OSError, pa.ArrowInvalid, KeyError):
            continue  # a file the collector is replacing right now, or not one of its own
        tables.append(table)
    if not tables:
        return pd.DataFrame(columns=columns or [])
    return pa.concat_tables(tables, promote_options="default").to_pandas()


def _version_dirs(log_dir: Path, project: str) -> list[Path]:
    root = log_dir / check_project(project)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name not in RESERVED_GROUPS)


def load_predictions(
    log_dir: Path, project: str, features: list[str] | None = None, since: datetime | None = None
) -> pd.DataFrame:
    """Logged predictions (answered rows only), with a UTC `time` column, oldest first.

    `since` skips whole day partitions before it; `features` adds those columns.
    """
    first_day = since.strftime("%Y-%m-%d") if since else ""
    files = [
        f
        for d in _version_dirs(log_dir, project)
        for day in sorted(d.glob("date=*"))
        if day.name[5:] >= first_day
        for f in sorted(day.glob("*.parquet"))
    ]
    frame = _read(files, [*_COLUMNS, *(features or [])])
    if frame.empty:
        return pd.DataFrame(columns=[*_COLUMNS, *(features or []), "time", "defect"])
    frame = frame[frame["probability"].notna()].copy()
    frame["time"] = pd.to_datetime(frame["request_time"].fillna(frame["logged_at"]), utc=True)
    frame["model_version"] = frame["model_version"].fillna("unknown").astype(str)
    predicted = frame["label"].where(frame["label"].notna(), frame["probability"] >= 0.5)
    frame["defect"] = predicted.astype(bool)
    if since is not None:
        frame = frame[frame["time"] >= pd.Timestamp(since)]
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


def load_feedback(log_dir: Path, project: str) -> pd.DataFrame:
    """Delayed labels, the last one per request id."""
    root = log_dir / check_project(project) / FEEDBACK_GROUP
    files = sorted(root.glob("date=*/*.parquet")) if root.is_dir() else []
    frame = _read(files, ["request_id", "label", "received_at"])
    if frame.empty:
        return pd.DataFrame(columns=["request_id", "actual"])
    frame = frame.sort_values("received_at", kind="stable").drop_duplicates(
        "request_id", keep="last"
    )
    return frame.rename(columns={"label": "actual"})[["request_id", "actual"]]


def window_start(window: str, now: datetime | None = None) -> datetime | None:
    span = WINDOWS[window]
    return None if span is None else (now or datetime.now(UTC)) - span


def filter_versions(frame: pd.DataFrame, versions: list[str] | None) -> pd.DataFrame:
    return frame if not versions else frame[frame["model_version"].isin(versions)]


def versions_of(frame: pd.DataFrame) -> list[str]:
    """Version names, numerically where they are numbers."""
    names = {str(v) for v in frame["model_version"].unique()}
    return sorted(names, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))


def defect_rate_by(frame: pd.DataFrame, freq: str) -> pd.DataFrame:
    """Per period (`h` hour, `D` day): predictions, defects predicted, the defect rate."""
    if frame.empty:
        return pd.DataFrame(columns=["period", "count", "defect_rate"])
    grouped = frame.groupby(frame["time"].dt.floor(freq))["defect"]
    out = pd.DataFrame({"count": grouped.size(), "defect_rate": grouped.mean()})
    return out.rename_axis("period").reset_index()


def per_version(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=["model_version", "count", "defect_rate", "mean_probability"])
    grouped = frame.groupby("model_version")
    out = pd.DataFrame(
        {
            "count": grouped.size(),
            "defect_rate": grouped["defect"].mean(),
            "mean_probability": grouped["probability"].mean(),
        }
    ).reset_index()
    order = versions_of(out)
    return out.set_index("model_version").loc[order].reset_index()


def realised_quality(frame: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """Per version, over the predictions whose label has arrived: accuracy, precision, recall."""
    columns = ["model_version", "labelled", "accuracy", "precision", "recall", "actual_rate"]
    if frame.empty or feedback.empty:
        return pd.DataFrame(columns=columns)
    joined = frame.merge(feedback, on="request_id", how="inner")
    if joined.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for version, part in joined.groupby("model_version"):
        actual = part["actual"].astype(float) >= 0.5
        predicted = part["defect"].astype(bool)
        hits = int((actual & predicted).sum())
        rows.append(
            {
                "model_version": str(version),
                "labelled": len(part),
                "accuracy": float((actual == predicted).mean()),
                "precision": hits / int(predicted.sum()) if predicted.any() else float("nan"),
                "recall": hits / int(actual.sum()) if actual.any() else float("nan"),
                "actual_rate": float(actual.mean()),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def recent_shots(
    log_dir: Path, project: str, features: list[str], n: int = 20
) -> list[tuple[str, dict[str, float]]]:
    """The last `n` logged shots with every feature present: (label for a picker, shot)."""
    since = datetime.now(UTC) - timedelta(days=30)
    frame = load_predictions(log_dir, project, features, since)
    frame = frame.dropna(subset=features).tail(n).iloc[::-1]
    out = []
    for _, row in frame.iterrows():
        label = (
            f"{row['time']:%Y-%m-%d %H:%M:%S} · v{row['model_version']} · "
            f"p={row['probability']:.3f} · {str(row['request_id'])[:12]}"
        )
        out.append((label, {name: float(row[name]) for name in features}))
    return out


@dataclass
class DriftSummary:
    """The latest drift run of a project, as the History tab shows it."""

    run_id: str
    status: str
    model_version: str
    drift_share: float | None
    dataset_drift: bool
    drifted: list[str]
    computed_at: str
    report_link: str
    scores: dict[str, float] = field(default_factory=dict)


def latest_drift(tracking_uri: str, ui_base: str, project: str) -> DriftSummary | None:
    """From the project's monitoring experiment in MLflow; None when no drift job ran yet."""
    from castml import registry

    client = registry.client(tracking_uri, timeout_s=5.0)
    experiment = client.get_experiment_by_name(monitoring_experiment_name(project))
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{TAG_DRIFT_STATUS}` != ''",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return None
    run = runs[0]
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(run.info.run_id, "drift/result.json", tmp)
            result = json.loads(Path(local).read_text())
        except Exception:  # a run still being written has no result yet
            result = {}
    features: dict[str, Any] = result.get("features") or {}
    drifted = sorted(
        name for name, f in features.items() if isinstance(f, dict) and f.get("drifted")
    )
    scores = {
        name: float(f["score"])
        for name, f in features.items()
        if isinstance(f, dict) and isinstance(f.get("score"), int | float)
    }
    share = run.data.metrics.get("drift_share", result.get("drift_share"))
    return DriftSummary(
        run_id=run.info.run_id,
        status=run.data.tags.get(TAG_DRIFT_STATUS, ""),
        model_version=run.data.tags.get(TAG_MODEL_VERSION, ""),
        drift_share=None if share is None else float(share),
        dataset_drift=bool(result.get("dataset_drift", False)),
        drifted=drifted,
        computed_at=str(result.get("computed_at") or ""),
        report_link=(
            f"{ui_base}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}"
            "/artifacts/drift/drift_report.html"
        ),
        scores=scores,
    )
