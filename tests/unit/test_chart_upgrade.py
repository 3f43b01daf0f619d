"""`helm upgrade` from the previous release must not break (issue 16 §3).

Kubernetes refuses an update that changes an immutable field, and `helm upgrade` then
fails half-way: Deployment and StatefulSet `spec.selector`, a StatefulSet's
`serviceName`, `volumeClaimTemplates` and `podManagementPolicy`, a Job's `spec.template`.
A renamed PersistentVolumeClaim is worse: the upgrade succeeds and the data stays behind
on the old claim. Both are found here by rendering the previous release's chart (from git)
and this tree's chart over the same CI scenarios with the real helm, and comparing objects
by kind and name.

The promotion test: the rollout reconciler pins a version by patching the live
InferenceService (castml/isvc.py); the chart's `castml.pinnedVersion` reads it back with
`lookup`, so `helm upgrade` keeps it. `lookup` answers nothing under `helm template`, so
the test renders a copy of the chart whose lookup call reads a fake live object from a
file instead: what is proven is the template logic after `lookup`, not `lookup` itself.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import tarfile
import tomllib
from collections.abc import Iterable
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import yaml

from castml import isvc

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "castml"
SCENARIOS = sorted(
    p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml")
)
RELEASE = NAMESPACE = "castml"

# The last released chart. At a release: set this to the release's tag or commit, so the
# next release's chart is checked against what operators run. a771f70 is the parent of the
# first commit of the seams work (CI scenarios moved, collector command changed).
PREVIOUS_RELEASE_REF = "a771f70"

# The one lookup in the chart that keeps a promotion (templates/_helpers.tpl,
# castml.liveVersion, for the predictor and the knowledge base). The promotion test
# replaces exactly this call.
PIN_LOOKUP = 'lookup "serving.kserve.io/v1beta1" "InferenceService" .ctx.Release.Namespace .name'
FAKE_LIVE = '(.ctx.Files.Get (printf "live/%s.json" .name) | default "{}" | fromJson)'

Obj = dict[str, Any]
Key = tuple[str, str]


# ---------------------------------------------------------------- rendering


@cache
def helm_binary() -> str:
    found = shutil.which("helm") or str(REPO / ".tools" / "bin" / "helm")
    if not Path(found).is_file():
        pytest.fail("helm is not installed: run `bash scripts/install_tools.sh`", pytrace=False)
    return found


def render(chart: Path, scenario: str, *extra: str) -> dict[Key, Obj]:
    """Objects by (kind, name). Hooks included: `helm template` renders them too."""
    proc = subprocess.run(
        [
            *(helm_binary(), "template", RELEASE, str(chart), "-n", NAMESPACE),
            *("-f", str(CHART / "ci" / f"{scenario}-values.yaml"), *extra),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"helm template {chart} ({scenario}) failed:\n{proc.stderr}"
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


@cache
def previous_chart(dest: str) -> Path:
    """The previous release's chart, from git, unpacked under `dest`."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", PREVIOUS_RELEASE_REF, "charts/castml"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if archive.returncode != 0:
        pytest.fail(
            f"git archive {PREVIOUS_RELEASE_REF} failed ({archive.stderr.decode().strip()}): "
            "PREVIOUS_RELEASE_REF must name a commit or tag in this clone",
            pytrace=False,
        )
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return Path(dest) / "charts" / "castml"


@pytest.fixture(scope="module")
def old_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return previous_chart(str(tmp_path_factory.mktemp("previous-release")))


def render_previous(chart: Path, scenario: str) -> dict[Key, Obj]:
    # The old schema does not know values added since; the old templates ignore them, as
    # `helm upgrade --reuse-values`-free upgrades with the new values file would.
    return render(chart, scenario, "--skip-schema-validation")


# ---------------------------------------------------------------- the upgrade rules


