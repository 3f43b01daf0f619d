"""The assistant agent: one shot through predict -> explain -> knowledge, as one report.

    agent = Agent(UiSettings())               # or Agent.from_env()
    report = agent.report({"Process_Temperature": 702.0, ...})   # AgentReport
    answer = agent.ask("불량 원인은?", context=report)             # AgentAnswer
    agent.close()                             # or `with Agent(...) as agent:`

`report` calls the transformer (`POST /v1/models/<project>:predict`) and the explainer
(`POST /v1/models/<project>:explain`, no PNG) side by side, since both need only the
shot; then the knowledge base (`POST /v1/models/<project>-kb:predict`) with the
prediction, the top features and the readings as context. Every step has a timeout and
one retry (UiSettings.step_timeout_s, step_retries); a step that fails is named in
`report.steps` with its reason, and the report keeps what the other steps gave: without
the explainer the knowledge base still gets the readings, without the knowledge base
the recommendations come from the spec's normal ranges. Nothing here raises for a
server that is down; a shot or question the servers refuse (4xx) raises
`ShotRejectedError` / `QuestionRejectedError` with the server's words, naming the field.

One Agent may serve many threads (Streamlit sessions): its calls run on its own event
loop, and `last_report` is only a convenience for one-user callers (the CLI); the UI
passes `context=` explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Coroutine, Mapping
from types import TracebackType
from typing import Any, TypeVar

from castml.errors import CastmlError
from castml.protocol.mlflow_names import kb_model_name
from castml.spec import ProjectSpec, load_spec
from ui.agent_http import LOOP_SLACK_S, LoopThread, StepCaller, StepOutcome
from ui.agent_readings import ShotReadings
from ui.agent_report import (
    AgentAnswer,
    AgentReport,
    CitedAnswer,
    Explanation,
    FeatureReading,
    ModelVersions,
    Prediction,
    StepResult,
)
from ui.settings import UiSettings

__all__ = [
    "Agent",
    "AgentAnswer",
    "AgentError",
    "AgentReport",
    "FeatureReading",
    "QuestionRejectedError",
    "ShotRejectedError",
    "StepResult",
    "default_question",
]

T = TypeVar("T")
QUESTIONS = {
    "ko": "이 샷의 불량 원인과 조치 방법은 무엇인가요?",
    "en": "What is the likely root cause of a defect in this shot, and what should be done?",
}


def default_question(language: str) -> str:
    """What the report asks the knowledge base, in the report's language."""
    return QUESTIONS.get(language, QUESTIONS["en"])


class AgentError(CastmlError):
    """The agent could not do what was asked (the reason names the step and the server)."""

    status_code = 503


class ShotRejectedError(CastmlError):
    """The servers refused the shot itself; `details` lists the fields (castml's error body)."""

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        self.details = details or []
        super().__init__(message)


class QuestionRejectedError(ShotRejectedError):
    """The knowledge base refused the question (empty, too long, not text)."""


def _details(outcome: StepOutcome) -> list[dict[str, Any]]:
    details = (outcome.error_body or {}).get("details")
    return details if isinstance(details, list) else []


