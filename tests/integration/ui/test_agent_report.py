"""The assistant agent against the real loopback stack: one shot's full report, follow-up
questions with and without the shot as context, and input the servers refuse."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from castml.spec import load_spec
from tests.support.assist_stack import AssistStack
from ui.agent import Agent, AgentReport, QuestionRejectedError, ShotRejectedError

pytestmark = pytest.mark.integration
SPEC = load_spec("diecast")


@pytest.fixture(scope="module")
def agent(assist: AssistStack) -> Iterator[Agent]:
    with Agent(assist.settings()) as agent:
        yield agent


def porous_shot(assist: AssistStack) -> dict[str, float]:
    """A shot with hydrogen and vacuum outside their normal ranges (gas porosity)."""
    return {**assist.shot(5), "Sensor_HydrogenContent": 0.55, "Process_VacuumLevel": 45.0}


def _rows_predicted(url: str) -> float:
    """The transformer's `castml_serving_rows_total` over every label set."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(r"^castml_serving_rows_total\S* (\S+)$", text, re.M))


def test_a_prediction_the_caller_has_is_reused_not_made_again(
    agent: Agent, assist: AssistStack
) -> None:
    """The UI's Predict tab already has the transformer's answer: the assistant's report uses
    it, so the shot is neither predicted nor logged a second time."""
    shot = porous_shot(assist)
    answer = httpx.post(
        f"{assist.transformer.url}/v1/models/diecast:predict", json={"features": shot}, timeout=30
    ).json()
    before = _rows_predicted(assist.transformer.url)
    report = agent.report(shot, language="en", predicted=answer)
    assert _rows_predicted(assist.transformer.url) == before > 0
    predict = report.steps[0]
    assert (predict.step, predict.status, predict.attempts) == ("predict", "ok", 0)
    assert report.prediction is not None
    assert report.prediction.probability == answer["prediction"]["probability"]
    assert report.versions.predictor == answer["model_version"]
    assert report.complete and report.answer is not None


def test_full_report(agent: Agent, assist: AssistStack) -> None:
    shot = porous_shot(assist)
    report = agent.report(shot, language="en")

    assert report.complete, report.steps
    assert [s.step for s in report.steps] == ["predict", "explain", "knowledge"]
    assert all(s.attempts == 1 and s.error is None for s in report.steps)
    assert report.prediction is not None
    assert report.prediction.class_name in (SPEC.class_names or ())
    assert 0.0 <= report.prediction.probability <= 1.0
    assert report.versions.predictor == "diecast/1" == report.versions.explainer
    assert report.versions.knowledge == "diecast-kb/1"

    # Top features: the explainer's order, each value set against the spec's range.
    assert report.explanation is not None
    attributions = report.explanation.attributions
    assert set(attributions) == set(SPEC.feature_names)
    top = report.top_features
    assert len(top) == agent.settings.top_features
    magnitudes = [abs(f.attribution or 0.0) for f in top]
    assert magnitudes == sorted(magnitudes, reverse=True)
    features = {f.name: f for f in SPEC.features}
    for reading in top:
        assert reading.attribution == pytest.approx(attributions[reading.name])
        assert reading.normal == features[reading.name].normal
        assert reading.unit == features[reading.name].unit
    hydrogen = next(r for r in report.out_of_range if r.name == "Sensor_HydrogenContent")
    assert hydrogen.status == "above" and hydrogen.value == 0.55
    assert {r.name for r in report.out_of_range} == {
        "Sensor_HydrogenContent",
        "Process_VacuumLevel",
    }

    # The cited root-cause answer, with recommendations from the spec's numbers.
    assert report.answer is not None and not report.answer.no_answer
    assert report.answer.language == "en"
    assert report.answer.sources
    for source in report.answer.sources:
        assert source.document and (source.page is not None or source.section)
    assert any(s.document == "en-gas-porosity" for s in report.answer.sources)
    assert report.recommendations_from == "knowledge"
    assert any(
        "Sensor_HydrogenContent 0.55" in r and "0.06–0.24" in r for r in report.recommendations
    )

    # One JSON form, with the transformer's `class` key, that reads back the same.
    data = json.loads(report.model_dump_json())
    assert data["prediction"]["class"] == report.prediction.class_name
    assert AgentReport.model_validate_json(report.model_dump_json()) == report
    assert "steps" in AgentReport.model_json_schema()["properties"]


def test_korean_report_and_follow_up_question(agent: Agent, assist: AssistStack) -> None:
    report = agent.report(porous_shot(assist))  # the settings' default language: Korean
    assert report.complete and report.language == "ko"
    assert report.answer is not None and report.answer.language == "ko"
    assert any(s.document == "ko-gas-porosity" for s in report.answer.sources)

    follow_up = agent.ask("가스 기공을 줄이려면 무엇을 조치해야 하나요?", context=report)
    assert follow_up.ok and follow_up.context_request_id == report.request_id
    assert follow_up.answer is not None and follow_up.answer.language == "ko"
    assert "[ko-gas-porosity, §" in follow_up.answer.answer
    assert follow_up.knowledge_version == "diecast-kb/1"
    assert any("Sensor_HydrogenContent" in r for r in follow_up.answer.recommendations)

    # The last report is the context by default; without one, the question stands alone.
    implicit = agent.ask("what should I check?")
    assert implicit.context_request_id == agent.last_report.request_id  # type: ignore[union-attr]
    alone = agent.ask("how do I stop flash at the parting line", use_last=False)
    assert alone.ok and alone.context_request_id is None
    assert alone.answer is not None and alone.answer.sources[0].document == "en-flash"
    assert alone.answer.recommendations == []


def test_refused_input_names_the_field(agent: Agent, assist: AssistStack) -> None:
    shot: dict[str, object] = {**assist.shot(1), "Process_Pressure": "high"}
    with pytest.raises(ShotRejectedError, match="Process_Pressure") as refused:
        agent.report(shot)  # type: ignore[arg-type]
    assert any(d.get("field") == "Process_Pressure" for d in refused.value.details)

    with pytest.raises(ShotRejectedError, match="Process_Temperature"):
        agent.report({**assist.shot(1), "Process_Temperature": 5000.0})
    with pytest.raises(ShotRejectedError, match="non-empty JSON object"):
        agent.report({})
    with pytest.raises(QuestionRejectedError, match="empty"):
        agent.ask("   ")
    with pytest.raises(QuestionRejectedError, match="query") as long_question:
        agent.ask("x" * 5000, use_last=False)
    assert long_question.value.details[0]["field"] == "query"
