"""Seeded synthetic die-casting shots (cold-chamber HPDC, aluminium alloy).

Each row is one casting shot. Readings are driven by a few shared causes, so
sensors correlate the way they do on a real cell:

- ambient temperature (season, shift) warms the cooling water, the hydraulic oil
  and the die;
- melt temperature drives the die surface, the plunger tip and the IR camera;
- machine wear raises vibration, acoustic emission and pump current;
- the alloy batch sets dissolved hydrogen.

Defects come from documented physical mechanisms (a logit per mechanism):

- gas porosity: poor vacuum (high absolute cavity pressure) together with a
  high injection speed traps air; dissolved hydrogen adds gas porosity;
- cold shuts: low melt or die temperature freezes fronts before they fuse;
- shrinkage porosity: short or weak intensification fails to feed solidification;
- flash: metal pressure high relative to clamping force opens the parting line;
- soldering / wear: high vibration on a worn shot end.

About 12 % of shots are defective, and 2 % of labels are flipped (inspection noise).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from castml.errors import SpecError
from castml.spec import load_spec

LABEL_NOISE = 0.02
# Calibrated once on 200k shots so that the defect rate is ~12 % (see tests).
_INTERCEPT = -7.54


def _soft_above(x: np.ndarray, threshold: float, width: float) -> np.ndarray:
    """Smooth step: ~0 well below `threshold`, ~1 well above it."""
    return np.asarray(1.0 / (1.0 + np.exp(-(x - threshold) / width)))


def _shots(
    rng: np.random.Generator, n: int, shift: dict[str, np.ndarray | float]
) -> dict[str, np.ndarray]:
    """Draw `n` shots; `shift` adds offsets to the shared causes (drift scenarios)."""

    def normal(mean: float, sd: float) -> np.ndarray:
        return rng.normal(mean, sd, n)

    ambient = normal(22.0, 3.5) + shift.get("ambient", 0.0)
    wear = np.abs(normal(0.0, 1.0)) + shift.get("wear", 0.0)
    hydrogen = np.clip(normal(0.15, 0.04) + shift.get("hydrogen", 0.0), 0.0, None)
    melt = normal(670.0, 11.0) + shift.get("melt", 0.0)

    speed = normal(3.5, 0.45)
    vacuum = (
        np.exp(normal(np.log(10.0), 0.35)) + 3.0 * wear * rng.random(n) + shift.get("vacuum", 0.0)
    )
    die = 222.0 + 0.35 * (melt - 670.0) + 1.2 * (ambient - 22.0) + normal(0.0, 13.0)
    pressure = normal(80.0, 7.5)
    int_pressure = 105.0 + 0.8 * (pressure - 80.0) + normal(0.0, 7.0)
    clamping = normal(8250.0, 260.0)
    sensor_bias = shift.get("sensor_bias", 0.0)

    return {
        "Process_Temperature": melt,
        "Process_Pressure": pressure,
        "Process_InjectionSpeed": speed,
        "Process_SlowShotSpeed": normal(0.3, 0.06),
        "Process_IntensificationPressure": int_pressure,
        "Process_IntensificationTime": normal(82.0, 15.0),
        "Process_DieTemperature": die,
        "Process_VacuumLevel": vacuum,
        "Process_CycleTime": 60.0 + 0.4 * (die - 222.0) / 13.0 + normal(0.0, 5.0),
        "Process_CoolingTime": normal(14.0, 2.2),
        "Process_ShotWeight": normal(5.0, 0.15) + shift.get("shot_weight", 0.0),
        "Process_BiscuitThickness": normal(22.0, 2.5),
        "Process_SprayTime": normal(4.0, 0.8),
        "Process_ClampingForce": clamping,
        "Process_PlungerStroke": normal(500.0, 30.0),
        "Process_FillTime": 57.0 * 3.5 / np.clip(speed, 0.5, None) + normal(0.0, 4.0),
        "Sensor_Vibration": 1.6 + 0.9 * wear + normal(0.0, 0.35) + shift.get("vibration", 0.0),
        "Sensor_CoolingWaterTemp": 26.0 + 0.55 * (ambient - 22.0) + normal(0.0, 1.5),
        "Sensor_CoolingWaterFlow": normal(46.0, 4.0) + shift.get("coolant_flow", 0.0),
        "Sensor_HydraulicOilTemp": 47.0 + 0.45 * (ambient - 22.0) + 0.8 * wear + normal(0.0, 1.8),
        "Sensor_HydraulicPressure": 160.0 + 1.1 * (pressure - 80.0) + normal(0.0, 5.0),
        "Sensor_AmbientTemperature": ambient,
        "Sensor_AmbientHumidity": np.clip(50.0 - 1.2 * (ambient - 22.0) + normal(0.0, 8.0), 5, 98),
        "Sensor_DieSurfaceTemp": die - 8.0 + normal(0.0, 5.0) + sensor_bias,
        "Sensor_MeltLevel": rng.uniform(40.0, 90.0, n),
        "Sensor_HydrogenContent": hydrogen,
        "Sensor_PumpMotorCurrent": 105.0 + 6.0 * wear + 0.25 * (pressure - 80.0) + normal(0.0, 5.0),
        "Sensor_AcousticEmission": 70.0 + 3.0 * wear + 0.8 * (speed - 3.5) + normal(0.0, 2.5),
        "Sensor_ThermalImagingMax": 0.55 * melt + 0.1 * die + normal(0.0, 8.0) + sensor_bias,
        "Sensor_PlungerTipTemp": 160.0 + 0.25 * (melt - 670.0) + normal(0.0, 10.0),
    }


def defect_logit(shots: dict[str, np.ndarray]) -> np.ndarray:
    """Log-odds of a defect from the physical mechanisms in the module doc."""
    porosity = (
        6.0
        * _soft_above(shots["Process_VacuumLevel"], 15.0, 1.5)
        * _soft_above(shots["Process_InjectionSpeed"], 3.8, 0.2)
    )
    gas = 4.5 * _soft_above(shots["Sensor_HydrogenContent"], 0.22, 0.02)
    cold_shut = 5.0 * _soft_above(-shots["Process_Temperature"], -655.0, 4.0) + 4.5 * _soft_above(
        -shots["Process_DieTemperature"], -200.0, 6.0
    )
    shrinkage = (
        5.0
        * _soft_above(-shots["Process_IntensificationTime"], -60.0, 5.0)
        * _soft_above(-shots["Process_IntensificationPressure"], -108.0, 5.0)
    )
    flash = 5.5 * _soft_above(
        shots["Process_Pressure"] / shots["Process_ClampingForce"] * 1e3, 10.7, 0.25
    )
    wear = 3.0 * _soft_above(shots["Sensor_Vibration"], 3.6, 0.3)
    return np.asarray(_INTERCEPT + porosity + gas + cold_shut + shrinkage + flash + wear)


def _no_shift(n: int, severity: float) -> dict[str, np.ndarray | float]:
    return {}


def _sensor_degradation(n: int, severity: float) -> dict[str, np.ndarray | float]:
    """Gradual wear over the window: vibration rises, IR and pyrometer read high, flow drops."""
    ramp = np.linspace(0.0, 1.0, n) * severity
    return {"wear": 1.5 * ramp, "sensor_bias": 25.0 * ramp, "coolant_flow": -10.0 * ramp}


def _seasonal_heat(n: int, severity: float) -> dict[str, np.ndarray | float]:
    """A summer heat wave: ambient +12 degC, which warms water, oil and die."""
    return {"ambient": 12.0 * severity}


def _new_alloy_batch(n: int, severity: float) -> dict[str, np.ndarray | float]:
    """A new ingot supplier: more dissolved hydrogen, lower pouring temperature, heavier shots."""
    return {"hydrogen": 0.04 * severity, "melt": -8.0 * severity, "shot_weight": 0.2 * severity}


SCENARIOS: dict[str, Callable[[int, float], dict[str, np.ndarray | float]]] = {
    "none": _no_shift,
    "sensor_degradation": _sensor_degradation,
    "seasonal_heat": _seasonal_heat,
    "new_alloy_batch": _new_alloy_batch,
}


def generate(n: int, seed: int = 0, scenario: str = "none", severity: float = 1.0) -> pd.DataFrame:
    """`n` shots with the `defect` label, in spec feature order, under a drift scenario."""
    if scenario not in SCENARIOS:
        raise SpecError(f"unknown drift scenario '{scenario}' (known: {', '.join(SCENARIOS)})")
    if n < 1:
        raise SpecError("the generator needs n >= 1 rows")
    rng = np.random.default_rng(seed)
    shots = _shots(rng, n, SCENARIOS[scenario](n, severity))
    # Gaussian tails can cross a physical limit (a negative speed); a sensor never does.
    for feature in load_spec("diecast").features:
        shots[feature.name] = np.clip(shots[feature.name], *feature.bounds)
    probability = 1.0 / (1.0 + np.exp(-defect_logit(shots)))
    label = rng.random(n) < probability
    flip = rng.random(n) < LABEL_NOISE
    frame = pd.DataFrame(shots)
    frame["defect"] = (label ^ flip).astype(np.int64)
    return frame
