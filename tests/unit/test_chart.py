"""The Helm chart, proven by what runs here: the real helm binary, the Kubernetes schemas
(kubernetes-validate, strict), and KServe's own InferenceService CRD schema (jsonschema).

No cluster is involved: `lookup` sees nothing, so renders are deterministic apart from the
chart's random Secrets, which the golden comparison masks.

Regenerate the golden renders with `CASTML_UPDATE_GOLDEN=1 pytest tests/unit/test_chart.py`.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils as kv_utils

from castml import isvc

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "castml"
# chart-testing's place and naming: charts/<chart>/ci/*-values.yaml
SCENARIOS_DIR = CHART / "ci"
GOLDEN_DIR = REPO / "tests" / "fixtures" / "chart_golden"
KSERVE_CRD = (
    REPO.parent / "shared" / "schemas" / "kserve" / "serving.kserve.io_inferenceservices.yaml"
)
RELEASE, NAMESPACE = "castml", "castml"
SCENARIOS = ("minimal", "production", "canary", "monitoring-off", "faces")
# Custom resources: not in kubernetes-validate's schemas. InferenceService is checked
# against KServe's CRD below; the Prometheus Operator kinds are only rendered.
CUSTOM_KINDS = {"InferenceService", "ServiceMonitor", "PodMonitor", "PrometheusRule"}
POD_SPEC_KINDS = {"Deployment", "StatefulSet", "Job", "CronJob", "Pod"}


# ---------------------------------------------------------------- helpers


@cache
def helm_binary() -> str:
    found = shutil.which("helm") or str(REPO / ".tools" / "bin" / "helm")
    if not Path(found).is_file():
        pytest.fail(
            "helm is not installed: run `bash scripts/install_tools.sh` (or `make tools`), "
            "which unpacks helm and kubectl into .tools/bin",
            pytrace=False,
        )
    return found


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm_binary(), *args], capture_output=True, text=True, timeout=120, check=False
    )


def scenario_file(scenario: str) -> Path:
    return SCENARIOS_DIR / f"{scenario}-values.yaml"


def values_args(scenario: str | None, sets: tuple[str, ...] = ()) -> list[str]:
    args = ["-f", str(scenario_file(scenario))] if scenario else []
    for item in sets:
        args += ["--set", item]
    return args


def template(scenario: str | None, *sets: str) -> subprocess.CompletedProcess[str]:
    return helm(
        "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *values_args(scenario, sets)
    )


@cache
def rendered_text(scenario: str) -> str:
    result = template(scenario)
    assert result.returncode == 0, f"helm template failed for {scenario}:\n{result.stderr}"
    return result.stdout


def rendered(scenario: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered_text(scenario)) if doc]


def objects(scenario: str, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in rendered(scenario) if doc["kind"] == kind]


def one(scenario: str, kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects(scenario, kind) if o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name!r} in {scenario}"
    return matches[0]


def scenario_values(scenario: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(scenario_file(scenario).read_text())
    return loaded


def pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every pod spec an object carries, including the InferenceService components."""
    kind, spec = obj["kind"], obj.get("spec", {})
    if kind == "Pod":
        yield spec
    elif kind in {"Deployment", "StatefulSet", "Job"}:
        yield spec["template"]["spec"]
    elif kind == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]
    elif kind == "InferenceService":
        for component in ("predictor", "transformer", "explainer"):
            if component in spec:
                yield spec[component]
        for canary in spec.get("canary", []):
            yield canary["predictor"]


def pod_labels(obj: dict[str, Any]) -> Iterator[dict[str, str]]:
    kind, spec = obj["kind"], obj.get("spec", {})
    if kind == "Pod":
        yield obj["metadata"]["labels"]
    elif kind in {"Deployment", "StatefulSet", "Job"}:
        yield spec["template"]["metadata"]["labels"]
    elif kind == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    elif kind == "InferenceService":
        for pod in pod_specs(obj):
            yield pod["labels"]


