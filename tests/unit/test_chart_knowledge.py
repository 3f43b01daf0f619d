"""The chart's knowledge-base InferenceService (`knowledge.enabled`) and its rollout
reconciler, rendered with helm and validated against KServe's CRD and the Kubernetes
schemas. Off in most CI scenarios (chart-run would need a registered `<project>-kb`
version; the faces scenario has it on), so these renders set it on."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml
from test_chart import (
    CUSTOM_KINDS,
    NAMESPACE,
    RELEASE,
    container,
    env_entry,
    isvc_errors,
    kv_utils,
    leaf_diff,
    pod_labels,
    template,
)
from test_chart_faces_netpol import allowed

from castml import isvc

PINNED_ENV = {
    "name": isvc.MODEL_VERSION_ENV,
    "valueFrom": {
        "fieldRef": {"fieldPath": f"metadata.annotations['{isvc.MODEL_VERSION_ANNOTATION}']"}
    },
}


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
    # Installed on the alias: the server resolves it; the annotation pins nothing yet.
    assert env_entry(c, isvc.MODEL_VERSION_ENV) == PINNED_ENV
    assert pod["annotations"][isvc.MODEL_VERSION_ANNOTATION] == "champion"
    assert (
        kb[0]["metadata"]["annotations"][isvc.MODEL_URI_ANNOTATION] == "models:/diecast-kb@champion"
    )
    assert isvc.pinned_version(kb[0]) is None
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["image"].endswith("/serving:" + c["image"].rsplit(":", 1)[1])
    assert pod["labels"]["app.kubernetes.io/component"] == "serving-knowledge"
    assert env_entry(c, "CASTML_LOGGER_URL")["value"].endswith(
        "-collector.castml.svc.cluster.local:8080/"
    )
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
    assert env_entry(c, isvc.MODEL_VERSION_ENV) == PINNED_ENV
    assert isvc.pinned_version(kb) == 3


def test_the_reconciler_patch_pins_the_knowledge_isvc_where_the_chart_does() -> None:
    """castml/isvc.py's merge patch on the rendered `diecast-kb`: a predictor only, so it
    changes the three annotations the chart renders and creates no explainer."""
    docs = _render("knowledge.modelVersion=3")
    kb = next(d for d in docs if d["metadata"]["name"] == "diecast-kb")
    assert kb["metadata"]["annotations"][isvc.MODEL_URI_ANNOTATION] == isvc.model_uri(
        "diecast-kb", 3
    )
    patched = isvc.apply_merge_patch(kb, isvc.pinned_version_patch_for(kb, 4))
    assert isvc_errors(patched) == []
    assert isvc.pinned_version(patched) == 4
    assert leaf_diff(kb, patched) == {
        ("metadata", "annotations", isvc.MODEL_VERSION_ANNOTATION),
        ("metadata", "annotations", isvc.MODEL_URI_ANNOTATION),
        ("spec", "predictor", "annotations", isvc.MODEL_VERSION_ANNOTATION),
    }
    assert not isvc.needs_patch(patched, 4)
    # Installed on `champion`: the first reconcile pins the number.
    alias = next(d for d in _render() if d["metadata"]["name"] == "diecast-kb")
    assert isvc.needs_patch(alias, 3)
    assert (
        isvc.pinned_version(isvc.apply_merge_patch(alias, isvc.pinned_version_patch_for(alias, 3)))
        == 3
    )


def _reconciler(docs: list[dict[str, Any]], model: str) -> dict[str, Any]:
    [found] = [
        d
        for d in docs
        if d["kind"] == "Deployment" and d["metadata"]["name"] == f"{RELEASE}-rollout-{model}"
    ]
    return found


def test_each_knowledge_base_gets_its_own_rollout_reconciler() -> None:
    docs = _render()
    role = next(
        d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-rollout")
    )
    assert role["rules"][0]["resourceNames"] == ["diecast", "diecast-kb"]
    kb, predictor = _reconciler(docs, "diecast-kb"), _reconciler(docs, "diecast")
    kb_pod, predictor_pod = kb["spec"]["template"]["spec"], predictor["spec"]["template"]["spec"]
    [c] = kb_pod["containers"]
    [pc] = predictor_pod["containers"]
    for name, value in {
        "CASTML_PROJECT": "diecast-kb",
        "CASTML_ISVC_NAME": "diecast-kb",
        "CASTML_ROLLOUT_MODE": "cluster",
    }.items():
        assert env_entry(c, name) == {"name": name, "value": value}
    service = f"{RELEASE}-rollout-diecast-kb"
    assert c["args"] == ["--receiver-url", f"http://{service}.{NAMESPACE}.svc.cluster.local:8080"]
    assert any(d["kind"] == "Service" and d["metadata"]["name"] == service for d in docs)
    # The same reconciler as the predictor's, apart from what names its model.
    differs = {path[0] for path in leaf_diff(pc, c)}
    assert differs <= {"env", "args"}, differs
    assert {k: v for k, v in kb_pod.items() if k != "containers"} == {
        k: v for k, v in predictor_pod.items() if k != "containers"
    }
    # Two Deployments, two selectors that do not overlap (one pod each).
    kb_selector = kb["spec"]["selector"]["matchLabels"]
    assert not kb_selector.items() <= predictor["spec"]["template"]["metadata"]["labels"].items()
    assert (
        not predictor["spec"]["selector"]["matchLabels"].items()
        <= kb["spec"]["template"]["metadata"]["labels"].items()
    )
    # MLflow's webhooks reach it, and it reaches MLflow.
    mlflow = next(
        labels
        for d in docs
        if d["kind"] == "Deployment" and d["metadata"]["name"] == f"{RELEASE}-mlflow"
        for labels in pod_labels(d)
    )
    [kb_labels] = list(pod_labels(kb))
    assert allowed(docs, mlflow, kb_labels, 8080)
    assert allowed(docs, kb_labels, mlflow, 5000)
    assert not allowed(docs, mlflow, kb_labels, 9999)  # the policies do select it


@pytest.mark.parametrize("sets", [("knowledge.rollout=false",), ()])
def test_knowledge_rollout_can_be_turned_off(sets: tuple[str, ...]) -> None:
    docs = _render(*sets)
    names = {d["metadata"]["name"] for d in docs if d["kind"] in {"Deployment", "Service"}}
    assert (f"{RELEASE}-rollout-diecast-kb" in names) is not bool(sets)
    assert f"{RELEASE}-rollout-diecast" in names