def _is_recreated_hook(obj: Obj) -> bool:
    """A hook with before-hook-creation is deleted and created again, never patched."""
    annotations = obj["metadata"].get("annotations") or {}
    policy = annotations.get("helm.sh/hook-delete-policy", "")
    return "helm.sh/hook" in annotations and "before-hook-creation" in policy


IMMUTABLE: dict[str, tuple[tuple[str, ...], ...]] = {
    "Deployment": (("spec", "selector"),),
    "StatefulSet": (
        ("spec", "selector"),
        ("spec", "serviceName"),
        ("spec", "volumeClaimTemplates"),
        ("spec", "podManagementPolicy"),
    ),
    "Job": (("spec", "selector"), ("spec", "template")),
}


def _get(obj: Obj, path: Iterable[str]) -> Any:
    node: Any = obj
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _claims(objs: dict[Key, Obj]) -> set[str]:
    """Every PVC name an upgrade keeps using: plain claims and StatefulSet claim names."""
    names = {name for kind, name in objs if kind == "PersistentVolumeClaim"}
    for (kind, name), obj in objs.items():
        if kind == "StatefulSet":
            for tpl in _get(obj, ("spec", "volumeClaimTemplates")) or []:
                names.add(f"{tpl['metadata']['name']}-{name}-<ordinal>")
    return names


def upgrade_breaks(old: dict[Key, Obj], new: dict[Key, Obj]) -> list[str]:
    """What `helm upgrade` from `old` to `new` would be refused for, or would lose."""
    problems = []
    for key in sorted(old.keys() & new.keys()):
        kind, name = key
        if _is_recreated_hook(old[key]):
            continue
        for path in IMMUTABLE.get(kind, ()):
            before, after = _get(old[key], path), _get(new[key], path)
            if before != after:
                problems.append(
                    f"{kind}/{name}: {'.'.join(path)} is immutable and would change from "
                    f"{json.dumps(before, sort_keys=True)} to {json.dumps(after, sort_keys=True)}"
                )
    for claim in sorted(_claims(old) - _claims(new)):
        problems.append(
            f"PersistentVolumeClaim {claim} is gone after the upgrade (renamed or removed): "
            "its data would stay on the old claim"
        )
    return problems


# ---------------------------------------------------------------- tests: immutable fields


def test_scenarios_found() -> None:
    assert {"minimal", "production", "canary", "monitoring-off"} <= set(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_upgrade_from_previous_release_changes_no_immutable_field(
    old_chart: Path, scenario: str
) -> None:
    old, new = render_previous(old_chart, scenario), render(CHART, scenario)
    # Not vacuous: the scenario renders the workloads whose fields are compared.
    assert {k for k, _ in old} & {"Deployment", "StatefulSet", "Job"}
    assert upgrade_breaks(old, new) == []


def test_a_changed_selector_fails_the_upgrade_check(old_chart: Path, tmp_path: Path) -> None:
    broken = tmp_path / "castml"
    shutil.copytree(CHART, broken)
    helpers = broken / "templates" / "_helpers.tpl"
    text = helpers.read_text()
    assert "app.kubernetes.io/component: {{ .component }}" in text
    helpers.write_text(
        text.replace(
            "app.kubernetes.io/component: {{ .component }}",
            "app.kubernetes.io/component: {{ .component }}-v2",
            1,
        )
    )
    problems = upgrade_breaks(render_previous(old_chart, "minimal"), render(broken, "minimal"))
    assert any(
        p.startswith("Deployment/castml-mlflow: spec.selector is immutable") for p in problems
    )
    assert any(p.startswith("StatefulSet/castml-postgresql: spec.selector") for p in problems)
    # The claim template carries the selector labels too.
    assert any("spec.volumeClaimTemplates is immutable" in p for p in problems)


def test_a_renamed_claim_and_service_name_fail_the_upgrade_check(old_chart: Path) -> None:
    old = render_previous(old_chart, "minimal")
    new = copy.deepcopy(old)
    sts = next(o for (k, _), o in new.items() if k == "StatefulSet")
    sts["spec"]["serviceName"] = "renamed"
    sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] = "pgdata"
    pvc_key = next(k for k in new if k[0] == "PersistentVolumeClaim")
    new[("PersistentVolumeClaim", "renamed-claim")] = new.pop(pvc_key)
    problems = "\n".join(upgrade_breaks(old, new))
    assert "spec.serviceName is immutable" in problems
    assert f"PersistentVolumeClaim {pvc_key[1]} is gone" in problems
    assert "PersistentVolumeClaim data-castml-postgresql-<ordinal> is gone" in problems


