"""One alert-rule source: the rules are generated from the specs' thresholds, checked in
under monitoring/alerts/, copied into the chart, and shipped by its PrometheusRule."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from castml.cli.alert_rules import RULES_FILE, build_rules, render
from castml.spec import ProjectSpec, Task, list_projects, load_spec

REPO = Path(__file__).resolve().parents[2]
CHECKED_IN = REPO / "monitoring" / "alerts" / RULES_FILE
CHART = REPO / "charts" / "castml"


def rule(groups: list[dict[str, Any]], project: str, alert: str) -> dict[str, Any]:
    group = next(g for g in groups if g["name"] == f"castml-{project}")
    return next(r for r in group["rules"] if r["alert"] == alert)


def thresholds(expr: str) -> list[float]:
    """The numbers a rule compares with, in order (`>= 0.2`, `< 0.5`, `>= 200`)."""
    return [float(n) for n in re.findall(r"(?:>=|<=|<|>|==)\s*([0-9.]+)", expr)]


def with_monitoring(spec: ProjectSpec, **changes: Any) -> ProjectSpec:
    monitoring = spec.monitoring.model_copy(update=changes)
    return spec.model_copy(update={"monitoring": monitoring})


def test_checked_in_rules_are_the_generated_ones() -> None:
    assert CHECKED_IN.read_text() == render(), "run `make alerts`"


def test_chart_ships_the_generated_rules_unchanged() -> None:
    assert (CHART / "alerts" / RULES_FILE).read_text() == CHECKED_IN.read_text(), (
        "run `make alerts`"
    )


def test_every_bundled_project_has_its_drift_alert_at_its_threshold() -> None:
    groups = yaml.safe_load(CHECKED_IN.read_text())["groups"]
    for name in list_projects():
        spec = load_spec(name)
        drift = rule(groups, name, "CastmlDatasetDrift")
        assert f'{{project="{name}"}}' in drift["expr"]
        assert thresholds(drift["expr"]) == [spec.monitoring.drift_share]
        assert drift["labels"]["retrain_reason"] == "drift"


def test_performance_alert_follows_the_spec() -> None:
    spec = load_spec("diecast")
    assert spec.monitoring.min_f1 is not None
    f1 = rule(build_rules([spec])["groups"], "diecast", "CastmlRealisedF1Low")
    assert thresholds(f1["expr"]) == [spec.monitoring.min_f1, spec.monitoring.min_window_rows]

    # A spec's change moves the rule: nothing is hard-coded.
    moved = with_monitoring(spec, min_f1=0.62, min_window_rows=80, drift_share=0.4)
    groups = build_rules([moved])["groups"]
    assert thresholds(rule(groups, "diecast", "CastmlRealisedF1Low")["expr"]) == [0.62, 80]
    assert thresholds(rule(groups, "diecast", "CastmlDatasetDrift")["expr"]) == [0.4]

    # No floor, or no classifier: no performance alert.
    for other in (with_monitoring(spec, min_f1=None), load_spec("diabetes")):
        assert other.monitoring.min_f1 is None or other.task != Task.BINARY
        alerts = [r["alert"] for g in build_rules([other])["groups"] for r in g["rules"]]
        assert "CastmlRealisedF1Low" not in alerts


def helm_binary() -> str:
    found = REPO / ".tools" / "bin" / "helm"
    if not found.is_file():
        pytest.fail("helm is not installed: run `make tools`", pytrace=False)
    return str(found)


def test_rendered_prometheus_rule_carries_drift_and_performance_alerts() -> None:
    result = subprocess.run(
        [helm_binary(), "template", "castml", str(CHART), "--namespace", "castml",
         "-f", str(CHART / "ci" / "production-values.yaml")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    (prometheus_rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    groups = prometheus_rule["spec"]["groups"]
    spec = load_spec("diecast")
    drift = rule(groups, "diecast", "CastmlDatasetDrift")
    assert thresholds(drift["expr"]) == [spec.monitoring.drift_share]
    f1 = rule(groups, "diecast", "CastmlRealisedF1Low")
    assert thresholds(f1["expr"]) == [spec.monitoring.min_f1, spec.monitoring.min_window_rows]
    assert f1["labels"]["retrain_reason"] == "performance"
    # Prometheus, not Helm, expands the annotations' templates.
    assert "{{ $labels.project }}" in f1["annotations"]["summary"]
    assert groups == yaml.safe_load(CHECKED_IN.read_text())["groups"]


def test_a_forecast_project_gets_its_job_and_cache_alerts_and_only_it() -> None:
    groups = build_rules([load_spec("bikeshare"), load_spec("diecast")])["groups"]
    failing = rule(groups, "bikeshare", "CastmlForecastJobFailing")
    assert 'castml_forecast_job_success{project="bikeshare"}' in failing["expr"]
    assert "== 0" in failing["expr"] and failing["labels"]["severity"] == "critical"
    assert (
        'castml_forecast_redis_up{project="bikeshare"}'
        in rule(groups, "bikeshare", "CastmlForecastCacheDown")["expr"]
    )
    assert thresholds(rule(groups, "bikeshare", "CastmlForecastStale")["expr"]) == [900.0]
    diecast = next(g for g in groups if g["name"] == "castml-diecast")
    assert not [r for r in diecast["rules"] if r["alert"].startswith("CastmlForecast")]
