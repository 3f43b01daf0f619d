"""The chart's faces (issues 13-15): the web UI, the studio API and the forecast (CronJob,
read API, Redis), rendered by the real helm over the `faces` CI scenario and variations,
and checked against the Kubernetes schemas, the restricted security context, the settings
classes that read their environment, and what their NetworkPolicies let through.

All three are off by default; charts/castml/ci/faces-values.yaml turns them on.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import kubernetes_validate
import pytest
import yaml
from test_chart import (
    CHART,
    CUSTOM_KINDS,
    RELEASE,
    SCENARIOS_DIR,
    helm,
    isvc_errors,
    kv_utils,
    pod_labels,
    pod_specs,
    template,
    values_args,
)

Obj = dict[str, Any]
FACES = "faces"
FACE_COMPONENTS = {"ui", "studio", "forecast-job", "forecast-api", "redis"}


def render(scenario: str | None, *sets: str) -> list[Obj]:
    result = template(scenario, *sets)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@cache
def faces() -> tuple[Obj, ...]:
    return tuple(render(FACES))


def find(docs: Any, kind: str, name: str) -> Obj:
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(hits) == 1, f"expected one {kind} {name}"
    return dict(hits[0])


def component(obj: Obj) -> str:
    return str(obj["metadata"]["labels"].get("app.kubernetes.io/component", ""))


def main_container(obj: Obj) -> Obj:
    return dict(next(pod_specs(obj))["containers"][0])


def env_of(obj: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in main_container(obj).get("env", [])}


# ---------------------------------------------------------------- render and validate


def test_faces_scenario_lints_and_every_object_validates() -> None:
    lint = helm("lint", "--strict", str(CHART), "--namespace", RELEASE, *values_args(FACES))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    version = kv_utils.latest_version()
    kinds = set()
    for obj in faces():
        if obj["kind"] == "InferenceService":
            assert isvc_errors(obj) == [], obj["metadata"]["name"]
        elif obj["kind"] not in CUSTOM_KINDS:
            kubernetes_validate.validate(obj, version, strict=True)
        if component(obj) in FACE_COMPONENTS:
            kinds.add(obj["kind"])
    assert kinds >= {
        "Deployment", "Service", "Ingress", "StatefulSet", "CronJob", "NetworkPolicy",
        "PersistentVolumeClaim", "Secret", "ServiceAccount",
    }  # fmt: skip


def test_faces_are_off_by_default() -> None:
    for docs in (render(None), render("minimal")):
        assert not [d for d in docs if component(d) in FACE_COMPONENTS]


@pytest.mark.parametrize(
    "name", ["ui", "studio", "forecast-api", "redis", "forecast"], ids=lambda n: n
)
def test_each_face_runs_restricted_with_probes_and_no_service_links(name: str) -> None:
    kind = {"redis": "StatefulSet", "forecast": "CronJob"}.get(name, "Deployment")
    obj = find(faces(), kind, f"{RELEASE}-{name}")
    pod = next(pod_specs(obj))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["enableServiceLinks"] is False
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"].startswith(f"{RELEASE}-")
    c = pod["containers"][0]
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert c["resources"]["limits"] and c["resources"]["requests"]
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert "emptyDir" in tmp
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    if kind != "CronJob":
        assert c.get("readinessProbe") and c.get("livenessProbe"), name
    labels = next(pod_labels(obj))
    assert labels["app.kubernetes.io/part-of"] == "castml"


def test_ui_wiring_and_read_only_payload_log() -> None:
    ui = find(faces(), "Deployment", f"{RELEASE}-ui")
    env = {name: e.get("value") for name, e in env_of(ui).items()}
    svc = f"{RELEASE}.svc.cluster.local"
    assert env["CASTML_TRANSFORMER_URL"] == f"http://diecast-transformer.{svc}"
    assert env["CASTML_EXPLAINER_URL"] == f"http://diecast-explainer.{svc}"
    assert env["CASTML_KNOWLEDGE_URL"] == f"http://diecast-kb-predictor.{svc}"
    assert env["CASTML_LOG_DIR"] == "/var/lib/castml/logs"
    assert env["CASTML_UI_HOST"] == "0.0.0.0"
    c = main_container(ui)
    assert c["readinessProbe"]["httpGet"]["path"] == "/_stcore/health"
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/var/lib/castml")
    assert mount["readOnly"] is True
    pod = next(pod_specs(ui))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["persistentVolumeClaim"] == {
        "claimName": f"{RELEASE}-collector-data",
        "readOnly": True,
    }
    # ReadWriteOnce (the default): next to the collector; ReadWriteMany: anywhere.
    assert pod["affinity"]["podAffinity"]
    rwx = find(
        render(FACES, "monitoring.collector.persistence.accessMode=ReadWriteMany"),
        "Deployment",
        f"{RELEASE}-ui",
    )
    assert "affinity" not in next(pod_specs(rwx))


def test_ui_without_monitoring_or_knowledge_points_nowhere_it_cannot_reach() -> None:
    docs = render(
        FACES, "monitoring.enabled=false", "forecast.enabled=false", "knowledge.enabled=false"
    )
    ui = find(docs, "Deployment", f"{RELEASE}-ui")
    env = env_of(ui)
    assert not {"CASTML_LOG_DIR", "CASTML_COLLECTOR_URL", "CASTML_KNOWLEDGE_URL"} & set(env)
    assert "affinity" not in next(pod_specs(ui))
    assert all(m["mountPath"] != "/var/lib/castml" for m in main_container(ui)["volumeMounts"])


def test_ui_ingress() -> None:
    ingress = find(faces(), "Ingress", f"{RELEASE}-ui")
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "castml.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": f"{RELEASE}-ui", "port": {"name": "http"}}
    assert ingress["spec"]["tls"] == [
        {"secretName": "castml-ui-tls", "hosts": ["castml.example.com"]}
    ]
    assert not [d for d in render(FACES, "ui.ingress.enabled=false") if d["kind"] == "Ingress"]


# ---------------------------------------------------------------- secrets


def secret_ref(env: dict[str, Obj], name: str) -> dict[str, str]:
    entry = env[name]
    assert "value" not in entry, f"{name} is a plain value"
    return dict(entry["valueFrom"]["secretKeyRef"])


def test_studio_token_is_always_set_from_a_secret() -> None:
    docs = faces()
    studio = find(docs, "Deployment", f"{RELEASE}-studio")
    ref = secret_ref(env_of(studio), "CASTML_STUDIO_TOKEN")
    secret = find(docs, "Secret", ref["name"])
    token = base64.b64decode(secret["data"][ref["key"]]).decode()
    assert len(token) == 48 and token.isalnum()
    assert main_container(studio)["command"] == ["castml", "studio", "--port", "8000"]
    # An operator's Secret instead: referenced, and the chart renders none of its own.
    mine = render(FACES, "studio.existingSecret=ctr-studio", "studio.tokenKey=bearer")
    ref = secret_ref(env_of(find(mine, "Deployment", f"{RELEASE}-studio")), "CASTML_STUDIO_TOKEN")
    assert ref == {"name": "ctr-studio", "key": "bearer"}
    assert not [d for d in mine if d["kind"] == "Secret" and component(d) == "studio"]


def test_redis_password_comes_from_a_secret_and_never_sits_in_a_url() -> None:
    docs = faces()
    redis = find(docs, "StatefulSet", f"{RELEASE}-redis")
    c = main_container(redis)
    args = c["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    ref = secret_ref(env_of(redis), "REDIS_PASSWORD")
    assert secret_ref(env_of(redis), "REDISCLI_AUTH") == ref
    assert find(docs, "Secret", ref["name"])["data"][ref["key"]]
    for name, kind in (("forecast", "CronJob"), ("forecast-api", "Deployment")):
        env = env_of(find(docs, kind, f"{RELEASE}-{name}"))
        assert secret_ref(env, "CASTML_REDIS_PASSWORD") == ref
        url = env["CASTML_REDIS_URL"]["value"]
        assert url == f"redis://{RELEASE}-redis.{RELEASE}.svc.cluster.local:6379/0"
    assert redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


def test_external_redis_needs_an_existing_secret_and_no_password_in_the_url() -> None:
    url = "redis://redis.cache.svc:6379/1"
    docs = render(FACES, f"forecast.redis.externalUrl={url}", "forecast.redis.existingSecret=cache")
    assert not [d for d in docs if component(d) == "redis"]
    env = env_of(find(docs, "CronJob", f"{RELEASE}-forecast"))
    assert env["CASTML_REDIS_URL"]["value"] == url
    assert secret_ref(env, "CASTML_REDIS_PASSWORD") == {"name": "cache", "key": "password"}
    # Egress to that Redis only: networkPolicy.redisCidrs on networkPolicy.redisPorts.
    cidr = ("networkPolicy.redisCidrs={10.1.0.0/16}", "networkPolicy.redisPorts={6380}")
    external = render(
        FACES, f"forecast.redis.externalUrl={url}", "forecast.redis.existingSecret=c", *cidr
    )
    rule = {
        "to": [{"ipBlock": {"cidr": "10.1.0.0/16"}}],
        "ports": [{"protocol": "TCP", "port": 6380}],
    }
    for name in ("forecast-job", "forecast-api"):
        assert rule in find(external, "NetworkPolicy", f"{RELEASE}-{name}")["spec"]["egress"]
    for sets, message in [
        ((f"forecast.redis.externalUrl={url}",), "forecast.redis.existingSecret is required"),
        (
            ("forecast.redis.externalUrl=redis://:pw@r:6379/0", "forecast.redis.existingSecret=c"),
            "must not carry a password",
        ),
    ]:
        result = template(FACES, *sets)
        assert result.returncode != 0 and message in result.stderr, result.stderr


SECRET_WORDS = re.compile(r"password|token|apikey|api_key|secret", re.IGNORECASE)


def leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, child in node.items():
            yield from leaves(child, f"{path}.{key}" if path else str(key))
    else:
        yield path, node


def test_no_secret_values_in_values_files_or_plain_env() -> None:
    """Values name Secrets and keys in them; they never hold a password or token."""
    files = [CHART / "values.yaml", *sorted(SCENARIOS_DIR.glob("*-values.yaml"))]
    offending = []
    for path in files:
        for key, value in leaves(yaml.safe_load(path.read_text())):
            last = key.rsplit(".", 1)[-1]
            names_a_secret = last.endswith(("Key", "Secret", "Secrets"))
            if SECRET_WORDS.search(last) and not names_a_secret and value not in ("", None, []):
                offending.append(f"{path.name}: {key}")
    assert offending == []
    for obj in faces():
        for pod in pod_specs(obj):
            for c in pod["containers"]:
                plain = [
                    e["name"]
                    for e in c.get("env", [])
                    if SECRET_WORDS.search(e["name"].replace("_", "")) and "value" in e
                ]
                assert plain == [], f"{obj['metadata']['name']}: {plain}"


# ---------------------------------------------------------------- forecast job


def test_forecast_cronjob() -> None:
    cron = find(faces(), "CronJob", f"{RELEASE}-forecast")
    assert cron["spec"]["schedule"] == "*/5 * * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    c = main_container(cron)
    assert c["command"] == ["castml", "forecast", "run"]
    env = env_of(cron)
    assert env["CASTML_FORECAST_PROJECT"]["value"] == "bikeshare"
    assert env["CASTML_HOME"]["value"] == "/var/lib/castml"
    pod = next(pod_specs(cron))
    data = next(v for v in pod["volumes"] if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == f"{RELEASE}-collector-data"
    assert pod["affinity"]["podAffinity"]  # the collector's ReadWriteOnce volume
    api = main_container(find(faces(), "Deployment", f"{RELEASE}-forecast-api"))
    assert api["command"] == ["python", "-m", "serving", "forecast"]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("forecast.job.schedule=every 5 minutes",), 'forecast.job.schedule: "every 5 minutes"'),
        (("monitoring.enabled=false",), "forecast.enabled needs monitoring.enabled"),
        (("ui.project=ctr",), "ui.project (ctr) is not an enabled project"),
        (("studio.port=0",), "/studio/port"),
        (("forecast.redis.maxmemory=lots",), "/forecast/redis/maxmemory"),
    ],
    ids=["bad-cron", "no-collector", "ui-project", "bad-port", "bad-maxmemory"],
)
def test_bad_face_values_fail_with_a_clear_message(sets: tuple[str, ...], message: str) -> None:
    result = template(FACES, *sets)
    assert result.returncode != 0, f"{sets} rendered"
    assert message in result.stderr, result.stderr


# ---------------------------------------------------------------- settings classes


def settings_fields() -> dict[str, set[str]]:
    """Environment names each face's settings class reads (one class per deployable)."""
    from serving.settings import ForecastSettings
    from studio.settings import StudioSettings
    from ui.settings import UiSettings

    def names(cls: Any) -> set[str]:
        return {f"CASTML_{field}".upper() for field in cls.model_fields}

    forecast = names(ForecastSettings)
    return {
        "ui": names(UiSettings),
        "studio": names(StudioSettings),
        "forecast-job": forecast,
        "forecast-api": forecast,
    }


