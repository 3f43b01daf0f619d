"""Cluster names on loopback: every Service (and each container's own listen port) of a
rendered chart gets a free 127.0.0.1 port, and the env values and args that name them
are rewritten to it.

The mapping, for a Service `svc` in namespace `ns` with port `p`:

    svc.ns.svc.cluster.local[:p], svc.ns.svc[:p], svc.ns[:p]   -> 127.0.0.1:<L>
    svc:p, http://svc, user@svc                                -> 127.0.0.1:<L>

where L is the free loopback port of the container behind the Service's targetPort (or
the address a caller supplies, e.g. the test's MLflow). A bare `svc` with no port, no
scheme and no dot is left alone: it is as likely a project name as a host. Without a port,
`http://` means 80, `https://` 443, otherwise the Service's only port.

A container's own listen ports are rewritten too, since two containers may render the
same one: the value after a `--*port*` flag (`--port 8090`, `--http_port=8080`), an env
var named `*PORT` holding a number, and every declared containerPort (for probes).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from tests.support.chart_run_render import Obj, Workload

CLUSTER_SUFFIXES = ("", ".{ns}", ".{ns}.svc", ".{ns}.svc.cluster.local")
_PORT_FLAG = re.compile(r"^--?[\w-]*port$", re.IGNORECASE)
_PORT_FLAG_EQ = re.compile(r"^(--?[\w-]*port=)(\d+)$", re.IGNORECASE)


class PortPool:
    """Free loopback ports, never the same one twice within a run."""

    def __init__(self) -> None:
        self.taken: set[int] = set()

    def take(self) -> int:
        from tests.support.ports import free_port

        while (port := free_port()) in self.taken:
            pass
        self.taken.add(port)
        return port


def listen_ports(w: Workload) -> set[int]:
    """Ports the container itself listens on, as rendered."""
    c = w.container
    found = {int(p["containerPort"]) for p in c.get("ports", [])}
    words = [str(a) for a in (c.get("command") or []) + (c.get("args") or [])]
    for flag, value in itertools.pairwise(words):
        if _PORT_FLAG.match(flag) and value.isdigit():
            found.add(int(value))
    found |= {int(m.group(2)) for m in map(_PORT_FLAG_EQ.match, words) if m}
    for e in c.get("env", []):
        if e["name"].upper().endswith("PORT") and str(e.get("value", "")).isdigit():
            found.add(int(e["value"]))
    return found


def rewrite_own_ports(words: list[str], env: dict[str, str], ports: dict[int, int]) -> None:
    """In place: the container's own listen ports -> their loopback ports."""
    for i in range(1, len(words)):
        if _PORT_FLAG.match(words[i - 1]) and words[i].isdigit() and int(words[i]) in ports:
            words[i] = str(ports[int(words[i])])
    for i, word in enumerate(words):
        m = _PORT_FLAG_EQ.match(word)
        if m and int(m.group(2)) in ports:
            words[i] = f"{m.group(1)}{ports[int(m.group(2))]}"
    for key, value in env.items():
        if key.upper().endswith("PORT") and value.isdigit() and int(value) in ports:
            env[key] = str(ports[int(value)])


@dataclass
class ServiceAddress:
    """Where one Service's ports land on loopback."""

    name: str
    namespace: str
    ports: dict[int, int]  # service port -> loopback port
    port_names: dict[int, str] = field(default_factory=dict)


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _target(w: Workload, target: object, ports: dict[int, int]) -> int | None:
    if isinstance(target, int) or str(target).isdigit():
        return ports.get(int(str(target)))
    for p in w.container.get("ports", []):
        if p.get("name") == target:
            return ports.get(int(p["containerPort"]))
    return None


