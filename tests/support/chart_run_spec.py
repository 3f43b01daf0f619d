"""From a rendered container to the process the kubelet would start (`ProcessSpec`).

What the kubelet and the runtime do, and what this module does in their place:
- argv: the image's ENTRYPOINT/CMD overridden by `command`/`args`, `$(VAR)` expanded;
- env: the image's ENV, under the Service links, under `envFrom` and `env` (fieldRef,
  secretKeyRef, configMapKeyRef resolved from the rendered objects, or from `secrets`
  the caller supplies for an existingSecret), `$(VAR)` expanded in order;
- the user: `runAsUser`/`runAsGroup` (else the image's USER) and `fsGroup` as a
  supplementary group; `allowPrivilegeEscalation: false` -> no_new_privs;
- volumes: emptyDir per pod, a PVC per claim (shared by the pods that claim it), Secret
  and ConfigMap files, the service-account token when it is mounted automatically;
- Service names and the container's own ports: see chart_run_network.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.chart_run_network import HostRewriter, rewrite_own_ports
from tests.support.chart_run_render import Obj, Workload, image_facts, image_name

ENV_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
SA_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


class NotRunnableError(Exception):
    """The container cannot be run here; the message says why (a skip, not a failure)."""


@dataclass(frozen=True)
class Mount:
    host: str
    path: str
    read_only: bool = False


@dataclass(frozen=True)
class Probe:
    kind: str  # startup | readiness | liveness
    handler: str  # httpGet | tcpSocket | grpc | exec
    port: int = 0  # the loopback port
    path: str = "/"
    command: tuple[str, ...] = ()
    budget_s: float = 30.0  # initialDelay + failureThreshold * period (+ timeout)
    timeout_s: float = 1.0


@dataclass
class ProcessSpec:
    ref: str
    argv: list[str]
    env: dict[str, str]
    workdir: str
    uid: int
    gid: int
    groups: list[int]
    mounts: list[Mount]
    probes: list[Probe]
    completes: bool  # a Job, CronJob or helm-test pod: judged by its exit status
    ports: dict[int, int] = field(default_factory=dict)  # containerPort -> loopback
    no_new_privs: bool = True


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: `$$` is a literal `$`, unknown names stay as written."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return ENV_REF.sub(one, text)


@dataclass
class Objects:
    """Secrets and ConfigMaps by name, the rendered ones and those a caller supplies."""

    secrets: dict[str, dict[str, str]]
    config_maps: dict[str, dict[str, str]]

    @classmethod
    def of(cls, objects: list[Obj], supplied: dict[str, dict[str, str]]) -> Objects:
        secrets = dict(supplied)
        maps: dict[str, dict[str, str]] = {}
        for o in objects:
            name = o["metadata"]["name"]
            if o["kind"] == "Secret":
                data = {k: base64.b64decode(v).decode() for k, v in (o.get("data") or {}).items()}
                secrets[name] = data | dict(o.get("stringData") or {})
            elif o["kind"] == "ConfigMap":
                maps[name] = {k: str(v) for k, v in (o.get("data") or {}).items()}
        return cls(secrets, maps)

    def key(self, kind: str, ref: Obj) -> str | None:
        store = self.secrets if kind == "Secret" else self.config_maps
        found = store.get(ref["name"], {}).get(ref["key"])
        if found is None and not ref.get("optional"):
            where = "existingSecret the operator creates" if kind == "Secret" else "not rendered"
            raise NotRunnableError(
                f"{kind} {ref['name']!r} key {ref['key']!r} is not rendered ({where})"
            )
        return found


def field_value(w: Workload, path: str) -> str:
    meta = w.pod_meta
    if m := re.fullmatch(r"metadata\.(annotations|labels)\['(.+)'\]", path):
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": w.pod_name,
        "metadata.namespace": w.namespace,
        "metadata.uid": "00000000-0000-4000-8000-000000000000",
        "spec.nodeName": "chart-run",
        "spec.serviceAccountName": str(w.pod_spec.get("serviceAccountName", "default")),
        "status.podIP": "127.0.0.1",
        "status.podIPs": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    if path not in simple:
        raise NotRunnableError(f"fieldRef {path!r} is not supported by the harness")
    return simple[path]


def container_env(w: Workload, objs: Objects, links: dict[str, str]) -> dict[str, str]:
    """envFrom, env and the Service links, in the kubelet's order and precedence."""
    c, env = w.container, {}
    for source in c.get("envFrom", []):
        kind, ref = (
            ("Secret", source.get("secretRef"))
            if "secretRef" in source
            else ("ConfigMap", source.get("configMapRef"))
        )
        store = objs.secrets if kind == "Secret" else objs.config_maps
        if ref["name"] not in store and not ref.get("optional"):
            raise NotRunnableError(f"{kind} {ref['name']!r} (envFrom) is not rendered")
        env.update({source.get("prefix", "") + k: v for k, v in store.get(ref["name"], {}).items()})
    visible = {**links, **env}
    for e in c.get("env", []):
        value: str | None
        if "valueFrom" not in e:
            value = expand(str(e.get("value", "")), visible)
        elif "fieldRef" in (src := e["valueFrom"]):
            value = field_value(w, src["fieldRef"]["fieldPath"])
        elif "secretKeyRef" in src:
            value = objs.key("Secret", src["secretKeyRef"])
        elif "configMapKeyRef" in src:
            value = objs.key("ConfigMap", src["configMapKeyRef"])
        else:
            raise NotRunnableError(f"env {e['name']}: valueFrom {sorted(src)} is not supported")
        if value is not None:
            env[e["name"]] = visible[e["name"]] = value
    return {**links, **env}


