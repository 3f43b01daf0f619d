import numpy as np
import pytest

from castml.data.diecast import SCENARIOS, generate
from castml.errors import SpecError
from castml.spec import load_spec


@pytest.fixture(scope="module")
def shots():
    return generate(40_000, seed=3)


def test_columns_follow_the_spec_and_stay_inside_physical_bounds(shots) -> None:
    spec = load_spec("diecast")
    assert list(shots.columns) == [*spec.feature_names, "defect"]
    for feature in spec.features:
        column = shots[feature.name]
        assert column.between(*feature.bounds).all(), feature.name
        inside_normal = column.between(*feature.normal).mean()
        assert inside_normal > 0.85, feature.name


def test_defect_rate_is_about_ten_to_fifteen_percent(shots) -> None:
    assert 0.10 <= shots["defect"].mean() <= 0.15


def test_same_seed_same_data_and_other_seed_other_data() -> None:
    assert generate(500, seed=1).equals(generate(500, seed=1))
    assert not generate(500, seed=1).equals(generate(500, seed=2))


def test_sensors_correlate_through_their_shared_causes(shots) -> None:
    corr = shots.corr()
    assert corr.loc["Sensor_AmbientTemperature", "Sensor_CoolingWaterTemp"] > 0.5
    assert corr.loc["Process_Temperature", "Sensor_ThermalImagingMax"] > 0.4
    assert corr.loc["Process_InjectionSpeed", "Process_FillTime"] < -0.6
    assert corr.loc["Sensor_Vibration", "Sensor_AcousticEmission"] > 0.3


def test_mechanisms_raise_the_defect_rate_where_physics_says(shots) -> None:
    rate = shots["defect"].mean()
    porous = shots[(shots.Process_VacuumLevel > 17) & (shots.Process_InjectionSpeed > 4.0)]
    cold = shots[shots.Process_Temperature < 648]
    assert porous["defect"].mean() > 2 * rate
    assert cold["defect"].mean() > 2 * rate


@pytest.mark.parametrize(
    ("scenario", "feature", "direction"),
    [
        ("seasonal_heat", "Sensor_AmbientTemperature", 1),
        ("seasonal_heat", "Sensor_CoolingWaterTemp", 1),
        ("sensor_degradation", "Sensor_Vibration", 1),
        ("sensor_degradation", "Sensor_CoolingWaterFlow", -1),
        ("new_alloy_batch", "Sensor_HydrogenContent", 1),
        ("new_alloy_batch", "Process_Temperature", -1),
    ],
)
def test_drift_scenarios_shift_the_documented_features(
    scenario: str, feature: str, direction: int
) -> None:
    base = generate(5000, seed=9)[feature]
    drifted = generate(5000, seed=9, scenario=scenario)[feature]
    assert direction * (drifted.mean() - base.mean()) > 0.5 * base.std()


def test_scenarios_are_named_and_unknown_ones_rejected() -> None:
    assert {"sensor_degradation", "seasonal_heat", "new_alloy_batch"} <= set(SCENARIOS)
    with pytest.raises(SpecError, match="unknown drift scenario"):
        generate(10, scenario="volcano")
    assert np.isfinite(generate(10, scenario="sensor_degradation").to_numpy()).all()
