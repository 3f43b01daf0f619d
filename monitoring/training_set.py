"""A retrain's training set: the spec's source plus the labelled traffic the collector logged.

The mix: the spec's whole source, then every usable labelled row logged in the last
`retrain.logged_window_days`, unweighted. The source keeps both classes and the
physics the gates were set on; the logged rows add the shots the drift moved to.
The split is stratified and random, so the logged rows also reach the holdout, where
the candidate and the reigning @champion are both scored on them: the gate then
compares the two on drifted traffic too. With fewer than `retrain.min_logged_rows`
usable rows the set is the spec's source alone, and `why` says so.

Which logged rows are usable:
- served rows under `logs/<project>/<version>/date=...`, of every version (a shot's
  readings and its defect label do not depend on the model that scored it); orphans
  are not read: a request without a response was not served, and a response
  orphan carries no readings;
- whose request id got a delayed label (the latest one wins, as in the drift job);
- of a one-row request: a batch request gets one label for several shots, which
  says nothing about each of them;
- with every reading finite and inside the spec's physical bounds, and a label the
  task accepts (0/1 for classification).
Every other row is dropped and counted by why (`dropped`), so the decision and the
version's tags show what was left out; the result then goes through
`castml.data.validation` like any data set, and a set that still fails is an error.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from castml import registry
from castml.data.loaders import load_dataset
from castml.data.provenance import TAG_PREFIX, TAG_SOURCE, write_with_lineage
from castml.data.validation import validated
from castml.protocol.forecast_record import OBSERVATIONS_DIR
from castml.protocol.mlflow_names import TAG_PROJECT, TAG_RETRAIN_REASON
from castml.spec import ProjectSpec, load_spec
from monitoring.parquet_sink import FEEDBACK_DIR, ORPHANS_DIR
from monitoring.policy import PreparedData
from monitoring.window import Window, partition_files, read_labels

SOURCE_LOGGED = "logged_traffic+spec"
LOGGED_REASONS = ("drift", "performance", "schedule")  # manual: what the person names
ARTIFACT_DIR = "training-data"


@dataclass(frozen=True)
class LoggedRows:
    """Usable labelled rows (features + target) and where they came from."""

    frame: pd.DataFrame
    partitions: dict[str, int]  # "<project>/<version>/date=YYYY-MM-DD" (under logs/) -> rows kept
    read: int  # rows in the window before any filter
    dropped: dict[str, int]  # why -> rows


@dataclass(frozen=True)
class TrainingSet:
    project: str
    path: Path | None  # None: the spec's source alone (see `why`)
    logged_rows: int
    spec_rows: int
    window: Window
    partitions: dict[str, int] = field(default_factory=dict)
    read: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    why: str = ""

    @property
    def source(self) -> str:
        return SOURCE_LOGGED if self.path is not None else "spec"

    def lineage(self) -> dict[str, str]:
        """`castml.data.*` tags: written into the file, set on the run and the version."""
        return {
            TAG_SOURCE: self.source,
            f"{TAG_PREFIX}logged_rows": str(self.logged_rows),
            f"{TAG_PREFIX}spec_rows": str(self.spec_rows),
            f"{TAG_PREFIX}window": f"{self.window.start.isoformat()}/{self.window.end.isoformat()}",
            f"{TAG_PREFIX}partitions": " ".join(f"{p}:{n}" for p, n in self.partitions.items()),
            f"{TAG_PREFIX}dropped": " ".join(f"{k}={v}" for k, v in self.dropped.items()),
        }

    def evidence(self) -> dict[str, Any]:
        """What the retrain decision records about its training data."""
        return {
            "source": self.source,
            "logged_rows": self.logged_rows,
            "spec_rows": self.spec_rows,
            "window": [self.window.start.isoformat(), self.window.end.isoformat()],
            "partitions": dict(self.partitions),
            "read": self.read,
            "dropped": dict(self.dropped),
            **({"why": self.why} if self.why else {}),
        }


def _version_dirs(logs_root: Path, project: str) -> list[Path]:
    base = logs_root / project
    if not base.is_dir():
        return []
    skip = (FEEDBACK_DIR, ORPHANS_DIR, OBSERVATIONS_DIR)
    return sorted(p for p in base.iterdir() if p.is_dir() and p.name not in skip)


def _count(dropped: dict[str, int], why: str, n: int) -> None:
    if n:
        dropped[why] = dropped.get(why, 0) + n


def _labelled_rows(
    spec: ProjectSpec,
    logs_root: Path,
    window: Window,
    labelled_ids: pa.Array,
    dropped: dict[str, int],
) -> tuple[pd.DataFrame | None, int]:
    """(labelled rows of the window with their partition, rows read)."""
    start, end = pa.scalar(window.start), pa.scalar(window.end)
    wanted = ["request_id", "row", "request_time", *spec.feature_names]
    read = 0
    parts: list[pd.DataFrame] = []
    for version_dir in _version_dirs(logs_root, spec.name):
        for file in partition_files(version_dir, window):
            names = set(pq.read_schema(file).names)
            table = pq.read_table(file, columns=[c for c in wanted if c in names])
            times = table["request_time"]
            table = table.filter(pc.and_(pc.greater_equal(times, start), pc.less(times, end)))
            read += table.num_rows
            labelled = pc.is_in(table["request_id"], value_set=labelled_ids)
            _count(dropped, "unlabelled", table.num_rows - (pc.sum(labelled).as_py() or 0))
            frame = table.filter(labelled).to_pandas()
            frame["_partition"] = f"{spec.name}/{version_dir.name}/{file.parent.name}"
            parts.append(frame)
    return (pd.concat(parts, ignore_index=True) if parts else None), read


def _usable(
    spec: ProjectSpec, frame: pd.DataFrame, label_of: dict[str, float], dropped: dict[str, int]
) -> tuple[pd.DataFrame, pd.Series]:
    """(features + target of the usable rows, their partition); counts the rest by why."""
    features = spec.feature_names
    before = len(frame)
    frame = frame.drop_duplicates(["request_id", "row"], keep="last")
    _count(dropped, "duplicate", before - len(frame))
    batch = (frame.groupby("request_id")["row"].transform("size") > 1).to_numpy()
    _count(dropped, "batch_request", int(batch.sum()))
    frame = frame[~batch]

    values = frame[features].to_numpy(np.float64)
    low = np.array([f.bounds[0] for f in spec.features])
    high = np.array([f.bounds[1] for f in spec.features])
    finite = np.isfinite(values).all(axis=1)
    # Readings are logged as float32: a bound such as 101.3 rounds up there, so compare
    # with the bounds as float32 and clip that rounding away afterwards.
    low32, high32 = low.astype(np.float32), high.astype(np.float32)
    inside = ((values >= low32) & (values <= high32)).all(axis=1) & finite
    _count(dropped, "non_finite", int((~finite).sum()))
    _count(dropped, "out_of_bounds", int((finite & ~inside).sum()))
    label = frame["request_id"].map(label_of).to_numpy(np.float64)
    good_label = np.isfinite(label)
    if spec.is_classification:
        good_label &= (label == 0.0) | (label == 1.0)
    _count(dropped, "invalid_label", int((inside & ~good_label).sum()))
    keep = inside & good_label

    out = pd.DataFrame(np.clip(values[keep], low, high), columns=features)
    out[spec.target] = label[keep].astype(np.int64 if spec.is_classification else np.float64)
    return out, frame["_partition"][keep].reset_index(drop=True)


def read_logged_rows(spec: ProjectSpec, logs_root: Path, window: Window) -> LoggedRows:
    """Usable labelled rows of `window` (see the module doc for what is usable)."""
    labels = read_labels(logs_root, spec.name, window)
    label_of = dict(zip(labels["request_id"], labels["label"], strict=True))
    dropped: dict[str, int] = {}
    ids = pa.array(list(label_of), pa.string())
    frame, read = _labelled_rows(spec, logs_root, window, ids, dropped)
    if frame is None:
        return LoggedRows(
            pd.DataFrame(columns=[*spec.feature_names, spec.target]), {}, read, dropped
        )
    out, partition = _usable(spec, frame, label_of, dropped)
    partitions = {str(k): int(v) for k, v in partition.value_counts().sort_index().items()}
    return LoggedRows(out, partitions, read, dropped)


def build_training_set(
    spec: ProjectSpec, logs_root: Path, out_path: Path, end: datetime | None = None
) -> TrainingSet:
    """The spec's source plus the window's usable logged rows, written to `out_path`.

    Falls back to the spec's source alone (no file, `path` None, `why` set) when
    fewer than `retrain.min_logged_rows` rows are usable. Raises DataValidationError
    if the combined set fails the spec's validation.
    """
    window = Window.ending(timedelta(days=spec.retrain.logged_window_days), end)
    logged = read_logged_rows(spec, logs_root, window)
    base = validated(load_dataset(spec), spec)
    least = spec.retrain.min_logged_rows
    result = TrainingSet(
        project=spec.name,
        path=None,
        logged_rows=len(logged.frame),
        spec_rows=len(base),
        window=window,
        partitions=logged.partitions,
        read=logged.read,
        dropped=logged.dropped,
    )
    if len(logged.frame) < least:
        days = spec.retrain.logged_window_days
        why = (
            f"{len(logged.frame)} usable labelled rows logged in the last {days} d "
            f"< retrain.min_logged_rows={least}: trained on the spec's source alone"
        )
        return replace(result, why=why)
    result = replace(result, path=out_path)
    combined = validated(pd.concat([base, logged.frame], ignore_index=True), spec)
    write_with_lineage(combined, out_path, result.lineage())
    return result


class LoggedTrainingData:
    """The policy's training-data step (`monitoring.policy.TrainingData`).

    For drift, performance and schedule retrains: build the set, store it as an
    artifact of a run in `castml/<project>/monitoring` and hand the pipeline its
    `runs:/` URI. MLflow proxies artifacts, so the same URI is readable by a kfp.local
    child on this machine and by a KFP pod in the cluster.
    """

    def __init__(self, logs_root: Path, tracking_uri: str) -> None:
        self.logs_root, self.tracking_uri = logs_root, tracking_uri

    def prepare(self, project: str, reason: str) -> PreparedData:
        if reason not in LOGGED_REASONS:
            why = f"a {reason} retrain trains on the spec's source"
            return PreparedData("", {"source": "spec", "why": why})
        spec = load_spec(project)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        with tempfile.TemporaryDirectory(prefix="castml-training-set-") as tmp:
            out = Path(tmp) / f"{project}-{stamp}.parquet"
            built = build_training_set(spec, self.logs_root, out)
            if built.path is None:
                return PreparedData("", built.evidence())
            uri = self.publish(built, reason, stamp)
        return PreparedData(uri, {**built.evidence(), "uri": uri})

    def publish(self, built: TrainingSet, reason: str, stamp: str) -> str:
        assert built.path is not None
        client = registry.client(self.tracking_uri)
        name = registry.monitoring_experiment_name(built.project)
        found = client.get_experiment_by_name(name)
        experiment = found.experiment_id if found else client.create_experiment(name)
        tags = {
            **built.lineage(),
            TAG_PROJECT: built.project,
            TAG_RETRAIN_REASON: reason,
            "mlflow.runName": f"training-data-{stamp}",
        }
        run = client.create_run(str(experiment), tags=tags)
        client.log_artifact(run.info.run_id, str(built.path), ARTIFACT_DIR)
        client.set_terminated(run.info.run_id)
        return f"runs:/{run.info.run_id}/{ARTIFACT_DIR}/{built.path.name}"


def describe(evidence: dict[str, Any] | None) -> str:
    """One line for people on what a retrain trains on, from a decision's `training_data`."""
    if not evidence:
        return "training data: the spec's source (no training-data step)"
    if evidence.get("source") != SOURCE_LOGGED:
        return f"training data: the spec's source alone ({evidence.get('why', '')})"
    parts = ", ".join(f"{p} {n}" for p, n in evidence.get("partitions", {}).items())
    dropped = ", ".join(f"{k} {v}" for k, v in evidence.get("dropped", {}).items())
    return (
        f"training data: spec source {evidence['spec_rows']} rows + "
        f"{evidence['logged_rows']} labelled logged rows (logs/{parts})"
        + (f"; left out: {dropped}" if dropped else "")
        + (f"; stored as {evidence['uri']}" if evidence.get("uri") else "")
    )
