"""Optional: an OpenAI-compatible chat endpoint rewrites the report's narrative.

Only with `CASTML_STUDIO_LLM_URL` set. The model gets the deterministic report (numbers,
formulas, the no-signal verdict) and may only reword `summary` and `aiInsights`; the
numbers in the answer stay the computed ones. Any failure keeps the deterministic text and
says why in `narrativeNote`.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from studio.settings import StudioSettings

PROMPT = (
    "Rewrite this click-through-rate model report's summary and insights for a marketing "
    "reader. Keep every number and the verdict exactly as given; if noSignal is true say "
    'plainly that there is no usable signal. Answer JSON: {"summary": str, '
    '"aiInsights": [str]}.'
)


def rewrite(report: dict[str, Any], settings: StudioSettings) -> dict[str, Any]:
    if not settings.studio_llm_url:
        return report
    headers = {}
    if settings.studio_llm_api_key:
        headers["Authorization"] = f"Bearer {settings.studio_llm_api_key}"
    try:
        answer = httpx.post(
            settings.studio_llm_url.rstrip("/") + "/chat/completions",
            headers=headers,
            timeout=30.0,
            json={
                "model": settings.studio_llm_model,
                "messages": [
                    {"role": "system", "content": PROMPT},
                    {"role": "user", "content": json.dumps(report)},
                ],
            },
        )
        answer.raise_for_status()
        content = json.loads(answer.json()["choices"][0]["message"]["content"])
        summary, insights = str(content["summary"]), [str(i) for i in content["aiInsights"]]
    except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
        return {**report, "narrativeNote": f"LLM rewrite failed, template kept: {exc}"}
    return {**report, "summary": summary, "aiInsights": insights, "narrativeSource": "llm"}