def container(pod: dict[str, Any], name: str = isvc.CONTAINER_NAME) -> dict[str, Any]:
    return next(c for c in pod["containers"] if c["name"] == name)


def env_entry(c: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((e for e in c.get("env", []) if e["name"] == name), None)


def _strict(node: Any) -> None:
    """kubectl's strict field validation: an object with declared properties takes no others."""
    if isinstance(node, dict):
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        for value in node:
            _strict(value)


@cache
def isvc_validator() -> jsonschema.Draft7Validator:
    if not KSERVE_CRD.is_file():
        pytest.skip(f"KServe CRD schema not found at {KSERVE_CRD} (the shared folder is absent)")
    crd = yaml.safe_load(KSERVE_CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
    _strict(schema)
    return jsonschema.Draft7Validator(schema)


def isvc_errors(obj: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message[:300]}"
        for e in isvc_validator().iter_errors(obj)
    ]


def leaf_diff(a: Any, b: Any, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Paths of every leaf that differs between two JSON-like documents."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: set[tuple[str, ...]] = set()
        for key in set(a) | set(b):
            out |= leaf_diff(a.get(key), b.get(key), (*path, str(key)))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = set()
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out |= leaf_diff(x, y, (*path, str(i)))
        return out
    return set() if a == b else {path}


# ---------------------------------------------------------------- helm lint / template


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_passes(scenario: str) -> None:
    result = helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, *values_args(scenario))
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_values_lint_and_render() -> None:
    assert helm("lint", "--strict", str(CHART)).returncode == 0
    assert template(None).returncode == 0


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_rendered_object_validates_against_kubernetes(scenario: str) -> None:
    version = kv_utils.latest_version()
    checked = 0
    for obj in rendered(scenario):
        if obj["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kv_utils.ValidationError as exc:  # pragma: no cover - the failure message
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} ({scenario}): {exc}")
        checked += 1
    assert checked > 10


def test_kubernetes_validation_is_not_vacuous() -> None:
    deployment = copy.deepcopy(one("minimal", "Deployment", f"{RELEASE}-mlflow"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kv_utils.ValidationError):
        kubernetes_validate.validate(deployment, kv_utils.latest_version(), strict=True)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_inference_services_validate_against_the_kserve_crd(scenario: str) -> None:
    services = objects(scenario, "InferenceService")
    assert services
    for obj in services:
        assert isvc_errors(obj) == [], obj["metadata"]["name"]


def test_crd_validation_is_strict() -> None:
    obj = copy.deepcopy(objects("minimal", "InferenceService")[0])
    obj["spec"]["predictor"]["minReplica"] = 1
    assert any("minReplica" in e for e in isvc_errors(obj))


# ---------------------------------------------------------------- bad values


# (id, --set items, a phrase the error must contain)
BAD_VALUES = [
    ("unknown-key", ("mlflow.replicaz=2",), "replicaz"),
    (
        "missing-version",
        ("projects.diecast.modelVersion=null",),
        "projects.diecast.modelVersion is required",
    ),
    ("missing-version-new-project", ("projects.bikeshare.drift=false",), "modelVersion"),
    (
        "missing-external-db-secret",
        ("mlflow.backend.type=external",),
        "mlflow.backend.external.existingSecret is required",
    ),
    ("missing-s3-bucket", ("mlflow.artifacts.type=s3",), "mlflow.artifacts.s3.bucket is required"),
    (
        "invalid-drift-cron",
        ("monitoring.drift.schedule=every day",),
        'monitoring.drift.schedule: "every day" is not a valid 5-field cron',
    ),
    (
        "five-field-kfp-cron",
        ("kfp.retrainCron=0 2 1 * *",),
        'kfp.retrainCron: "0 2 1 * *" is not a valid KFP 6-field cron',
    ),
    (
        "canary-without-version",
        ("projects.diecast.canary.enabled=true",),
        "projects.diecast.canary.modelVersion is required",
    ),
    ("project-name-not-dns", ("projects.Diecast.modelVersion=1",), "Diecast"),
    ("bad-enum", ("serving.pinPolicy=latest",), "pinPolicy"),
]


@pytest.mark.parametrize(("sets", "message"), [pytest.param(s, m, id=i) for i, s, m in BAD_VALUES])
def test_bad_values_fail_with_a_clear_message(sets: tuple[str, ...], message: str) -> None:
    result = template("minimal", *sets)
    assert result.returncode != 0, f"{sets} rendered, but should have failed"
    assert message in result.stderr, result.stderr


# ---------------------------------------------------------------- golden renders


def _masked(text: str) -> str:
    docs = [doc for doc in yaml.safe_load_all(text) if doc]
    for doc in docs:
        if doc["kind"] == "Secret":
            doc["data"] = {key: "<random>" for key in doc.get("data", {})}
    return yaml.safe_dump_all(docs, sort_keys=True, width=120)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_golden_render(scenario: str) -> None:
    golden = GOLDEN_DIR / f"{scenario}.yaml"
    actual = _masked(rendered_text(scenario))
    if os.environ.get("CASTML_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual)
    assert golden.is_file(), f"no golden render: run CASTML_UPDATE_GOLDEN=1 pytest {__file__}"
    expected = golden.read_text()
    if actual != expected:
        import difflib

        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                "golden",
                "rendered",
                n=2,
            )
        )
        pytest.fail(
            f"render of {scenario} differs from {golden} "
            f"(CASTML_UPDATE_GOLDEN=1 regenerates it):\n{diff[:6000]}"
        )


# ---------------------------------------------------------------- one source of truth


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_chart_and_reconciler_patch_agree(scenario: str) -> None:
    """The chart pins the version exactly where castml/isvc.py's merge patch changes it."""
    values_version = scenario_values(scenario)["projects"]["diecast"]["modelVersion"]
    rendered_isvc = one(scenario, "InferenceService", isvc.isvc_name("diecast"))
    assert isvc.pinned_version(rendered_isvc) == values_version
    annotations = rendered_isvc["metadata"]["annotations"]
    assert annotations[isvc.DEPLOYMENT_MODE_ANNOTATION] == isvc.DEPLOYMENT_MODE
    assert annotations[isvc.MODEL_URI_ANNOTATION] == isvc.model_uri("diecast", values_version)

    # The pinned containers read the version from exactly the annotation the patch sets.
    has_explainer = "explainer" in rendered_isvc["spec"]
    for component in ("predictor", "explainer") if has_explainer else ("predictor",):
        c = container(rendered_isvc["spec"][component])
        env = env_entry(c, isvc.MODEL_VERSION_ENV)
        assert env is not None, f"{component} has no {isvc.MODEL_VERSION_ENV}"
        assert env == {
            "name": isvc.MODEL_VERSION_ENV,
            "valueFrom": {
                "fieldRef": {
                    "fieldPath": f"metadata.annotations['{isvc.MODEL_VERSION_ANNOTATION}']"
                }
            },
        }
        assert env_entry(c, isvc.MLFLOW_URI_ENV) is not None
    transformer = container(rendered_isvc["spec"]["transformer"])
    assert env_entry(transformer, isvc.MODEL_VERSION_ENV) is None
    args = transformer["args"]
    assert args[args.index("--predictor_host") + 1] == isvc.predictor_host("diecast", NAMESPACE)
    assert args[args.index("--predictor_protocol") + 1] == "v2"

    new_version = values_version + 5
    patch = isvc.pinned_version_patch_for(rendered_isvc, new_version)
    patched = isvc.apply_merge_patch(rendered_isvc, patch)
    assert isvc_errors(patched) == []
    assert isvc.pinned_version(patched) == new_version

    changed = leaf_diff(rendered_isvc, patched)
    expected = {
        ("metadata", "annotations", isvc.MODEL_VERSION_ANNOTATION),
        ("metadata", "annotations", isvc.MODEL_URI_ANNOTATION),
        ("spec", "predictor", "annotations", isvc.MODEL_VERSION_ANNOTATION),
    }
    if has_explainer:
        expected.add(("spec", "explainer", "annotations", isvc.MODEL_VERSION_ANNOTATION))
    assert changed == expected
    # Reapplying is a no-op, so the reconciler can skip it.
    assert not isvc.needs_patch(patched, new_version)
    assert isvc.needs_patch(rendered_isvc, new_version)


def test_patch_leaves_the_canary_alone() -> None:
    rendered_isvc = one("canary", "InferenceService", "diecast")
    canary = rendered_isvc["spec"]["canary"]
    assert len(canary) == 1 and canary[0]["trafficPercent"] == 20
    assert canary[0]["predictor"]["annotations"][isvc.MODEL_VERSION_ANNOTATION] == "4"
    patched = isvc.apply_merge_patch(rendered_isvc, isvc.pinned_version_patch("diecast", 4))
    assert patched["spec"]["canary"] == canary
    assert isvc_errors(patched) == []


def test_isvc_module_rejects_aliases_and_bad_names() -> None:
    for bad in (0, -1, True, "3", 2.0):
        with pytest.raises(isvc.IsvcShapeError):
            isvc.pinned_version_patch("diecast", bad)  # type: ignore[arg-type]
    with pytest.raises(isvc.IsvcShapeError):
        isvc.isvc_name("Die_Cast")
    assert isvc.apply_merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None}}) == {"a": {"c": 2}}


