"""castml/isvc.py on an InferenceService with a predictor only: the knowledge base's
`<project>-kb` (charts/castml/templates/knowledge.yaml), as the rollout reconciler's
ClusterTarget reads and patches it. The chart's own render is checked against the same
functions in tests/unit/test_chart_knowledge.py."""

from __future__ import annotations

from typing import Any

import pytest

from castml import isvc


def kb_isvc(version: str) -> dict[str, Any]:
    """What the API server returns for `diecast-kb` (KServe adds status; the shape is ours)."""
    return {
        "apiVersion": isvc.API_VERSION,
        "kind": isvc.KIND,
        "metadata": {
            "name": "diecast-kb",
            "namespace": "castml",
            "annotations": {
                isvc.DEPLOYMENT_MODE_ANNOTATION: isvc.DEPLOYMENT_MODE,
                isvc.MODEL_VERSION_ANNOTATION: version,
            },
        },
        "spec": {
            "predictor": {
                "annotations": {isvc.MODEL_VERSION_ANNOTATION: version},
                "containers": [{"name": isvc.CONTAINER_NAME, "image": "serving"}],
            }
        },
        "status": {"url": "http://diecast-kb.castml"},
    }


def test_a_predictor_only_isvc_is_patched_without_creating_an_explainer() -> None:
    live = kb_isvc("2")
    patch = isvc.pinned_version_patch_for(live, 3)
    assert set(patch["spec"]) == {"predictor"}
    assert patch["metadata"]["annotations"] == {
        isvc.MODEL_VERSION_ANNOTATION: "3",
        isvc.MODEL_URI_ANNOTATION: "models:/diecast-kb/3",
    }
    patched = isvc.apply_merge_patch(live, patch)
    assert "explainer" not in patched["spec"]
    assert patched["spec"]["predictor"]["containers"] == live["spec"]["predictor"]["containers"]
    assert isvc.pinned_version(patched) == 3
    assert isvc.needs_patch(live, 3)
    assert not isvc.needs_patch(patched, 3)


def test_an_alias_installed_knowledge_base_is_not_pinned_yet() -> None:
    """Installed on `champion`: no number is known, so the first reconcile pins one."""
    live = kb_isvc("champion")
    assert isvc.pinned_version(live) is None
    assert isvc.needs_patch(live, 1)
    patched = isvc.apply_merge_patch(live, isvc.pinned_version_patch_for(live, 1))
    assert isvc.pinned_version(patched) == 1
    assert patched["spec"]["predictor"]["annotations"][isvc.MODEL_VERSION_ANNOTATION] == "1"


@pytest.mark.parametrize("raw", ["0", "-1", "3.5", "", "v 2", "@champion"])
def test_a_malformed_pin_is_refused_naming_the_annotation(raw: str) -> None:
    with pytest.raises(isvc.IsvcShapeError, match=isvc.MODEL_VERSION_ANNOTATION):
        isvc.pinned_version(kb_isvc(raw))
