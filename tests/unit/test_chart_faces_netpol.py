"""What the chart's NetworkPolicies let through for the faces (ui, studio, forecast, Redis):
the rendered policies of the `faces` CI scenario are evaluated for pod-to-pod flows, as a
NetworkPolicy implementation would (a flow needs an egress allow at its source and an
ingress allow at its destination, once any policy selects them), instead of comparing
YAML. Peers in other namespaces (namespaceSelector) are checked as values only.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_chart import RELEASE, pod_labels
from test_chart_faces import FACES, faces, find, render

Obj = dict[str, Any]


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    if not all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        assert expr["operator"] == "In", expr
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def peer_admits(rules: list[Obj], peer_labels: dict[str, str], port: int) -> bool:
    """Some rule admits this pod of the release's namespace on this port. A rule with no
    peers admits everyone; a namespaceSelector-only peer is another namespace's pods."""
    for rule in rules:
        peers = rule.get("to", rule.get("from"))
        ports = [p["port"] for p in rule.get("ports", [])]
        if ports and port not in ports:
            continue
        if peers is None or any(
            "podSelector" in p
            and "namespaceSelector" not in p
            and selects(p["podSelector"], peer_labels)
            for p in peers
        ):
            return True
    return False


def allowed(docs: Any, src: dict[str, str], dst: dict[str, str], port: int) -> bool:
    """What the rendered NetworkPolicies let through from pod `src` to pod `dst` on `port`."""
    policies = [d["spec"] for d in docs if d["kind"] == "NetworkPolicy"]
    out = [p for p in policies if "Egress" in p["policyTypes"] and selects(p["podSelector"], src)]
    into = [p for p in policies if "Ingress" in p["policyTypes"] and selects(p["podSelector"], dst)]
    egress_ok = not out or any(peer_admits(p.get("egress", []), dst, port) for p in out)
    ingress_ok = not into or any(peer_admits(p.get("ingress", []), src, port) for p in into)
    return egress_ok and ingress_ok


def pods_by_component(docs: Any) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for obj in docs:
        for labels in pod_labels(obj):
            found.setdefault(labels["app.kubernetes.io/component"], dict(labels))
    return found


# (from, to, port, allowed)
FLOWS = [
    ("ui", "serving-transformer", 8080, True),
    ("ui", "serving-explainer", 8080, True),
    ("ui", "serving-predictor", 8080, True),
    ("ui", "serving-knowledge", 8080, True),
    ("ui", "mlflow", 5000, True),
    ("ui", "collector", 8080, True),
    ("ui", "redis", 6379, False),
    ("ui", "studio", 8000, False),
    ("ui", "postgresql", 5432, False),
    ("studio", "mlflow", 5000, True),
    ("studio", "serving-predictor", 8080, False),
    ("studio", "redis", 6379, False),
    ("forecast-job", "redis", 6379, True),
    ("forecast-job", "mlflow", 5000, True),
    ("forecast-job", "collector", 8080, False),
    ("forecast-api", "redis", 6379, True),
    ("forecast-api", "mlflow", 5000, False),
    ("serving-predictor", "redis", 6379, False),
    ("serving-explainer", "serving-predictor", 8080, True),
    # The knowledge base logs each query to the collector itself (no logger sidecar).
    ("serving-knowledge", "collector", 8080, True),
    ("serving-knowledge", "redis", 6379, False),
    ("test", "ui", 8501, True),
    ("test", "studio", 8000, True),
    ("test", "forecast-api", 8093, True),
]


@pytest.mark.parametrize(("src", "dst", "port", "expected"), FLOWS, ids=lambda v: str(v))
def test_network_policies_let_through_only_what_each_face_calls(
    src: str, dst: str, port: int, expected: bool
) -> None:
    docs = faces()
    pods = pods_by_component(docs)
    assert allowed(docs, pods[src], pods[dst], port) is expected


