"""The agent's pieces that need no server: readings against the spec, the knowledge base's
context it sends, the report's JSON form, its settings, and `castml assist`'s shot file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from castml.cli.assist_cmd import ShotFileError, read_shot
from castml.spec import load_spec
from ui.agent_readings import ShotReadings
from ui.agent_report import AgentReport, Prediction, StepResult
from ui.settings import UiSettings

SPEC = load_spec("diecast")


def middle_shot() -> dict[str, float]:
    return {f.name: (f.normal[0] + f.normal[1]) / 2 for f in SPEC.features if f.normal}


def test_readings_against_the_normal_ranges() -> None:
    shot = {**middle_shot(), "Process_Pressure": 125.0, "Sensor_CoolingWaterFlow": 20.0}
    readings = ShotReadings(SPEC, shot)
    outside = readings.out_of_range()
    assert [r.name for r in outside] == ["Process_Pressure", "Sensor_CoolingWaterFlow"]
    pressure, flow = outside
    assert (pressure.status, pressure.deviation, pressure.unit) == ("above", 1.0, "MPa")
    assert pressure.normal == (65.0, 95.0) and pressure.bounds == (0.0, 200.0)
    assert flow.status == "below" and flow.deviation == pytest.approx(15 / 23, abs=1e-6)
    inside = readings.of("Process_Temperature")
    assert inside is not None and inside.status == "normal" and inside.deviation == 0.0
    # Text, NaN and unknown names are no readings (the servers name them as problems).
    odd = ShotReadings(SPEC, {"Process_Pressure": "high", "Sensor_Vibration": float("nan"), "x": 1})
    assert odd.values == {}


def test_top_features_follow_the_explainer_and_recommend_in_its_words() -> None:
    shot = {**middle_shot(), "Process_Pressure": 125.0, "Sensor_HydrogenContent": 0.5}
    readings = ShotReadings(SPEC, shot)
    explained = [
        {"feature": "Sensor_HydrogenContent", "value": 0.5, "attribution": 0.3},
        {"feature": "Process_Temperature", "value": 670.0, "attribution": -0.1},
        {"feature": "not_a_feature", "value": 1.0, "attribution": 0.05},
    ]
    top = readings.top(explained, 5)
    assert [(r.name, r.attribution) for r in top] == [
        ("Sensor_HydrogenContent", 0.3),
        ("Process_Temperature", -0.1),
    ]
    assert readings.recommendations(top, "en") == [
        "Sensor_HydrogenContent 0.5 mL/100g is above its normal 0.06–0.24 mL/100g: "
        "bring it back toward 0.15 mL/100g.",
        "Process_Pressure 125 MPa is above its normal 65–95 MPa: bring it back toward 80 MPa.",
    ]
    korean = readings.recommendations(top, "ko")
    assert korean[0].startswith("Sensor_HydrogenContent 0.5 mL/100g은(는) 정상 범위")


def test_the_context_and_the_json_form() -> None:
    readings = ShotReadings(SPEC, {**middle_shot(), "Process_Pressure": 125.0})
    top = readings.top([{"feature": "Process_Pressure", "value": 125.0, "attribution": 0.2}], 3)
    step = StepResult(step="predict", status="ok", url="http://x", elapsed_ms=1.0, attempts=1)
    report = AgentReport(
        project="diecast",
        request_id="r1",
        language="en",
        question="why?",
        features={"Process_Pressure": 125.0},
        prediction=Prediction(
            class_name="defect", probability=0.8, confidence="high", processing_time_ms=1.0
        ),
        top_features=top,
        steps=[step],
        total_ms=2.0,
    )
    assert report.context() == {
        "features": {"Process_Pressure": 125.0},
        "prediction": {"class": "defect", "probability": 0.8, "confidence": "high"},
        "top_features": [{"name": "Process_Pressure", "value": 125.0, "attribution": 0.2}],
    }
    data = json.loads(report.model_dump_json())
    assert data["prediction"]["class"] == "defect" and "class_name" not in data["prediction"]
    assert AgentReport.model_validate(data) == report
    assert not report.failed and report.complete


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CASTML_TRANSFORMER_URL", "http://10.0.0.1:9000")
    monkeypatch.setenv("CASTML_STEP_TIMEOUT_S", "1.5")
    monkeypatch.setenv("CASTML_HOME", str(tmp_path))
    settings = UiSettings()
    assert settings.transformer_url == "http://10.0.0.1:9000" and settings.step_timeout_s == 1.5
    assert settings.payload_log_dir == (tmp_path / "logs").resolve()
    assert settings.ui_host == "127.0.0.1"
    for name, field in UiSettings.model_fields.items():
        assert field.description, f"{name} has no description"
    monkeypatch.setenv("CASTML_STEP_RETRIES", "9")
    with pytest.raises(ValueError, match="step_retries"):
        UiSettings()


def test_shot_file(tmp_path: Path) -> None:
    path = tmp_path / "shot.json"
    path.write_text(json.dumps({"features": {"Process_Pressure": 80.0}}))
    assert read_shot(path) == {"Process_Pressure": 80.0}
    path.write_text(json.dumps({"Process_Pressure": 80.0}))
    assert read_shot(path) == {"Process_Pressure": 80.0}
    for content, expected in [
        ("{", "not valid JSON"),
        ("{}", "must hold a JSON object"),
        ('"text"', "must hold a JSON object"),
        (" " * (1024 * 1024 + 1), "at most 1048576 bytes"),
    ]:
        path.write_text(content)
        with pytest.raises(ShotFileError, match=expected):
            read_shot(path)
    path.write_bytes(b"\xff\xfe{")
    with pytest.raises(ShotFileError, match="not valid JSON"):
        read_shot(path)
