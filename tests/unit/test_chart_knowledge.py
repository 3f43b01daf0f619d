"""The chart's knowledge-base InferenceService (`knowledge.enabled`), rendered with helm and
validated against KServe's CRD and the Kubernetes schemas. Off in the CI scenarios (chart-run
would need a registered `<project>-kb` version), so these renders set it on."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import yaml
from test_chart import CUSTOM_KINDS, container, env_entry, isvc_errors, kv_utils, template


def _render(*sets: str) -> list[dict[str, Any]]:
    result = template("production", "knowledge.enabled=true", *sets)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_knowledge_isvc_validates_and_runs_the_knowledge_role() -> None:
    docs = _render()
    kb = [
        d for d in docs if d["kind"] == "InferenceService" and d["metadata"]["name"].endswith("-kb")
    ]
    assert [d["metadata"]["name"] for d in kb] == ["diecast-kb"]
    assert isvc_errors(kb[0]) == []
    pod = kb[0]["spec"]["predictor"]
    c = container(pod)
    assert c["command"] == ["python", "-m", "serving", "knowledge"]
    assert c["args"] == ["--model_name", "diecast-kb", "--http_port", "8080"]
    assert env_entry(c, "CASTML_MODEL_VERSION") == {
        "name": "CASTML_MODEL_VERSION",
        "value": "champion",
    }
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["image"].endswith("/serving:" + c["image"].rsplit(":", 1)[1])
    assert pod["labels"]["app.kubernetes.io/component"] == "serving-knowledge"
    policies = {d["metadata"]["name"] for d in docs if d["kind"] == "NetworkPolicy"}
    assert any(name.endswith("-knowledge") for name in policies)
    version = kv_utils.latest_version()
    for obj in docs:
        if obj["kind"] not in CUSTOM_KINDS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_knowledge_is_off_by_default_and_its_image_can_be_overridden() -> None:
    off = template("production")
    assert off.returncode == 0 and "diecast-kb" not in off.stdout
    docs = _render("knowledge.image.repository=kb", "knowledge.modelVersion=3")
    kb = next(d for d in docs if d["metadata"]["name"] == "diecast-kb")
    c = container(kb["spec"]["predictor"])
    assert "/kb:" in c["image"]
    assert env_entry(c, "CASTML_MODEL_VERSION") == {"name": "CASTML_MODEL_VERSION", "value": "3"}