class Agent:
    """Predict, explain and ask for one project over HTTP (see the module doc)."""

    def __init__(self, settings: UiSettings | None = None, spec: ProjectSpec | None = None) -> None:
        self.settings = settings or UiSettings()
        self.spec = spec or load_spec(self.settings.project)
        self.project = self.spec.name
        self.kb_name = kb_model_name(self.project)
        s = self.settings
        self.urls = {
            "predict": f"{s.transformer_url.rstrip('/')}/v1/models/{self.project}:predict",
            "explain": f"{s.explainer_url.rstrip('/')}/v1/models/{self.project}:explain",
            "knowledge": f"{s.knowledge_url.rstrip('/')}/v1/models/{self.kb_name}:predict",
        }
        self.caller = StepCaller(s.step_timeout_s, s.step_retries, s.retry_backoff_s)
        self._loop = LoopThread()
        self.last_report: AgentReport | None = None

    @classmethod
    def from_env(cls) -> Agent:
        return cls(UiSettings())

    # -- the sync API ---------------------------------------------------------------------

    def report(
        self,
        shot: Mapping[str, float],
        language: str | None = None,
        question: str | None = None,
        predicted: Mapping[str, Any] | None = None,
    ) -> AgentReport:
        """One shot's report (predict, explain, knowledge); see the module doc.

        `predicted`: the transformer's answer for this very shot, when the caller has it
        (the UI's Predict tab): it is used as is, so the shot is not predicted, and logged,
        a second time; the predict step then says ok with 0 attempts."""
        if not isinstance(shot, Mapping) or not shot:
            raise ShotRejectedError(
                "a shot is a non-empty JSON object of feature name to value, e.g. "
                '{"Process_Temperature": 670.0, ...}'
            )
        language = language or self.settings.language
        report = self._run(
            self.areport(dict(shot), language, question, dict(predicted) if predicted else None),
            steps=2,
        )
        self.last_report = report
        return report

    def ask(
        self,
        question: str,
        context: AgentReport | None = None,
        language: str | None = None,
        *,
        use_last: bool = True,
    ) -> AgentAnswer:
        """A free question for the knowledge base, with `context`'s shot (else the last
        report's, when `use_last`) as its context. `language` None: detected from the text."""
        if not isinstance(question, str) or not question.strip():
            raise QuestionRejectedError("the question is empty; ask something in words")
        if context is None and use_last:
            context = self.last_report
        return self._run(self.aask(question, context, language), steps=1)

    def close(self) -> None:
        if not self._loop.loop.is_closed():
            with contextlib.suppress(TimeoutError, RuntimeError):
                self._loop.run(self.caller.aclose(), 5.0)
            self._loop.close()

    def __enter__(self) -> Agent:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self, coro: Coroutine[Any, Any, T], steps: int) -> T:
        """Wait for `coro` on the agent's loop, never longer than its steps can take."""
        bound = steps * self.caller.worst_case_s + LOOP_SLACK_S
        if self._loop.loop.is_closed():
            coro.close()
            raise AgentError("this agent is closed; make a new one")
        try:
            return self._loop.run(coro, bound)
        except TimeoutError:  # every step bounds itself; this is the last line of defence
            raise AgentError(f"the agent gave up after {bound:g} s") from None

    # -- the async steps (on the agent's loop) --------------------------------------------

    async def areport(
        self,
        shot: dict[str, Any],
        language: str,
        question: str | None = None,
        predicted_answer: dict[str, Any] | None = None,
    ) -> AgentReport:
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        readings = ShotReadings(self.spec, shot)
        predicting = (
            self._post("predict", "transformer", {"features": shot}, request_id)
            if predicted_answer is None
            else self._reused("predict", predicted_answer)
        )
        predicted, explained = await asyncio.gather(
            predicting,
            self._post("explain", "explainer", self.explain_body(shot), request_id),
        )
        for outcome in (predicted, explained):
            if outcome.rejected and outcome.result.http_status in (400, 413, 415, 422):
                raise ShotRejectedError(
                    f"the shot was refused: {outcome.result.error}", _details(outcome)
                )
        prediction = _prediction(predicted.body)
        explanation = _explanation(explained.body)
        k = self.settings.top_features
        if explained.body is not None:
            top = readings.top(explained.body.get("top_features") or [], k)
        else:  # without attributions, the readings furthest outside their range lead
            top = readings.out_of_range()[:k]
        question = question or default_question(language)
        partial = AgentReport(
            project=self.project,
            request_id=request_id,
            language=language,
            question=question,
            features=shot,
            prediction=prediction,
            top_features=top,
            out_of_range=readings.out_of_range(),
            explanation=explanation,
            steps=[predicted.result, explained.result],
            total_ms=0.0,
        )
        asked = await self._post(
            "knowledge",
            "knowledge base",
            {"query": question, "context": partial.context(), "language": language},
            request_id,
        )
        answer = _answer(asked.body)
        if answer is not None and answer.recommendations:
            recommendations, origin = answer.recommendations, "knowledge"
        else:
            recommendations = readings.recommendations(top, language)
            origin = "spec" if recommendations else "none"
        return partial.model_copy(
            update={
                "answer": answer,
                "recommendations": recommendations,
                "recommendations_from": origin,
                "versions": ModelVersions(
                    predictor=_version(predicted.body),
                    explainer=_version(explained.body),
                    knowledge=self._kb_version(asked.body),
                ),
                "steps": [predicted.result, explained.result, asked.result],
                "total_ms": round((time.perf_counter() - started) * 1000, 3),
            }
        )

    async def aask(
        self, question: str, context: AgentReport | None, language: str | None
    ) -> AgentAnswer:
        started = time.perf_counter()
        payload: dict[str, Any] = {"query": question}
        if context is not None:
            payload["context"] = context.context()
        if language:
            payload["language"] = language
        request_id = context.request_id if context is not None else uuid.uuid4().hex
        asked = await self._post("knowledge", "knowledge base", payload, request_id)
        if asked.rejected and asked.result.http_status in (400, 413, 415, 422):
            raise QuestionRejectedError(
                f"the question was refused: {asked.result.error}", _details(asked)
            )
        return AgentAnswer(
            question=question,
            language=language,
            context_request_id=context.request_id if context is not None else None,
            answer=_answer(asked.body),
            knowledge_version=self._kb_version(asked.body),
            step=asked.result,
            total_ms=round((time.perf_counter() - started) * 1000, 3),
        )

    async def _post(
        self, step: Any, service: str, payload: dict[str, Any], request_id: str
    ) -> StepOutcome:
        return await self.caller.call(step, service, "POST", self.urls[step], payload, request_id)

    async def _reused(self, step: Any, body: dict[str, Any]) -> StepOutcome:
        """A step answered before the report (by the caller): the answer as given, ok with
        0 attempts (no call made, so nothing is logged twice)."""
        result = StepResult(step=step, status="ok", url=self.urls[step], elapsed_ms=0.0, attempts=0)
        return StepOutcome(body, result)

    def explain_body(self, shot: dict[str, Any]) -> dict[str, Any]:
        """SHAP without the PNG (the UI draws its own chart from the attributions)."""
        body: dict[str, Any] = {"features": shot, "top_k": self.settings.top_features}
        body["chart"] = False
        if self.settings.explain_permutations is not None:
            body["permutations"] = self.settings.explain_permutations
        return body

    def _kb_version(self, body: dict[str, Any] | None) -> str | None:
        if body is None or body.get("model_version") is None:
            return None
        return f"{body.get('model_name') or self.kb_name}/{body['model_version']}"