# ---------------------------------------------------------------- security and wiring


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_restricted_pod_security_everywhere(scenario: str) -> None:
    for obj in rendered(scenario):
        for pod in pod_specs(obj):
            where = f"{obj['kind']}/{obj['metadata']['name']}"
            assert pod["securityContext"]["runAsNonRoot"] is True, where
            assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
            assert pod.get("serviceAccountName"), where
            for c in pod["containers"]:
                sc = c["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False, where
                assert sc["readOnlyRootFilesystem"] is True, where
                assert sc["capabilities"]["drop"] == ["ALL"], where
                assert c.get("resources", {}).get("limits"), f"{where}: no resource limits"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_standard_labels_and_default_deny(scenario: str) -> None:
    docs = rendered(scenario)
    for obj in docs:
        labels = obj["metadata"].get("labels", {})
        for key in ("name", "instance", "version", "component", "managed-by", "part-of"):
            assert f"app.kubernetes.io/{key}" in labels, f"{obj['kind']}/{obj['metadata']['name']}"
    deny = next(o for o in docs if o["metadata"]["name"].endswith("-default-deny"))
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]
    selector = deny["spec"]["podSelector"]["matchLabels"]
    for obj in docs:
        for labels in pod_labels(obj):
            assert selector.items() <= labels.items(), f"{obj['kind']}/{obj['metadata']['name']}"