def test_a_changed_job_template_fails_unless_the_job_is_a_recreated_hook() -> None:
    job: Obj = {
        "kind": "Job",
        "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "a:1"}]}}},
    }
    changed = json.loads(json.dumps(job))
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "a:2"
    assert upgrade_breaks({("Job", "j"): job}, {("Job", "j"): changed}) != []
    job["metadata"]["annotations"] = {
        "helm.sh/hook": "post-upgrade",
        "helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded",
    }
    assert upgrade_breaks({("Job", "j"): job}, {("Job", "j"): changed}) == []


# ---------------------------------------------------------------- tests: promotions survive


def chart_with_fake_live(tmp_path: Path, live: dict[str, Obj]) -> Path:
    """A copy of the chart whose pinned-version lookup reads `live/<name>.json`."""
    chart = tmp_path / "castml"
    shutil.copytree(CHART, chart)
    hits = [p for p in (chart / "templates").rglob("*.tpl") if PIN_LOOKUP in p.read_text()]
    assert len(hits) == 1 and hits[0].read_text().count(PIN_LOOKUP) == 1, (
        "the chart no longer keeps a promotion through exactly one "
        f"`{PIN_LOOKUP}`: update this test with the new mechanism"
    )
    hits[0].write_text(hits[0].read_text().replace(PIN_LOOKUP, FAKE_LIVE))
    (chart / "live").mkdir()
    for name, obj in live.items():
        (chart / "live" / f"{name}.json").write_text(json.dumps(obj))
    return chart


def rendered_isvc(objs: dict[Key, Obj], name: str = "diecast") -> Obj:
    return objs[("InferenceService", name)]


def pinned(obj: Obj) -> int:
    version = isvc.pinned_version(obj)
    assert version is not None, "the rendered InferenceService pins no version"
    return version


def versions_pinned(obj: Obj) -> set[str]:
    """Every place the chart writes the pinned version, except the canary's own."""
    spec = obj["spec"]
    found = {
        obj["metadata"]["annotations"][isvc.MODEL_VERSION_ANNOTATION],
        obj["metadata"]["annotations"]["castml.io/model-uri"].rsplit("/", 1)[-1],
        spec["predictor"]["annotations"][isvc.MODEL_VERSION_ANNOTATION],
    }
    if "explainer" in spec:
        found.add(spec["explainer"]["annotations"][isvc.MODEL_VERSION_ANNOTATION])
    return found


@pytest.mark.parametrize("scenario", ["minimal", "canary"])
def test_helm_upgrade_keeps_the_version_the_reconciler_pinned(
    old_chart: Path, tmp_path: Path, scenario: str
) -> None:
    # The live object: the previous release's InferenceService, promoted by the
    # reconciler's own merge patch to a version above the one in the values.
    values_version = pinned(rendered_isvc(render(CHART, scenario)))
    promoted = values_version + 4
    installed = rendered_isvc(render_previous(old_chart, scenario))
    live = isvc.apply_merge_patch(installed, isvc.pinned_version_patch_for(installed, promoted))

    upgraded = rendered_isvc(render(chart_with_fake_live(tmp_path, {"diecast": live}), scenario))
    assert versions_pinned(upgraded) == {str(promoted)}
    assert pinned(upgraded) == promoted
    # Nothing left for the reconciler to undo or redo.
    assert not isvc.needs_patch(upgraded, promoted)