def process_argv(
    w: Workload, env: dict[str, str]
) -> tuple[list[str], dict[str, str], str, tuple[int, int]]:
    """argv, image env, working dir and image user, with the image mapped onto the venv."""
    facts = image_facts(image_name(w.container["image"]))
    if facts is None:
        raise NotRunnableError(
            f"image {w.container['image']} is not one we build (no stand-in here)"
        )
    c = w.container
    entry = c.get("command", facts.entrypoint)
    args = c.get("args", [] if "command" in c else facts.cmd)
    argv = [expand(str(a), env) for a in [*entry, *args]]
    if not argv:
        raise NotRunnableError("neither the container nor the image says what to run")
    argv[0] = facts.files.get(argv[0], argv[0])
    return argv, facts.env, c.get("workingDir") or facts.workdir, facts.user


def _seconds(probe: Obj) -> float:
    period = float(probe.get("periodSeconds", 10))
    return (
        float(probe.get("initialDelaySeconds", 0))
        + float(probe.get("failureThreshold", 3)) * period
    )


def probes(w: Workload, ports: dict[int, int]) -> list[Probe]:
    found = []
    named = {p.get("name"): int(p["containerPort"]) for p in w.container.get("ports", [])}
    for kind in ("startup", "readiness", "liveness"):
        p = w.container.get(f"{kind}Probe")
        if not p:
            continue
        budget, timeout = _seconds(p), float(p.get("timeoutSeconds", 1))
        handler = next(h for h in ("httpGet", "tcpSocket", "grpc", "exec") if h in p)
        body = p[handler]
        port = body.get("port", 0)
        port = named.get(port, 0) if isinstance(port, str) and not port.isdigit() else int(port)
        local = ports.get(port, port)
        found.append(
            Probe(
                kind,
                handler,
                local,
                body.get("path", "/"),
                tuple(body.get("command", ())),
                budget,
                timeout,
            )
        )
    return found