# -- reading the servers' answers (a malformed one reads as missing, never as a crash) ------


def _version(body: dict[str, Any] | None) -> str | None:
    value = (body or {}).get("model_version")
    return str(value) if value is not None else None


def _prediction(body: dict[str, Any] | None) -> Prediction | None:
    if body is None or not isinstance(body.get("prediction"), dict):
        return None
    raw = body["prediction"]
    try:
        return Prediction(
            class_name=raw["class"],
            probability=raw["probability"],
            confidence=raw["confidence"],
            latent_features=body.get("latent_features") or [],
            processing_time_ms=body.get("processing_time_ms") or 0.0,
        )
    except (KeyError, ValueError):
        return None


def _explanation(body: dict[str, Any] | None) -> Explanation | None:
    if body is None or not isinstance(body.get("attributions"), dict):
        return None
    try:
        return Explanation(
            method=body.get("method", ""),
            base_value=body["base_value"],
            prediction=body["prediction"],
            attributions=body["attributions"],
            processing_time_ms=body.get("processing_time_ms") or 0.0,
        )
    except (KeyError, ValueError):
        return None


def _answer(body: dict[str, Any] | None) -> CitedAnswer | None:
    if body is None or not isinstance(body.get("answer"), str):
        return None
    try:
        return CitedAnswer(
            answer=body["answer"],
            sources=body.get("sources") or [],
            recommendations=body.get("recommendations") or [],
            language=body.get("language") or "",
            language_note=body.get("language_note"),
            no_answer=bool(body.get("no_answer", False)),
        )
    except ValueError:
        return None