def services(
    objects: list[Obj],
    ws: list[Workload],
    own_ports: dict[str, dict[int, int]],
    external: dict[str, int],
) -> list[ServiceAddress]:
    """The rendered Services, KServe's per-component Services, and the external ones
    (`external`: Service name -> a loopback port the caller serves it on)."""
    found: list[ServiceAddress] = []
    for obj in objects:
        if obj["kind"] != "Service":
            continue
        meta, spec = obj["metadata"], obj["spec"]
        addr = ServiceAddress(meta["name"], meta.get("namespace", ""), {})
        backends = [
            w
            for w in ws
            if w.kind in {"Deployment", "StatefulSet"}
            and _selects(spec.get("selector", {}), w.pod_meta.get("labels", {}))
        ]
        for p in spec.get("ports", []):
            addr.port_names[int(p["port"])] = p.get("name", "")
            if meta["name"] in external:
                addr.ports[int(p["port"])] = external[meta["name"]]
                continue
            for w in backends:
                local = _target(w, p.get("targetPort", p["port"]), own_ports[w.ref])
                if local:
                    addr.ports[int(p["port"])] = local
        found.append(addr)
    # KServe (Standard mode) makes `<isvc>-<component>` on port 80 -> the container's port,
    # and `<isvc>` itself, which fronts the transformer when there is one.
    isvc = [w for w in ws if w.kind == "InferenceService" and w.component != "canary-predictor"]
    fronts: dict[str, Workload] = {}
    for w in isvc:
        port = int(w.container["ports"][0]["containerPort"])
        local = own_ports[w.ref][port]
        found.append(ServiceAddress(f"{w.owner}-{w.component}", w.namespace, {80: local}))
        if w.component == "transformer" or w.owner not in fronts:
            fronts[w.owner] = w
    for owner, w in fronts.items():
        port = int(w.container["ports"][0]["containerPort"])
        found.append(ServiceAddress(owner, w.namespace, {80: own_ports[w.ref][port]}))
    return found


class HostRewriter:
    """Rewrites Service host names in a string to 127.0.0.1:<loopback port>."""

    def __init__(self, addresses: list[ServiceAddress]) -> None:
        self.by_host: dict[str, ServiceAddress] = {}
        for a in addresses:
            for suffix in CLUSTER_SUFFIXES:
                self.by_host[a.name + suffix.format(ns=a.namespace)] = a
        names = sorted(self.by_host, key=len, reverse=True)
        alternatives = "|".join(re.escape(n) for n in names) or r"(?!x)x"
        self.pattern = re.compile(
            r"(?P<scheme>[a-z][a-z0-9+.-]*://)?(?P<user>[^\s/@]*@)?"
            rf"(?<![\w.-])(?P<host>{alternatives})(?::(?P<port>\d+))?(?![\w.-])",
            re.IGNORECASE,
        )
        self.unmapped: set[str] = set()

    def __call__(self, text: str) -> str:
        return self.pattern.sub(self._one, text)

    def _one(self, m: re.Match[str]) -> str:
        host, scheme, port = m.group("host"), m.group("scheme") or "", m.group("port")
        addr = self.by_host[host]
        bare = not port and not scheme and not m.group("user") and "." not in host
        if bare:
            return m.group(0)
        if port:
            wanted = int(port)
        elif scheme.lower().startswith("https"):
            wanted = 443
        elif scheme.lower().startswith("http"):
            wanted = 80
        elif len(addr.port_names) == 1:
            wanted = next(iter(addr.port_names))
        else:
            wanted = next(iter(addr.ports), 0)
        local = addr.ports.get(wanted)
        if local is None:
            self.unmapped.add(f"{host}:{wanted}")
            return m.group(0)
        return f"{scheme}{m.group('user') or ''}127.0.0.1:{local}"


def service_links(addresses: list[ServiceAddress], namespace: str) -> dict[str, str]:
    """The variables the kubelet adds for every Service of the namespace
    (enableServiceLinks, on by default), pointing at loopback."""
    env: dict[str, str] = {}
    for a in addresses:
        if a.namespace != namespace or not a.ports:
            continue
        prefix = re.sub(r"[^A-Z0-9]", "_", a.name.upper())
        first = next(iter(a.ports.values()))
        env[f"{prefix}_SERVICE_HOST"] = "127.0.0.1"
        env[f"{prefix}_SERVICE_PORT"] = str(first)
        env[f"{prefix}_PORT"] = f"tcp://127.0.0.1:{first}"
        for svc_port, local in a.ports.items():
            name = a.port_names.get(svc_port)
            if name:
                env[f"{prefix}_SERVICE_PORT_{re.sub(r'[^A-Z0-9]', '_', name.upper())}"] = str(local)
            base = f"{prefix}_PORT_{local}_TCP"
            env[base] = f"tcp://127.0.0.1:{local}"
            env[f"{base}_PROTO"], env[f"{base}_PORT"] = "tcp", str(local)
            env[f"{base}_ADDR"] = "127.0.0.1"
    return env
