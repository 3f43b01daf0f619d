"""The app's tabs in process (AppTest) against the real loopback platform: predict, explain, ask;
a server's 400 named by field; the explainer down while the rest answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.support.assist_stack import AssistStack
from tests.support.ports import free_port
from ui.service_calls import ServiceRefusedError, explain, predict

pytestmark = pytest.mark.integration
APP = Path(__file__).resolve().parents[3] / "ui" / "app.py"


def start(stack: AssistStack, monkeypatch: pytest.MonkeyPatch, **overrides: str) -> AppTest:
    for name, value in stack.env(**overrides).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CASTML_MLFLOW_URI", f"http://127.0.0.1:{free_port()}")
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.context = {"locale": "en-US"}
    return at.run()


def errors(at: AppTest) -> list[str]:
    return [str(e.value) for e in at.error]


def test_predict_explain_and_ask_in_process(
    ui_platform: AssistStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = start(ui_platform, monkeypatch)
    at.text_input(key="field.Sensor_HydrogenContent").set_value("0.5").run()
    at.button(key="predict").click().run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Class"] in ("ok", "defect")
    assert metrics["Model version"] == "diecast/1"
    assert metrics["Confidence"] in ("low", "medium", "high")
    assert metrics["Latency"].endswith(" ms")

    at.button(key="explain").click().run()
    assert not at.exception
    top = next(t.value for t in at.table if "Feature" in t.value.columns)
    assert len(top) == 10 and "Sensor_HydrogenContent" in set(top["Feature"])
    row = top[top["Feature"] == "Sensor_HydrogenContent"].iloc[0]
    assert row["Status"] == "above" and row["Normal range"] == "0.06–0.24 mL/100g"
    assert any(m.value.startswith("Defect probability") for m in at.markdown)

    at.chat_input(key="question").set_value("수소 때문에 기공이 생기나요?").run()
    assert not at.exception
    sources = [e.label for e in at.expander if e.label.startswith("[1] ")]
    assert sources, [m.value for m in at.markdown]
    assert "§" in sources[0] or "p." in sources[0]
    assert any(m.value.startswith("**Sources**") for m in at.markdown)
    assert not [w.value for w in at.warning if "No answer" in str(w.value)]


def test_the_servers_400_names_the_field(ui_platform: AssistStack) -> None:
    settings = ui_platform.settings()
    shot = {**ui_platform.shot(3), "Process_Temperature": 5000.0}
    for call in (predict, explain):
        with pytest.raises(ServiceRefusedError) as refused:
            call(settings, shot)
        assert refused.value.status == 400
        assert [f for f, _ in refused.value.fields] == ["Process_Temperature"]


def test_with_the_explainer_down_the_rest_still_answers(
    ui_platform: AssistStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    at = start(ui_platform, monkeypatch, explainer_url=closed)
    at.button(key="predict").click().run()
    assert {m.label: m.value for m in at.metric}["Model version"] == "diecast/1"
    at.button(key="explain").click().run()
    assert not at.exception
    assert not [t for t in at.table if "Feature" in t.value.columns]  # no analysis
    assert any(e.startswith("Server down: explainer") and closed in e for e in errors(at))
    at.chat_input(key="question").set_value("how do I stop gas porosity?").run()
    assert not at.exception
    assert [e.label for e in at.expander if e.label.startswith("[1] ")]  # a cited answer
    notes = [str(w.value) for w in at.warning if "No answer" in str(w.value)]
    assert notes and "explainer" in notes[0]  # the failed step, named