def test_rollout_rbac_is_least_privilege() -> None:
    docs = rendered("minimal")
    assert not [o for o in docs if o["kind"] in {"ClusterRole", "ClusterRoleBinding"}]
    role = one("minimal", "Role", f"{RELEASE}-rollout")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {
            "apiGroups": [isvc.API_GROUP],
            "resources": [isvc.PLURAL],
            "resourceNames": ["diecast"],
            "verbs": ["get", "patch"],
        }
    ]
    tokens = [
        o["metadata"]["name"]
        for o in docs
        if o["kind"] == "ServiceAccount" and o.get("automountServiceAccountToken")
    ]
    assert tokens == [f"{RELEASE}-rollout"]
    deployment = one("minimal", "Deployment", f"{RELEASE}-rollout-diecast")
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["castml", "rollout", "run"]
    assert env_entry(c, "CASTML_WEBHOOK_SECRET")["valueFrom"]["secretKeyRef"]  # type: ignore[index]


def test_drift_cronjob_and_collector() -> None:
    cron = one("minimal", "CronJob", f"{RELEASE}-drift-diecast")
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"] == [
        "castml", "drift", "run", "--project", "diecast", "--window", "1d",
    ]  # fmt: skip
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    collector = one("minimal", "Deployment", f"{RELEASE}-collector")
    c = collector["spec"]["template"]["spec"]["containers"][0]
    assert c["command"][:4] == ["castml", "collector", "run", "--port"]
    assert env_entry(c, "CASTML_COLLECTOR_TOKEN")["valueFrom"]["secretKeyRef"]  # type: ignore[index]
    assert env_entry(c, "CASTML_HOME")["value"] == "/var/lib/castml"  # type: ignore[index]
    logger = one("minimal", "InferenceService", "diecast")["spec"]["predictor"]["logger"]
    assert logger["url"].startswith(f"http://{RELEASE}-collector.{NAMESPACE}.svc")


