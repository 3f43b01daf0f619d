"""The InferenceService shape that the Helm chart renders and the rollout reconciler patches.

One source of truth for both sides (charts/castml/templates/_isvc.tpl renders the same
names; tests/unit/test_chart.py proves they agree). The pinned model version lives in one
annotation, `castml.io/model-version`, in three places:

- on the InferenceService itself (what `kubectl get isvc` and `helm upgrade` read),
- on the predictor's pods (`spec.predictor.annotations`),
- on the explainer's pods (`spec.explainer.annotations`).

The predictor and explainer containers read it through the downward API into
`CASTML_MODEL_VERSION`, so pinning a new version is a JSON merge patch (RFC 7386) of
maps only, never of a list: no container list is rewritten, and the new pod template
rolls out like any Deployment change. The canary (`spec.canary`, a list) is the chart's
business and is never touched by the patch.

The knowledge base's InferenceService (`<project>-kb`, a predictor only) has the same
shape. It may be installed on an alias (`knowledge.modelVersion: champion`), which its
server resolves once at start: such an annotation pins nothing (`pinned_version` is None),
so the reconciler's first round pins the number behind @champion.

Pure Python, no Kubernetes client: the reconciler sends the patch with its own client as
`Content-Type: application/merge-patch+json`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

API_GROUP = "serving.kserve.io"
API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
PLURAL = "inferenceservices"
MERGE_PATCH_CONTENT_TYPE = "application/merge-patch+json"

MODEL_VERSION_ANNOTATION = "castml.io/model-version"
MODEL_URI_ANNOTATION = "castml.io/model-uri"
PROJECT_LABEL = "castml.io/project"
MODEL_VERSION_ENV = "CASTML_MODEL_VERSION"
MLFLOW_URI_ENV = "CASTML_MLFLOW_URI"
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
DEPLOYMENT_MODE = "Standard"

CONTAINER_NAME = "kserve-container"  # KServe's name for a component's main container
HTTP_PORT = 8080
GRPC_PORT = 8081
SERVICE_PORT = 80  # KServe's component Services listen on 80
AGENT_PORT = 9081  # KServe's logger agent sidecar, in front of the predictor

# Components whose pods load the model and therefore carry the pinned version.
PINNED_COMPONENTS = ("predictor", "explainer")

_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")
# An MLflow alias as the chart may render it at install (`champion`), never a number.
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,254}$")


class IsvcShapeError(ValueError):
    """A project name, version or InferenceService that does not fit the shared shape."""


def isvc_name(project: str) -> str:
    """The InferenceService of a project is named after it (KServe derives Service names)."""
    if not _DNS_1035.match(project):
        raise IsvcShapeError(
            f"project {project!r} cannot name an InferenceService: use lowercase letters, digits "
            "and '-', starting with a letter, at most 40 characters"
        )
    return project


def model_uri(project: str, version: int) -> str:
    """The registry URI a pinned version stands for: never an alias."""
    return f"models:/{project}/{_check_version(version)}"


def predictor_host(project: str, namespace: str) -> str:
    """`host:port` of the predictor Service, as the transformer's `--predictor_host`."""
    return f"{isvc_name(project)}-predictor.{namespace}:{SERVICE_PORT}"


def pinned_version_patch(project: str, version: int, *, explainer: bool = True) -> dict[str, Any]:
    """A JSON merge patch that pins the InferenceService of `project` to `version`.

    `explainer=False` leaves the explainer out, for an InferenceService rendered without
    one (a merge patch would otherwise create `spec.explainer`, which KServe rejects
    without containers). `pinned_version_patch_for` decides this from the live object.
    """
    isvc_name(project)
    value = str(_check_version(version))
    pod_annotations = {"annotations": {MODEL_VERSION_ANNOTATION: value}}
    spec: dict[str, Any] = {"predictor": copy.deepcopy(pod_annotations)}
    if explainer:
        spec["explainer"] = copy.deepcopy(pod_annotations)
    return {
        "metadata": {
            "annotations": {
                MODEL_VERSION_ANNOTATION: value,
                MODEL_URI_ANNOTATION: model_uri(project, version),
            }
        },
        "spec": spec,
    }


def pinned_version_patch_for(live: Mapping[str, Any], version: int) -> dict[str, Any]:
    """The patch for a live InferenceService object (as read with a GET)."""
    name = _get(live, "metadata", "name")
    if not isinstance(name, str):
        raise IsvcShapeError("the InferenceService has no metadata.name")
    spec = live.get("spec")
    has_explainer = isinstance(spec, Mapping) and isinstance(spec.get("explainer"), Mapping)
    return pinned_version_patch(name, version, explainer=has_explainer)


def pinned_version(isvc: Mapping[str, Any]) -> int | None:
    """The version an InferenceService is pinned to, or None when it carries none.

    Reads the predictor's pod annotation: that is what the serving pods actually get.
    An alias there (the knowledge base installed on `champion`) is no pin either: which
    number the server resolved is unknown here, so the reconciler pins one.
    """
    raw = _get(isvc, "spec", "predictor", "annotations", MODEL_VERSION_ANNOTATION)
    if raw is None or (isinstance(raw, str) and _ALIAS.match(raw)):
        return None
    if not isinstance(raw, str) or not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise IsvcShapeError(f"{MODEL_VERSION_ANNOTATION}={raw!r} is not a concrete version")
    return int(raw)


def needs_patch(isvc: Mapping[str, Any], version: int) -> bool:
    """True when applying the pin would change the object (the reconciler skips no-ops)."""
    patch = pinned_version_patch_for(isvc, version)
    patched: Any = apply_merge_patch(isvc, patch)
    return bool(patched != _plain(isvc))


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, returning a new object (the target is not modified)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result: dict[str, Any] = dict(_plain(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def _check_version(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise IsvcShapeError(
            f"model version {version!r} is not a concrete registry version (an integer >= 1)"
        )
    return version


def _get(obj: Mapping[str, Any], *path: str) -> Any:
    current: Any = obj
    for key in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def _plain(obj: Any) -> Any:
    return copy.deepcopy(dict(obj)) if isinstance(obj, Mapping) else copy.deepcopy(obj)
