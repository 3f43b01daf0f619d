"""Optional: an OpenAI-compatible chat endpoint rewrites the report's narrative.

Only with an endpoint configured (`CASTML_STUDIO_LLM_URL`, else the platform's
`CASTML_LLM_BASE_URL`; see StudioSettings.report_llm), through the platform's one client
(castml.llm_chat). The model gets the deterministic report (numbers, formulas, the
no-signal verdict) and may only reword `summary` and `aiInsights`; every other field stays
the computed one. Its reply is checked before it is used: it must be the JSON asked for,
state no number the report does not hold, and keep "no usable signal" when the report says
so. Any failure keeps the deterministic text and says why in `narrativeNote`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from castml.llm_chat import LlmError
from studio.reports.ai_report import NO_SIGNAL
from studio.settings import StudioSettings

PROMPT = (
    "Rewrite this click-through-rate model report's summary and insights for a marketing "
    "reader. Keep every number and the verdict exactly as given and add no number; if "
    f'noSignal is true keep the words "{NO_SIGNAL}" and say plainly that there is no usable '
    'signal. Answer JSON: {"summary": str, "aiInsights": [str]}.'
)
# A number as a report writes one: 0.712, 1,000,000, 12.5 (a sign or % is around it).
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


class RewriteRefusedError(ValueError):
    """The endpoint answered, but not with a narrative this report can use."""


def _narrative(content: str) -> tuple[str, list[str]]:
    try:
        reply = json.loads(content)
        summary, insights = reply["summary"], reply["aiInsights"]
    except (ValueError, KeyError, TypeError) as exc:
        raise RewriteRefusedError(f"not the JSON asked for ({type(exc).__name__}: {exc})") from None
    if not isinstance(summary, str) or not summary.strip():
        raise RewriteRefusedError("its summary is not a non-empty text")
    if not isinstance(insights, list) or not all(isinstance(i, str) for i in insights):
        raise RewriteRefusedError("its aiInsights is not a list of texts")
    return summary, insights


def _check(report: dict[str, Any], summary: str, insights: list[str]) -> None:
    text = "\n".join([summary, *insights])
    known = set(_NUMBER.findall(json.dumps(report, ensure_ascii=False)))
    invented = sorted(set(_NUMBER.findall(text)) - known)
    if invented:
        raise RewriteRefusedError(f"it states numbers the report does not hold: {invented[:5]}")
    if report.get("noSignal") and NO_SIGNAL not in text.lower():
        raise RewriteRefusedError(f'the report says "{NO_SIGNAL}" and the rewrite does not')


def rewrite(report: dict[str, Any], settings: StudioSettings) -> dict[str, Any]:
    client = settings.report_llm()
    if client is None:
        return report
    messages = [
        {"role": "system", "content": PROMPT},
        {"role": "user", "content": json.dumps(report, ensure_ascii=False)},
    ]
    try:
        summary, insights = _narrative(client.complete(messages, json_answer=True))
        _check(report, summary, insights)
    except (LlmError, RewriteRefusedError) as exc:
        return {**report, "narrativeNote": f"LLM rewrite not used, template kept: {exc}"}
    return {**report, "summary": summary, "aiInsights": insights, "narrativeSource": "llm"}
