"""Every metric a dashboard or an alert rule queries is one the code exports.

Exported names come from the real registries (collector, serving) and from a real
drift textfile; expressions are parsed out of the dashboard JSON and the rule YAML.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from monitoring.drift import DriftResult, FeatureDrift
from monitoring.drift_metrics import write_gauges
from monitoring.metrics import CollectorMetrics

ROOT = Path(__file__).resolve().parents[3]
# Identifiers in PromQL that start with our prefix; labels and functions never do.
NAME = re.compile(r"\bcastml_[a-zA-Z0-9_:]*")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}


def _series(families: Any) -> set[str]:
    """The series names a scrape shows for each family (counter `x` is queried as `x_total`)."""
    names: set[str] = set()
    for family in families:
        names.add(family.name)
        names.update(family.name + s for s in SUFFIXES.get(family.type, ()))
    return names


def exported(tmp_path: Path) -> set[str]:
    names = _series(CollectorMetrics().registry.collect())
    result = DriftResult("diecast", "1", {"spec": "1d"}, {"current": 500, "labeled": 300})
    result.drift_share, result.dataset_drift = 0.3, True
    result.features = {"melt_temperature": FeatureDrift(0.01, "ks", 0.05, True)}
    result.prediction_drift = FeatureDrift(0.2, "ks", 0.05, False)
    # The four names drift.read_quality produces.
    result.performance = {"f1": 0.7, "roc_auc": 0.8, "precision": 0.6, "recall": 0.5}
    path = tmp_path / "drift-diecast.prom"
    write_gauges(path, result)
    names |= _series(text_string_to_metric_families(path.read_text()))
    try:
        from serving.metrics import KnowledgeMetrics, ServerMetrics
    except ImportError:  # serving is optional for the monitoring image
        return names
    from serving.forecast_metrics import ForecastApiMetrics, textfile, write_job_metrics

    names |= _series(ServerMetrics("predictor").registry.collect())
    names |= _series(ForecastApiMetrics("bikeshare").registry.collect())
    write_job_metrics(tmp_path, "bikeshare", None, "Redis is down")  # the job's textfile
    names |= _series(text_string_to_metric_families(textfile(tmp_path, "bikeshare").read_text()))
    return names | _series(KnowledgeMetrics("diecast", 10).registry.collect())


def _exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query") and isinstance(value, str):  # query: template variables
                yield value
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs(item)


def referenced(paths: list[Path]) -> dict[str, set[str]]:
    """{metric name: files using it} over dashboards (JSON) and rules (YAML)."""
    out: dict[str, set[str]] = {}
    for path in paths:
        text = path.read_text()
        if path.suffix == ".json":
            exprs = list(_exprs(json.loads(text)))
        elif "{{-" in text:  # a Helm template: not YAML until rendered
            exprs = re.findall(r"expr:\s*(.+)", text)
        else:
            exprs = [e for doc in yaml.safe_load_all(text) for e in _exprs(doc)]
        for expr in exprs:
            for name in NAME.findall(expr):
                out.setdefault(name, set()).add(path.name)
    return out


def test_monitoring_dashboards_and_alert_rules_use_exported_names(tmp_path: Path) -> None:
    files = sorted((ROOT / "monitoring" / "dashboards").glob("*.json"))
    files += sorted((ROOT / "monitoring" / "alerts").glob("*.yaml"))
    used = referenced(files)
    assert len(used) > 20  # the dashboard covers serving, drift, quality and the collector
    unknown = {name: where for name, where in used.items() if name not in exported(tmp_path)}
    assert unknown == {}


def test_dashboard_has_the_four_sections() -> None:
    dashboard = json.loads((ROOT / "monitoring" / "dashboards" / "castml.json").read_text())
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert [r.split()[0] for r in rows] == ["Serving:", "Drift", "Realised", "Collector"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_chart_dashboards_and_rules_use_exported_names(tmp_path: Path) -> None:
    chart = ROOT / "charts" / "castml"
    files = sorted((chart / "dashboards").glob("*.json"))
    files += [chart / "templates" / "monitoring-prometheus.yaml"]
    files += sorted((chart / "alerts").glob("*.yaml"))  # the PrometheusRule's rules
    unknown = {n: w for n, w in referenced(files).items() if n not in exported(tmp_path)}
    assert unknown == {}
