"""Drift gauges as Prometheus textfiles, one per project: the job is a CronJob, nothing
to scrape, so the collector (which shares the volume) serves them on its `/metrics`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from monitoring.drift import DriftResult
from monitoring.settings import TEXTFILE_GLOBS


class TextfileGauges(Collector):
    """Re-exports every `drift-*.prom` and `forecast-*.prom` in a folder, read at scrape time.

    Families are merged by name: each project's file repeats the same HELP/TYPE
    lines, and an exposition may declare a family only once. A file that does not
    parse (a torn write cannot happen, they are renamed into place, but a hand-edited
    one can) is skipped rather than failing the whole scrape.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        paths = {p for pattern in TEXTFILE_GLOBS for p in self.directory.glob(pattern)}
        for path in sorted(paths):
            try:
                families = list(text_string_to_metric_families(path.read_text()))
            except (OSError, ValueError):
                continue
            for family in families:
                into = merged.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                into.samples.extend(family.samples)
        yield from merged.values()


def write_gauges(path: Path, result: DriftResult) -> None:
    registry = CollectorRegistry()
    labels = ["project", "model_version"]
    key = (result.project, result.model_version)

    def gauge(name: str, text: str, extra: list[str] | None = None) -> Gauge:
        return Gauge(name, text, labels + (extra or []), registry=registry)

    gauge("castml_drift_window_rows", "Rows in the last drift window.").labels(*key).set(
        result.rows["current"]
    )
    gauge("castml_drift_labeled_rows", "Window rows with a delayed label.").labels(*key).set(
        result.rows.get("labeled", 0)
    )
    gauge("castml_drift_insufficient_data", "1 when the last window was too small.").labels(
        *key
    ).set(1 if result.status == "insufficient_data" else 0)
    gauge("castml_drift_last_run_timestamp_seconds", "When the drift job last finished.").labels(
        *key
    ).set_to_current_time()
    if result.drift_share is not None:
        gauge("castml_drift_share", "Share of drifted features.").labels(*key).set(
            result.drift_share
        )
        gauge(
            "castml_drift_dataset_drift", "1 when the drift share reached the spec's threshold."
        ).labels(*key).set(1 if result.dataset_drift else 0)
    score = gauge(
        "castml_drift_feature_score", "Per-feature drift score (stat test value).", ["feature"]
    )
    drifted = gauge(
        "castml_drift_feature_drifted", "1 when the feature's drift test failed.", ["feature"]
    )
    for name, feature in result.features.items():
        score.labels(*key, name).set(feature.score)
        drifted.labels(*key, name).set(1 if feature.drifted else 0)
    if result.prediction_drift is not None:
        gauge("castml_drift_prediction_score", "Drift score of the model's probability.").labels(
            *key
        ).set(result.prediction_drift.score)
    for name, value in (result.performance or {}).items():
        gauge(f"castml_realised_{name}", f"Realised {name} over labeled window rows.").labels(
            *key
        ).set(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)  # writes a temp file and renames it
