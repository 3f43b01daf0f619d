from pathlib import Path

import pytest
import yaml

from castml.errors import SpecError
from castml.spec import Task, list_projects, load_spec


def test_diecast_spec_has_30_named_features_with_bounds_and_ranges() -> None:
    spec = load_spec("diecast")
    names = spec.feature_names
    assert len(names) == 30
    assert sum(n.startswith("Process_") for n in names) == 16
    assert sum(n.startswith("Sensor_") for n in names) == 14
    for required in (
        "Process_Temperature",
        "Process_Pressure",
        "Process_InjectionSpeed",
        "Sensor_Vibration",
    ):
        assert required in names
    for feature in spec.features:
        assert feature.unit
        assert feature.normal is not None
        assert feature.bounds[0] <= feature.normal[0] < feature.normal[1] <= feature.bounds[1]
    assert spec.target == "defect"
    assert spec.task is Task.BINARY
    assert spec.gates.floors and spec.gates.max_regression
    assert spec.retrain.schedule == "0 0 2 1 * *"


def test_bundled_projects_include_a_classification_and_a_regression_spec() -> None:
    assert {"diecast", "breast_cancer", "diabetes"} <= set(list_projects())
    assert load_spec("diabetes").task is Task.REGRESSION


def test_profiles_and_overrides_layer_over_params() -> None:
    spec = load_spec("diecast")
    full = spec.model.resolved()
    fast = spec.model.resolved("fast", {"gbm": {"learning_rate": 0.2}})
    assert full["autoencoder"]["epochs"] == 100
    assert full["autoencoder"]["latent"] == 12
    assert full["gbm"]["n_estimators"] == 200 and full["gbm"]["max_depth"] == 6
    assert fast["autoencoder"]["epochs"] < 10
    assert fast["gbm"]["learning_rate"] == 0.2
    assert spec.model.params["gbm"]["learning_rate"] == 0.05  # not mutated


@pytest.mark.parametrize(
    ("profile", "overrides", "message"),
    [
        ("nope", None, "unknown profile 'nope'"),
        (None, {"trees": {"n": 1}}, "unknown parameter block 'trees'"),
        (None, {"gbm": {"n_estimator": 1}}, "unknown gbm parameter(s): n_estimator"),
    ],
)
def test_bad_profile_or_override_is_named(
    profile: str | None, overrides: dict | None, message: str
) -> None:
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_spec("diecast").model.resolved(profile, overrides)


def test_invalid_spec_names_the_field(tmp_path: Path) -> None:
    raw = yaml.safe_load(Path("castml/projects/diecast.yaml").read_text())
    raw["features"][0]["bounds"] = [10, 5]
    raw["surprise"] = 1
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert "bounds must be [low, high]" in str(caught.value)
    assert "surprise" in str(caught.value)


def test_unknown_project_lists_the_known_ones() -> None:
    with pytest.raises(SpecError, match=r"bundled projects: .*diecast"):
        load_spec("no-such-project")