def test_the_policy_evaluation_is_not_vacuous() -> None:
    docs = faces()
    pods = pods_by_component(docs)
    assert allowed(docs, pods["ui"], pods["serving-transformer"], 8080)
    # Without the UI's own policy its egress falls back to the default deny.
    fewer = [
        d for d in docs if d["metadata"]["name"] != f"{RELEASE}-ui" or d["kind"] != "NetworkPolicy"
    ]
    assert not allowed(fewer, pods["ui"], pods["serving-transformer"], 8080)
    # The UI is admitted by name: another face is not.
    assert not allowed(docs, pods["studio"], pods["serving-transformer"], 8080)
    # Only the faces scenario's UI is admitted: minimal renders no rule naming it.
    minimal = render("minimal")
    assert not allowed(minimal, pods["ui"], pods_by_component(minimal)["serving-transformer"], 8080)


def test_external_peers_come_from_values() -> None:
    docs = faces()
    policy = find(docs, "NetworkPolicy", f"{RELEASE}-ui")["spec"]
    froms = policy["ingress"][0]["from"]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    } in froms
    collector = find(docs, "NetworkPolicy", f"{RELEASE}-collector")["spec"]
    observed = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "bikeshare"}}}
    assert observed in collector["ingress"][0]["from"]
    studio = find(
        render(
            FACES,
            "studio.llm.url=https://llm.example.com/v1",
            "networkPolicy.llmCidrs={10.9.0.0/16}",
        ),
        "NetworkPolicy",
        f"{RELEASE}-studio",
    )
    assert {
        "to": [{"ipBlock": {"cidr": "10.9.0.0/16"}}],
        "ports": [{"protocol": "TCP", "port": 443}],
    } in studio["spec"]["egress"]


def test_the_knowledge_base_may_reach_its_llm_and_gets_its_settings() -> None:
    sets = (
        "knowledge.llm.url=https://llm.example.com/v1",
        "knowledge.llm.existingSecret=llm-key",
        "networkPolicy.llmCidrs={10.9.0.0/16}",
    )
    docs = render(FACES, *sets)
    llm_egress = {
        "to": [{"ipBlock": {"cidr": "10.9.0.0/16"}}],
        "ports": [{"protocol": "TCP", "port": 443}],
    }
    assert llm_egress in find(docs, "NetworkPolicy", f"{RELEASE}-knowledge")["spec"]["egress"]
    assert (
        llm_egress not in find(faces(), "NetworkPolicy", f"{RELEASE}-knowledge")["spec"]["egress"]
    )
    kb = find(docs, "InferenceService", "diecast-kb")
    env = {e["name"]: e for e in kb["spec"]["predictor"]["containers"][0]["env"]}
    assert env["CASTML_LLM_BASE_URL"]["value"] == "https://llm.example.com/v1"
    assert env["CASTML_LLM_MODEL"]["value"] == "gpt-4o-mini"
    assert env["CASTML_LLM_API_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "llm-key", "key": "api-key"}
    }


def test_a_studio_that_trains_on_kfp_is_told_where_and_may_reach_it() -> None:
    docs = render(FACES, "studio.trainOn=cluster")
    studio = find(docs, "Deployment", f"{RELEASE}-studio")
    env = {
        e["name"]: e.get("value")
        for e in studio["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["CASTML_STUDIO_KFP_HOST"] == "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
    to_kfp = {
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}}}],
        "ports": [{"protocol": "TCP", "port": 8888}],
    }
    assert to_kfp in find(docs, "NetworkPolicy", f"{RELEASE}-studio")["spec"]["egress"]
    local = faces()
    assert to_kfp not in find(local, "NetworkPolicy", f"{RELEASE}-studio")["spec"]["egress"]
    local_env = find(local, "Deployment", f"{RELEASE}-studio")["spec"]["template"]["spec"]
    assert "CASTML_STUDIO_KFP_HOST" not in {e["name"] for e in local_env["containers"][0]["env"]}
