"""The studio's AI report narrative rewritten by an OpenAI-compatible LLM (issue 15), against a
stand-in server on loopback that speaks the protocol (tests.support.llm_standin): rewritten
when the reply keeps the report's numbers and verdict, the template kept (and why) otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from studio.reports import llm
from studio.reports.ai_report import compose
from studio.settings import StudioSettings
from tests.support.llm_standin import INVENTED_NUMBER, LlmStandIn
from tests.support.ports import free_port

TOP = [{"feature": "ad_relevance", "importance": 0.6, "pValue": 0.001, "ci": [0.5, 0.7]}]
LLM_ENV = (
    "CASTML_LLM_BASE_URL",
    "CASTML_LLM_MODEL",
    "CASTML_LLM_API_KEY",
    "CASTML_STUDIO_LLM_URL",
    "CASTML_STUDIO_LLM_MODEL",
    "CASTML_STUDIO_LLM_API_KEY",
)


def report(auc_ci: tuple[float, float]) -> dict[str, Any]:
    """A composed report over a holdout of 2000 impressions and 100 clicks."""
    metrics = {"roc_auc": 0.75, "accuracy": 0.9}
    metrics["roc_auc_ci_low"], metrics["roc_auc_ci_high"] = auc_ci
    evaluation = {
        "confusion_matrix": [[1900, 0], [0, 100]],
        "roc": {"fpr": [0.0, 0.1, 1.0], "tpr": [0.0, 0.5, 1.0]},
    }
    return compose(metrics, evaluation, TOP, 0.05, StudioSettings())


@pytest.fixture(autouse=True)
def no_llm_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LLM_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def standin() -> Iterator[LlmStandIn]:
    with LlmStandIn() as server:
        yield server


@pytest.fixture
def stand(standin: LlmStandIn) -> LlmStandIn:
    standin.mode, standin.requests[:] = "good", []
    return standin


def studio(stand: LlmStandIn, **extra: Any) -> StudioSettings:
    return StudioSettings(
        studio_llm_url=stand.base_url, studio_llm_model="report-model", llm_timeout_s=1.0, **extra
    )


def test_without_an_endpoint_the_report_is_the_template(stand: LlmStandIn) -> None:
    signal = report((0.70, 0.80))
    assert llm.rewrite(signal, StudioSettings()) is signal
    assert stand.requests == []


def test_the_narrative_is_rewritten_and_the_numbers_stay(stand: LlmStandIn) -> None:
    signal = report((0.70, 0.80))
    out = llm.rewrite(signal, studio(stand, studio_llm_api_key="studio-key"))
    assert out["narrativeSource"] == "llm" and "narrativeNote" not in out
    assert out["summary"] == "For marketing readers: " + signal["summary"]
    assert out["aiInsights"] == signal["aiInsights"]
    kept = {k: v for k, v in out.items() if k not in {"summary", "aiInsights", "narrativeSource"}}
    assert kept == {k: signal[k] for k in kept}
    (sent,) = stand.requests
    assert sent.body["model"] == "report-model" and sent.body["temperature"] == 0
    assert sent.body["response_format"] == {"type": "json_object"}
    assert sent.headers["Authorization"] == "Bearer studio-key"


def test_a_no_signal_report_keeps_its_verdict_through_the_rewrite(stand: LlmStandIn) -> None:
    chance = report((0.45, 0.60))
    assert chance["noSignal"] is True
    out = llm.rewrite(chance, studio(stand))
    assert out["narrativeSource"] == "llm" and "no usable signal" in out["aiInsights"][0]
    stand.mode = "drop"  # "Everything looks fine.": the verdict is gone
    dropped = llm.rewrite(chance, studio(stand))
    assert dropped["narrativeSource"] == "template" and dropped["summary"] == chance["summary"]
    assert 'says "no usable signal" and the rewrite does not' in dropped["narrativeNote"]


def test_an_invented_number_keeps_the_template(stand: LlmStandIn) -> None:
    stand.mode = "invent"
    signal = report((0.70, 0.80))
    out = llm.rewrite(signal, studio(stand))
    assert out["narrativeSource"] == "template" and out["summary"] == signal["summary"]
    assert f"numbers the report does not hold: ['{INVENTED_NUMBER}']" in out["narrativeNote"]


@pytest.mark.parametrize(
    ("mode", "words"),
    [("error", "LLM http status"), ("malformed", "LLM malformed"), ("hang", "LLM timeout")],
)
def test_an_endpoint_failure_keeps_the_template_and_says_why(
    stand: LlmStandIn, mode: str, words: str
) -> None:
    stand.mode = mode
    signal = report((0.70, 0.80))
    out = llm.rewrite(signal, studio(stand))
    stand.release.set()  # a held request may go now
    stand.release.clear()
    assert out["narrativeSource"] == "template" and out["summary"] == signal["summary"]
    assert words in out["narrativeNote"] and "template kept" in out["narrativeNote"]


def test_the_platform_endpoint_serves_the_studio_unless_the_studio_names_its_own(
    stand: LlmStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    signal = report((0.70, 0.80))
    monkeypatch.setenv("CASTML_LLM_BASE_URL", stand.base_url)
    monkeypatch.setenv("CASTML_LLM_API_KEY", "platform-key")
    assert llm.rewrite(signal, StudioSettings())["narrativeSource"] == "llm"
    assert stand.requests[-1].headers["Authorization"] == "Bearer platform-key"
    # the studio's own name wins, and the platform's key is not sent to it
    monkeypatch.setenv("CASTML_STUDIO_LLM_URL", f"http://127.0.0.1:{free_port()}/v1")
    out = llm.rewrite(signal, StudioSettings())
    assert out["narrativeSource"] == "template" and "LLM unreachable" in out["narrativeNote"]
    settings = StudioSettings()
    client = settings.report_llm()
    assert client is not None and client.api_key is None