def test_pin_policy_values_and_a_bad_live_annotation_pin_the_values_version(
    tmp_path: Path,
) -> None:
    base = rendered_isvc(render(CHART, "minimal"))
    values_version = pinned(base)
    live = isvc.apply_merge_patch(base, isvc.pinned_version_patch_for(base, values_version + 1))
    chart = chart_with_fake_live(tmp_path, {"diecast": live})
    forced = rendered_isvc(render(chart, "minimal", "--set", "serving.pinPolicy=values"))
    assert versions_pinned(forced) == {str(values_version)}

    live["metadata"]["annotations"][isvc.MODEL_VERSION_ANNOTATION] = "latest"
    (chart / "live" / "diecast.json").write_text(json.dumps(live))
    assert versions_pinned(rendered_isvc(render(chart, "minimal"))) == {str(values_version)}


def test_helm_upgrade_keeps_the_knowledge_version_the_reconciler_pinned(tmp_path: Path) -> None:
    """`<project>-kb` installed on `champion`, pinned to a number by its reconciler: the
    upgrade keeps the number; a live alias (never reconciled yet) keeps the values'."""
    installed = rendered_isvc(render(CHART, "faces"), "diecast-kb")
    assert isvc.pinned_version(installed) is None  # knowledge.modelVersion: champion
    live = isvc.apply_merge_patch(installed, isvc.pinned_version_patch_for(installed, 7))
    chart = chart_with_fake_live(tmp_path, {"diecast-kb": live})
    upgraded = rendered_isvc(render(chart, "faces"), "diecast-kb")
    assert versions_pinned(upgraded) == {"7"}
    assert not isvc.needs_patch(upgraded, 7)
    # The predictor's own pin is looked up under its own name, untouched by the kb's.
    assert pinned(rendered_isvc(render(chart, "faces"))) == 1

    (chart / "live" / "diecast-kb.json").write_text(json.dumps(installed))
    kept = rendered_isvc(render(chart, "faces"), "diecast-kb")
    assert kept["spec"]["predictor"]["annotations"][isvc.MODEL_VERSION_ANNOTATION] == "champion"


def test_dropping_the_live_lookup_fails_the_promotion_test(old_chart: Path, tmp_path: Path) -> None:
    """The deliberately broken case: a chart that always pins the values' version."""
    chart = chart_with_fake_live(tmp_path, {})
    helpers = chart / "templates" / "_helpers.tpl"
    helpers.write_text(helpers.read_text().replace(FAKE_LIVE, "dict"))
    installed = rendered_isvc(render_previous(old_chart, "minimal"))
    promoted = pinned(installed) + 4
    live = isvc.apply_merge_patch(installed, isvc.pinned_version_patch_for(installed, promoted))
    (chart / "live" / "diecast.json").write_text(json.dumps(live))
    assert versions_pinned(rendered_isvc(render(chart, "minimal"))) != {str(promoted)}


# ---------------------------------------------------------------- tests: versions, changelog


def chart_meta() -> dict[str, Any]:
    meta: dict[str, Any] = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return meta


def test_chart_version_and_app_version_follow_the_package() -> None:
    package = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    meta = chart_meta()
    assert (str(meta["version"]), str(meta["appVersion"])) == (package, package), (
        "charts/castml/Chart.yaml version and appVersion must equal pyproject.toml's "
        f"version {package}; bump them together (and add a CHANGELOG.md section)"
    )


def test_changelog_has_a_section_for_the_chart_version() -> None:
    text = (CHART / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## \[?([0-9][^\]\s]*)\]?", text, flags=re.M)
    assert headings, "charts/castml/CHANGELOG.md has no `## <version>` sections"
    assert headings[0] == str(chart_meta()["version"]), (
        f"the newest CHANGELOG.md section is {headings[0]}, the chart is "
        f"{chart_meta()['version']}: record what operators must act on"
    )