def test_every_castml_variable_is_a_field_of_the_face_settings_class() -> None:
    """Per container, against its own class: a name another class reads is still a typo here."""
    fields, unread = settings_fields(), []
    for obj in faces():
        owner = component(obj)
        if owner not in fields or obj["kind"] not in {"Deployment", "CronJob"}:
            continue
        unread += [
            f"{obj['metadata']['name']}: {name}"
            for name in env_of(obj)
            if name.startswith("CASTML_") and name not in fields[owner]
        ]
    assert unread == []


def test_helm_test_checks_the_faces_health() -> None:
    pod = find(faces(), "Pod", f"{RELEASE}-test-health")
    command = pod["spec"]["containers"][0]["command"]
    svc = f"{RELEASE}.svc.cluster.local"
    assert f"http://{RELEASE}-ui.{svc}:8501/_stcore/health" in command
    assert f"http://{RELEASE}-studio.{svc}:8000/api/health" in command
    assert f"http://{RELEASE}-forecast-api.{svc}:8093/v2/health/ready" in command


def notes(*args: str) -> str:
    done = helm(
        "install", RELEASE, str(CHART), "--namespace", RELEASE, "--dry-run=client", *args
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return str(done.stdout).split("NOTES:", 1)[1]


def test_notes_mention_the_faces_only_when_enabled() -> None:
    text = notes(*values_args(FACES))
    assert f"port-forward svc/{RELEASE}-ui 8501:8501" in text
    assert f"secret {RELEASE}-studio-token" in text
    assert f"cronjob/{RELEASE}-forecast " in text and "/v1/forecast/bikeshare/" in text
    minimal = notes(*values_args("minimal"))
    assert "-ui " not in minimal and "studio" not in minimal.lower() and "forecast" not in minimal
