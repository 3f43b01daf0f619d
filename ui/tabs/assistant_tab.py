"""The Assistant tab: a chat with the assistant agent (ui.agent), the current shot as context;
answers carry clickable citations (document, page or section) and recommendations."""

from __future__ import annotations

import re
from typing import Any

import streamlit as st

from castml.errors import CastmlError
from ui.agent import Agent, AgentReport
from ui.agent_report import CitedAnswer, StepResult
from ui.service_calls import Service, ServiceDownError
from ui.settings import UiSettings
from ui.tabs.page import CHAT_KEY, PREDICTION_KEY, REPORT_KEY, SHOT_KEY, Page, note_down, state

STEP_SERVICE: dict[str, Service] = {
    "predict": "transformer",
    "explain": "explainer",
    "knowledge": "knowledge",
}
# The knowledge base cites inline as `[<document>, p. <n>, <relevance>]`
# or `[<document>, § <section>, <relevance>]`.
_CITATION = re.compile(r"\[([^\[\],]+), (p\. \d+|§ [^\]]+?), (\d\.\d+)\]")


@st.cache_resource(show_spinner=False)
def agent_for(settings_json: str) -> Agent:
    """One agent per configuration for the whole server: it is thread-safe and keeps its
    connections alive between questions."""
    return Agent(UiSettings.model_validate_json(settings_json))


def where(source: dict[str, Any]) -> str:
    if source.get("page") is not None:
        return f"p. {source['page']}"
    return f"§ {source.get('section') or '-'}"


def numbered(text: str, sources: list[dict[str, Any]]) -> str:
    """Inline citations as `[n]`, numbered like the source list under the answer."""
    index = {(s["document"], where(s)): i + 1 for i, s in enumerate(sources)}

    def replace(match: re.Match[str]) -> str:
        n = index.get((match.group(1).strip(), match.group(2).strip()))
        return f"**[{n}]**" if n else match.group(0)

    return _CITATION.sub(replace, text)


def _failed_steps(page: Page, steps: list[StepResult]) -> list[str]:
    notes = []
    for step in steps:
        if step.status == "ok":
            continue
        service = STEP_SERVICE[step.step]
        if step.http_status is None or step.http_status >= 500:
            note_down(ServiceDownError(service, step.url.split("/v1/")[0], step.error or ""))
        notes.append(f"{page.t(f'service.{service}')}: {step.error}")
    return notes


def _turn(answer: CitedAnswer | None, version: str | None, notes: list[str]) -> dict[str, Any]:
    if answer is None:
        return {
            "role": "assistant",
            "text": "",
            "sources": [],
            "recommendations": [],
            "notes": notes,
        }
    sources = [s.model_dump(mode="json") for s in answer.sources]
    return {
        "role": "assistant",
        "text": numbered(answer.answer, sources),
        "sources": sources,
        "recommendations": list(answer.recommendations),
        "version": version,
        "notes": notes,
    }


def ask(page: Page, question: str) -> dict[str, Any]:
    """One question: with a shot and no report yet, the agent's full report answers it
    (and becomes the context of the next questions); otherwise a free question."""
    agent = agent_for(page.settings.model_dump_json())
    shot = state(SHOT_KEY)
    report: AgentReport | None = state(REPORT_KEY)
    try:
        if shot is not None and report is None:
            # The Predict tab's answer for this shot: predicting it again would log it twice.
            predicted = state(PREDICTION_KEY)
            report = agent.report(
                shot,
                page.language,
                question=question,
                predicted=predicted.answer if predicted is not None and predicted.answer else None,
            )
            st.session_state[REPORT_KEY] = report
            turn = _turn(
                report.answer, report.versions.knowledge, _failed_steps(page, report.steps)
            )
            if not turn["recommendations"]:
                turn["recommendations"] = list(report.recommendations)
            return turn
        answer = agent.ask(question, context=report, language=page.language, use_last=False)
        return _turn(answer.answer, answer.knowledge_version, _failed_steps(page, [answer.step]))
    except CastmlError as exc:  # a refused question or shot, or the agent giving up: one line
        return _turn(None, None, [str(exc)])


def show_turn(page: Page, turn: dict[str, Any]) -> None:
    with st.chat_message(turn["role"]):
        if turn["role"] == "user":
            st.markdown(turn["text"])
            return
        if turn["text"]:
            st.markdown(turn["text"])
        for note in turn.get("notes") or []:
            st.warning(page.t("assistant.failed", reason=note))
        if turn["sources"]:
            st.markdown(f"**{page.t('assistant.sources')}**")
            for i, source in enumerate(turn["sources"], start=1):
                label = f"[{i}] {source['document']} · {where(source)}"
                with st.expander(label):
                    st.markdown(
                        f"**{source.get('title') or source['document']}**  \n"
                        f"{where(source)} · relevance {source.get('relevance', 0):.2f}  \n"
                        f"`{source.get('id') or ''}`"
                    )
        if turn["recommendations"]:
            st.markdown(f"**{page.t('assistant.recommendations')}**")
            st.markdown("\n".join(f"- {r}" for r in turn["recommendations"]))
        if turn.get("version"):
            st.caption(turn["version"])


def render(page: Page) -> None:
    prediction = state(PREDICTION_KEY)
    if prediction is not None:
        summary = (
            f"{prediction.class_name}, p={prediction.probability:.3f}, {prediction.model_version}"
        )
        st.caption(page.t("assistant.context", summary=summary))
    else:
        st.caption(page.t("assistant.no_context"))
    chat: list[dict[str, Any]] = st.session_state.setdefault(CHAT_KEY, [])
    question = st.chat_input(page.t("assistant.prompt"), key="question")
    if question and question.strip():
        chat.append({"role": "user", "text": question.strip()})
        chat.append(ask(page, question.strip()))
    for turn in chat:
        show_turn(page, turn)
    if chat and st.button(page.t("assistant.clear"), key="clear_chat"):
        chat.clear()
        st.rerun()
