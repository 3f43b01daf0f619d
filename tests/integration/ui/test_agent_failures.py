"""The agent when a step fails: the explainer or the knowledge base stopped (a partial report
that names the failed step and why), and a server that hangs (a timeout, one retry, then
either the retry's answer or a failed step, never a hang)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from tests.support.assist_stack import AssistStack, start_explainer, start_knowledge
from tests.support.hanging_server import HangingServer
from ui.agent import Agent, AgentReport

pytestmark = pytest.mark.integration
T = TypeVar("T")
EXPLAIN = "/v1/models/diecast:explain"


def bounded(call: Callable[[], T], guard_s: float = 120.0) -> T:
    """Run `call` on a thread; fail (rather than hang the suite) if it never returns."""
    out: list[T] = []
    worker = threading.Thread(target=lambda: out.append(call()), daemon=True)
    worker.start()
    worker.join(guard_s)
    assert out, f"the agent did not return within {guard_s} s"
    return out[0]


def shot(assist: AssistStack) -> dict[str, float]:
    return {**assist.shot(7), "Process_Pressure": 130.0}


def test_explainer_stopped(assist: AssistStack, tmp_path: Path) -> None:
    explainer = start_explainer(assist.model_store, assist.predictor, tmp_path)
    try:
        with Agent(assist.settings(explainer_url=explainer.url)) as agent:
            assert agent.report(shot(assist)).complete  # it works while the explainer runs
            explainer.stop()
            report = bounded(lambda: agent.report(shot(assist), language="en"))
    finally:
        explainer.stop()

    explain = report.step("explain")
    assert explain.status == "failed" and explain.attempts == 2
    assert explain.error is not None
    assert f"the explainer at {explainer.url}{EXPLAIN} cannot be reached" in explain.error
    assert "connection refused" in explain.error and "after 2 attempts" in explain.error
    assert [s.step for s in report.failed] == ["explain"]
    # What did work is all there: the prediction, and the knowledge base asked with the
    # readings; without attributions the top features are the readings furthest out.
    assert report.prediction is not None and report.versions.predictor == "diecast/1"
    assert report.explanation is None and report.versions.explainer is None
    assert report.top_features and report.top_features[0].name == "Process_Pressure"
    assert all(f.attribution is None for f in report.top_features)
    assert report.step("knowledge").status == "ok" and report.answer is not None
    assert any(r.startswith("Process_Pressure 130 MPa is above") for r in report.recommendations)


def test_knowledge_base_stopped(assist: AssistStack, tmp_path: Path) -> None:
    knowledge = start_knowledge(assist.kb_root, tmp_path)
    try:
        with Agent(assist.settings(knowledge_url=knowledge.url)) as agent:
            assert agent.report(shot(assist)).complete
            knowledge.stop()
            report = bounded(lambda: agent.report(shot(assist), language="en"))
            answer = bounded(lambda: agent.ask("가스 기공 원인은?", context=report))
    finally:
        knowledge.stop()

    failed = report.step("knowledge")
    assert failed.status == "failed" and failed.attempts == 2
    assert failed.error is not None and "the knowledge base at" in failed.error
    assert "connection refused" in failed.error
    assert report.prediction is not None and report.explanation is not None
    assert report.top_features[0].attribution is not None
    assert report.answer is None and report.versions.knowledge is None
    # Recommendations still come, from the spec's normal ranges, in the knowledge base's words.
    assert report.recommendations_from == "spec"
    assert report.recommendations == [
        "Process_Pressure 130 MPa is above its normal 65–95 MPa: bring it back toward 80 MPa."
    ]
    assert not answer.ok and answer.answer is None
    assert answer.step.error is not None and "cannot be reached" in answer.step.error


def test_hanging_explainer_times_out_then_fails(assist: AssistStack) -> None:
    with HangingServer() as hanging:
        settings = assist.settings(explainer_url=hanging.url, step_timeout_s=0.5)
        with Agent(settings) as agent:
            report: AgentReport = bounded(lambda: agent.report(shot(assist), language="en"))
        seen = list(hanging.received)

    explain = report.step("explain")
    assert explain.status == "failed" and explain.attempts == 2
    assert explain.error == "the explainer did not answer within 0.5 s (after 2 attempts)"
    assert seen == [f"POST {EXPLAIN} HTTP/1.1"] * 2  # the first try, then one retry
    assert report.prediction is not None and report.answer is not None
    assert [s.step for s in report.failed] == ["explain"]


def test_hang_once_then_the_retry_answers(assist: AssistStack) -> None:
    with HangingServer(upstream=assist.explainer.url, hang_first=1) as flaky:
        with Agent(assist.settings(explainer_url=flaky.url, step_timeout_s=5.0)) as agent:
            report = bounded(lambda: agent.report(shot(assist)))
        seen = len(flaky.received)

    assert report.complete, report.steps
    assert report.step("explain").attempts == 2 and seen == 2
    assert report.explanation is not None and report.versions.explainer == "diecast/1"


def test_nothing_answers(assist: AssistStack) -> None:
    """Every server down: a report of three failed steps, each with its reason."""
    with HangingServer() as a, HangingServer() as b, HangingServer() as c:
        settings = assist.settings(
            transformer_url=a.url,
            explainer_url=b.url,
            knowledge_url=c.url,
            step_timeout_s=0.3,
            step_retries=0,
        )
        with Agent(settings) as agent:
            report = bounded(lambda: agent.report(shot(assist)))
    assert [s.status for s in report.steps] == ["failed"] * 3
    assert all(s.attempts == 1 and "did not answer" in (s.error or "") for s in report.steps)
    assert report.prediction is None and report.answer is None
    assert report.recommendations_from == "spec"  # the readings alone still say something