def test_monitoring_off_renders_no_monitoring() -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in rendered("monitoring-off")}
    assert not [k for k in kinds if "collector" in k[1] or "drift" in k[1] or k[0] == "CronJob"]
    assert ("Job", f"{RELEASE}-kfp-schedule") not in kinds
    predictor = one("monitoring-off", "InferenceService", "diecast")["spec"]["predictor"]
    assert "logger" not in predictor


def test_kfp_hook_registers_the_monthly_run() -> None:
    job = one("minimal", "Job", f"{RELEASE}-kfp-schedule")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == [
        "castml", "pipeline", "schedule", "--project", "diecast", "--cron", "0 0 2 1 * *",
        "--host", "http://ml-pipeline.kubeflow.svc.cluster.local:8888",
        "--mlflow-uri", f"http://{RELEASE}-mlflow.{NAMESPACE}.svc.cluster.local:5000",
    ]  # fmt: skip
    assert env_entry(c, "CASTML_KFP_HOST")["value"].startswith("http://ml-pipeline.")  # type: ignore[index]


def test_production_uses_external_database_and_s3() -> None:
    docs = rendered("production")
    assert not [o for o in docs if o["kind"] == "StatefulSet"]
    mlflow = one("production", "Deployment", f"{RELEASE}-mlflow")
    c = mlflow["spec"]["template"]["spec"]["containers"][0]
    backend = env_entry(c, "MLFLOW_BACKEND_STORE_URI")
    assert backend == {
        "name": "MLFLOW_BACKEND_STORE_URI",
        "valueFrom": {"secretKeyRef": {"name": "castml-mlflow-db", "key": "uri"}},
    }
    assert env_entry(c, "MLFLOW_ARTIFACTS_DESTINATION")["value"] == "s3://castml-artifacts/mlflow"  # type: ignore[index]
    assert env_entry(c, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION")["value"] == "false"  # type: ignore[index]
    assert "mlflow.example.com" in env_entry(c, "MLFLOW_ALLOWED_HOSTS")["value"]  # type: ignore[index]
    annotations = one("production", "InferenceService", "diecast")["metadata"]["annotations"]
    assert annotations["serving.kserve.io/autoscalerClass"] == "hpa"
    assert {o["kind"] for o in docs} >= {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


def test_helm_test_hook_calls_the_health_endpoints() -> None:
    pod = one("minimal", "Pod", f"{RELEASE}-test-health")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    command = pod["spec"]["containers"][0]["command"]
    assert f"http://{RELEASE}-mlflow.{NAMESPACE}.svc.cluster.local:5000/health" in command
    assert f"http://diecast-predictor.{NAMESPACE}.svc.cluster.local/v2/health/ready" in command


def test_dashboard_configmap_holds_valid_json() -> None:
    cm = one("minimal", "ConfigMap", f"{RELEASE}-dashboards")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["data"], "no dashboard files under charts/castml/dashboards/"
    for text in cm["data"].values():
        assert json.loads(text)["uid"]


# ---------------------------------------------------------------- values hygiene


PARAM = re.compile(r"^\s*##\s*@param\s*(\S+)\s*(\[.*?\])?\s*(.*)$")  # the generator's regex


def value_params() -> dict[str, tuple[str, str]]:
    """{path: (modifiers, description)} of every `## @param` in values.yaml."""
    out: dict[str, tuple[str, str]] = {}
    for line in (CHART / "values.yaml").read_text().splitlines():
        match = PARAM.match(line)
        if match:
            out[match.group(1)] = (match.group(2) or "", match.group(3))
    return out


def value_leaves(node: Any, path: str = "") -> Iterator[str]:
    """Dotted paths of values.yaml's leaves (a list or an empty map is a leaf)."""
    if isinstance(node, dict) and node:
        for key, child in node.items():
            yield from value_leaves(child, f"{path}.{key}" if path else str(key))
    else:
        yield path


def test_every_value_is_documented() -> None:
    """Each leaf of values.yaml has a `## @param`, on itself or on an `[object]` ancestor.

    `make chart-docs` fails the same way (the generator checks its metadata); this runs
    without node.
    """
    params = value_params()
    whole = [p for p, (mods, _) in params.items() if "object" in mods or "array" in mods]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    undocumented = [
        leaf
        for leaf in value_leaves(values)
        if leaf not in params and not any(leaf.startswith(w + ".") for w in whole)
    ]
    assert undocumented == []
    assert all(text.strip() for _, text in params.values())


def _schema_descriptions() -> Any:
    import importlib.util

    path = REPO / "scripts" / "chart-docs" / "schema_descriptions.py"
    spec = importlib.util.spec_from_file_location("schema_descriptions", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_schema_and_readme_carry_the_values_descriptions() -> None:
    """The generated parts are up to date with values.yaml (`make chart-docs`)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    readme = (CHART / "README.md").read_text()
    node_at = _schema_descriptions().node_at
    stale = [
        path
        for path, (_, text) in value_params().items()
        if node_at(schema, path).get("description") != text
        or f"| `{path}` " not in readme
        or text not in readme
    ]
    assert stale == [], "run `make chart-docs`"
    # Each project entry overrides serving.defaults: its keys carry the same descriptions.
    entry = node_at(schema, "projects.<name>.autoscaling.class")["description"]
    assert entry == value_params()["serving.defaults.autoscaling.class"][1]


def test_schema_descriptions_refuse_a_value_the_schema_lacks() -> None:
    module = _schema_descriptions()
    schema = json.loads((CHART / "values.schema.json").read_text())
    with pytest.raises(module.SchemaDriftError, match=r"mlflow\.replicaz"):
        module.apply(schema, {"mlflow.replicaz": "typo"}, [])


def test_schema_rejects_unknown_keys_everywhere() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(values)

    def walk(node: dict[str, Any], path: str) -> Iterator[str]:
        if node.get("type") == "object" and "properties" in node:
            if node.get("additionalProperties") is not False:
                yield path or "<root>"
            for key, child in node["properties"].items():
                yield from walk(child, f"{path}.{key}")

    assert list(walk(schema, "")) == []


def test_ci_scenarios_are_the_tested_ones() -> None:
    """A values file dropped into charts/castml/ci/ is picked up by the tests too."""
    found = {p.name.removesuffix("-values.yaml") for p in SCENARIOS_DIR.glob("*-values.yaml")}
    assert found == set(SCENARIOS)
    assert sorted(p.name for p in SCENARIOS_DIR.iterdir()) == sorted(
        f"{s}-values.yaml" for s in SCENARIOS
    )


def test_chart_ships_the_monitoring_dashboards_unchanged() -> None:
    """charts/castml/dashboards/ is a copy of monitoring/dashboards/ (`make dashboards`)."""
    root = Path(__file__).resolve().parents[2]
    source = {p.name: p.read_text() for p in (root / "monitoring" / "dashboards").glob("*.json")}
    shipped = {
        p.name: p.read_text() for p in (root / "charts" / "castml" / "dashboards").glob("*.json")
    }
    assert shipped == source, "run `make dashboards`"