@dataclass
class VolumeMaker:
    """Host folders standing in for the pod's volumes, under one run folder."""

    root: Path
    objs: Objects

    def _dir(self, *parts: str, owner: tuple[int, int], mode: int) -> str:
        path = self.root.joinpath(*parts)
        if not path.exists():
            path.mkdir(parents=True)
            os.chown(path, *owner)
            path.chmod(mode)
        return str(path)

    def _files(self, where: str, data: dict[str, str], gid: int) -> str:
        path = Path(self._dir("files", where, owner=(0, gid), mode=0o755))
        for key, value in data.items():
            (path / key).write_text(value)
            (path / key).chmod(0o644)
        return str(path)

    def host_dir(self, w: Workload, volume: Obj, owner: tuple[int, int]) -> str:
        name = volume["name"]
        if "emptyDir" in volume:
            return self._dir("empty", w.ref.replace("/", "_"), name, owner=owner, mode=0o777)
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            return self._dir("pvc", claim, owner=owner, mode=0o2775)
        if "secret" in volume:
            ref = {"name": volume["secret"]["secretName"], "key": ""}
            if ref["name"] not in self.objs.secrets:
                raise NotRunnableError(f"Secret {ref['name']!r} (volume {name}) is not rendered")
            return self._files(f"secret-{ref['name']}", self.objs.secrets[ref["name"]], owner[1])
        if "configMap" in volume:
            cm = volume["configMap"]["name"]
            return self._files(f"cm-{cm}", self.objs.config_maps.get(cm, {}), owner[1])
        raise NotRunnableError(f"volume {name}: {sorted(set(volume) - {'name'})} is not supported")

    def service_account(self, w: Workload, gid: int) -> str:
        """The token volume the kubelet projects: a token, the namespace, a CA bundle."""
        sa = str(w.pod_spec.get("serviceAccountName", "default"))
        where = self.root / "files" / f"sa-{sa}"
        if not where.exists():
            self._files(
                f"sa-{sa}",
                {
                    "token": f"chart-run-token-{sa}",
                    "namespace": w.namespace,
                    "ca.crt": self_signed_pem(),
                },
                gid,
            )
        return str(where)


def self_signed_pem() -> str:
    """A real CA certificate (the kubelet's bundle), so TLS set-up fails only on connect."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chart-run-ca")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def build(
    w: Workload,
    objs: Objects,
    volumes: VolumeMaker,
    links: dict[str, str],
    ports: dict[int, int],
    hosts: HostRewriter,
) -> ProcessSpec:
    """The process for one container; NotRunnableError says why there is none."""
    env = container_env(w, objs, links)
    argv, image_env, workdir, image_user = process_argv(w, env)
    env = {**image_env, **env}
    pod_sc, sc = w.pod_spec.get("securityContext") or {}, w.container.get("securityContext") or {}
    uid = int(sc.get("runAsUser", pod_sc.get("runAsUser", image_user[0])))
    gid = int(sc.get("runAsGroup", pod_sc.get("runAsGroup", image_user[1])))
    groups = [int(g) for g in pod_sc.get("supplementalGroups", [])]
    fs_group = pod_sc.get("fsGroup")
    if fs_group is not None:
        groups.append(int(fs_group))
    if uid == 0 and sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
        raise ValueError("runAsNonRoot is set but the container would run as root")
    owner = (uid, int(fs_group) if fs_group is not None else gid)
    by_name = {v["name"]: v for v in w.pod_spec.get("volumes", [])}
    mounts = []
    for m in w.container.get("volumeMounts", []):
        if m["name"] in by_name:
            host = volumes.host_dir(w, by_name[m["name"]], owner)
        elif m["name"] in w.claim_templates:  # the StatefulSet's claim `<template>-<pod>`
            claim = {"claimName": f"{m['name']}-{w.pod_name}"}
            host = volumes.host_dir(w, {"name": m["name"], "persistentVolumeClaim": claim}, owner)
        else:
            raise NotRunnableError(f"volumeMount {m['name']} names no pod volume")
        mounts.append(Mount(host, m["mountPath"], bool(m.get("readOnly"))))
    if w.pod_spec.get("automountServiceAccountToken", True):
        mounts.append(Mount(volumes.service_account(w, owner[1]), SA_PATH, read_only=True))
    rewrite_own_ports(argv, env, ports)
    argv = [hosts(a) for a in argv]
    env = {k: hosts(v) for k, v in env.items()}
    env.setdefault("HOSTNAME", w.pod_name)
    return ProcessSpec(
        w.ref,
        argv,
        env,
        workdir,
        uid,
        gid,
        groups,
        mounts,
        probes(w, ports),
        w.runs_to_completion,
        ports,
        sc.get("allowPrivilegeEscalation") is False,
    )
