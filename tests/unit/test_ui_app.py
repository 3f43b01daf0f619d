"""The Streamlit app in process (streamlit.testing.v1.AppTest), tab by tab.

Servers that are down are real closed ports; the History tab reads Parquet the collector's
own code wrote (tests.support.logged_traffic); the Models tab reads a real MLflow registry
(a SQLite store). The live servers are the browser test's (tests/integration/ui).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from castml.spec import load_spec
from tests.support.logged_traffic import Traffic
from tests.support.ports import free_port
from tests.support.ui_registry import log_drift_run, register_listed_versions

APP = Path(__file__).resolve().parents[2] / "ui" / "app.py"
SERVICES = ("PREDICTOR", "TRANSFORMER", "EXPLAINER", "KNOWLEDGE", "COLLECTOR")


@pytest.fixture
def ui_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every server (MLflow too) on a closed loopback port; logs under tmp."""
    for service in SERVICES:
        monkeypatch.setenv(f"CASTML_{service}_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("CASTML_MLFLOW_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("CASTML_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CASTML_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("CASTML_LANGUAGE", "en")
    monkeypatch.setenv("CASTML_STEP_TIMEOUT_S", "2")
    return tmp_path


def start(locale: str = "ko-KR") -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.context = {"locale": locale}
    return at.run()


def texts(at: AppTest, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(at, kind)]


def markdown(at: AppTest) -> str:
    return "\n".join(texts(at, "markdown") + texts(at, "caption"))


def test_a_korean_browser_gets_korean_and_can_switch_to_english(ui_env: Path) -> None:
    at = start("ko-KR")
    assert not at.exception
    assert [tab.label for tab in at.tabs] == ["예측", "분석", "상담", "이력", "모델"]
    assert at.title[0].value == "다이캐스팅 품질 예측"
    assert {"공정 변수", "센서 값"} <= set(texts(at, "subheader"))
    at.sidebar.radio[0].set_value("en").run()
    assert [tab.label for tab in at.tabs] == [
        "Predict",
        "Analysis",
        "Assistant",
        "History",
        "Models",
    ]
    english = start("en-US")
    assert english.title[0].value == "Die-casting quality"


def test_servers_that_are_down_show_as_banners_naming_each(ui_env: Path) -> None:
    at = start()
    banners = [e for e in texts(at, "error") if e.startswith("서버 연결 실패")]
    named = " ".join(banners)
    for service in ("transformer", "explainer", "knowledge", "collector", "MLflow"):
        assert service in named
    assert not at.exception
    # Predicting with the transformer down: a banner again, never a traceback.
    at.button(key="predict").click().run()
    assert not at.exception
    assert any(
        "변환 서버(transformer)" in e and "connection refused" in e for e in texts(at, "error")
    )


def test_the_form_flags_bad_values_inline_and_refuses_to_send_them(ui_env: Path) -> None:
    at = start("en-US")
    assert len(at.text_input) == 30
    assert at.text_input(key="field.Process_Temperature").value == "670"  # mid normal range
    at.text_input(key="field.Process_Temperature").set_value("hot").run()
    at.text_input(key="field.Process_Pressure").set_value("250").run()
    at.text_input(key="field.Sensor_HydrogenContent").set_value("0.4").run()
    errors = texts(at, "error")
    assert "Process_Temperature: not a number (hot)" in errors
    assert "Process_Pressure: 250 is outside the bounds [0, 200]" in errors
    assert "Outside the normal range: Sensor_HydrogenContent" in texts(at, "warning")
    at.button(key="predict").click().run()
    refused = [e for e in texts(at, "error") if e.startswith("Not sent")]
    assert refused and "Process_Temperature" in refused[0] and "Process_Pressure" in refused[0]


def test_json_shots_load_into_the_form_and_bad_ones_get_a_clear_message(ui_env: Path) -> None:
    at = start("en-US")
    at.text_area(key="paste_json").set_value('{"features": {"Process_Temperature": 701.5}}')
    at.button[0].click().run()  # the paste's apply button comes first
    assert at.text_input(key="field.Process_Temperature").value == "701.5"
    assert any("Missing features" in w for w in texts(at, "warning"))

    at.text_area(key="paste_json").set_value('{"Process_Temperature": 7')
    at.button[0].click().run()
    assert any(e.startswith("Malformed JSON") for e in texts(at, "error"))
    assert at.text_input(key="field.Process_Temperature").value == "701.5"  # unchanged

    big = b'{"Process_Temperature": 700' + b" " * (64 * 1024) + b"}"
    at.file_uploader(key="upload_json").set_value(("shot.json", big, "application/json")).run()
    assert any(e.startswith("The JSON shot is too large") for e in texts(at, "error"))
    full = {name: 1.0 for name in load_spec("diecast").feature_names}
    good = ("good.json", json.dumps(full).encode(), "application/json")
    at.file_uploader(key="upload_json").set_value(good).run()
    assert any(s.startswith("Shot loaded: good.json") for s in texts(at, "success"))
    assert at.text_input(key="field.Process_Temperature").value == "1"
    # 1 degC lies outside the bounds [550, 800]: the form flags it before sending.
    assert any(e.startswith("Process_Temperature: 1 is outside") for e in texts(at, "error"))


def test_the_analysis_and_assistant_tabs_wait_for_a_shot(ui_env: Path) -> None:
    at = start("en-US")
    assert "Predict a shot in the Predict tab first." in texts(at, "info")
    assert "No current shot" in markdown(at)
    at.chat_input(key="question").set_value("what causes gas porosity?").run()
    assert not at.exception
    warnings = " ".join(texts(at, "warning"))
    assert "No answer" in warnings and "knowledge base" in warnings
    assert any("knowledge" in e for e in texts(at, "error"))  # and the banner names it


def _log_traffic(logs_root: Path) -> None:
    features = load_spec("diecast").feature_names
    rng = np.random.default_rng(3)
    traffic = Traffic()
    for i in range(30):
        rows = rng.uniform(0.0, 1.0, size=(1, len(features)))
        label = float(i % 3 == 0) if i < 18 else None  # labels arrived for 18 of them
        traffic.add(f"req-{i}", rows, label, version="1" if i < 20 else "2")
    traffic.log(logs_root)


def test_the_history_tab_reads_the_collector_parquet_and_filters_by_version(
    ui_env: Path,
) -> None:
    _log_traffic(ui_env)  # writes <tmp>/logs/diecast/<version>/date=.../*.parquet
    at = start("en-US")
    assert not at.exception
    shown = markdown(at)
    assert "**30 predictions**" in shown
    tables = [t.value for t in at.table]
    by_version = tables[0]
    assert list(by_version.index) == ["1", "2"] and list(by_version["Predictions"]) == [20, 10]
    quality = tables[1]
    assert list(quality.index) == ["1"] and int(quality["Labelled"].iloc[0]) == 18
    # The Predict tab offers the logged shots, newest first, and loads the chosen one.
    recent = at.selectbox(key="recent_shot")
    assert len(recent.options) == 20 and "· v2 ·" in recent.options[0]
    recent.set_value(recent.options[0]).run()
    at.button[1].click().run()  # paste's apply, then the recent shot's
    assert not at.exception
    loaded = float(at.text_input(key="field.Process_Temperature").value or "nan")
    assert 0.0 <= loaded <= 1.0  # the logged value, not the default of 670

    at.multiselect(key="history_versions").set_value(["2"]).run()
    assert "**10 predictions**" in markdown(at)
    assert "No labels have arrived yet." in markdown(at)  # version 2 has none
    assert any("MLflow" in e for e in texts(at, "error"))  # no drift report: MLflow is down


def test_the_models_tab_lists_versions_aliases_gates_and_lineage_read_only(
    ui_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{ui_env / 'mlflow.db'}"  # a real registry, without a server
    register_listed_versions(uri)
    monkeypatch.setenv("CASTML_MLFLOW_URI", uri)
    monkeypatch.setenv("CASTML_MLFLOW_UI_URL", "https://mlflow.example")
    at = start("en-US")
    assert not at.exception
    table = next(m for m in texts(at, "markdown") if m.startswith("| Version"))
    lines = table.splitlines()
    assert lines[2].startswith("| 2 |") and "failed: auc 0.70" in lines[2]
    assert lines[3].startswith("| 1 | `@champion` | passed: auc 0.91")
    assert "source=generator" in lines[3] and "hash=abcdef1abcde" in lines[3]
    assert "[MLflow ↗](https://mlflow.example/#/models/diecast/versions/1)" in lines[3]


def test_the_history_tab_shows_the_latest_drift_run(
    ui_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{ui_env / 'mlflow.db'}"
    run_id = log_drift_run(uri, ui_env / "artifacts")
    monkeypatch.setenv("CASTML_MLFLOW_URI", uri)
    monkeypatch.setenv("CASTML_MLFLOW_UI_URL", "https://mlflow.example")
    at = start("en-US")
    assert not at.exception
    assert "status ok · version 1 · drift share 40% · 2026-12-02T10:00:00" in [
        str(w.value) for w in at.warning
    ]  # a warning: the data set drifted
    assert "Drifted features: Sensor_HydrogenContent" in markdown(at)
    link = at.get("link_button")
    urls = [b.proto.url for b in link]
    assert any(u.endswith(f"/runs/{run_id}/artifacts/drift/drift_report.html") for u in urls)
