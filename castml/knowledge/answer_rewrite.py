"""Optional: an OpenAI-compatible LLM rewrites the extractive answer, from its passages only.

The model gets the question, the extractive answer and the passages it was composed from,
each under its citation marker `[document, p. N | § section, relevance]`, and is asked for
the answer in the query's language, every statement followed by the marker it came from.
We cannot check that a sentence says what its passage says, but we can check the markers:
the reply is used only when it keeps at least one of the given markers and carries no
other citation-like bracket (an invented document, page or relevance). Otherwise, and on
any endpoint failure, the extractive answer stays and `answer_note` says why.

A no-answer is never sent: the model would have nothing to cite and could only invent.
Sources and recommendations are not the model's to change; only the answer text is.
"""

from __future__ import annotations

import dataclasses
import re

from castml.knowledge.answer_composer import KnowledgeAnswer, citation
from castml.knowledge.retrieval import Hit
from castml.llm_chat import ChatClient, LlmError

MAX_PASSAGE_CHARS = 2000
LANGUAGE_NAMES = {"en": "English", "ko": "Korean (한국어)"}
NO_ANSWER_NOTE = "no answer: the LLM is not asked to make one up"

SYSTEM = (
    "You rewrite answers of a die-casting knowledge base for a quality engineer. Use ONLY "
    "the passages given: add no fact, number or advice that is not in them. Write in "
    "{language}. After each statement put the citation marker of the passage it comes from, "
    "copied exactly as given (for example {example}); never change a marker and never write "
    "a marker that is not given. Keep the grouping into likely causes, checks and actions "
    "where the passages support it. Reply with the answer text only."
)

# Any square bracket holding a comma reads as a citation: once the given markers are taken
# out of the reply, one left over is a document, page or relevance the passages do not have.
_CITATION_LIKE = re.compile(r"\[[^\[\]\n]*,[^\[\]\n]*\]")


def cited_hits(answer: KnowledgeAnswer) -> list[Hit]:
    """The passages behind the answer's sources, in the sources' order."""
    by_id = {hit.chunk.chunk_id: hit for hit in answer.hits}
    return [by_id[s["id"]] for s in answer.sources if s.get("id") in by_id]


def rewrite_messages(query: str, answer: KnowledgeAnswer) -> tuple[list[dict[str, str]], list[str]]:
    """The chat messages, and the citation markers the reply may use."""
    hits = cited_hits(answer)
    markers = [citation(hit) for hit in hits]
    passages = "\n\n".join(
        f"{marker}\n{' '.join(hit.chunk.text.split())[:MAX_PASSAGE_CHARS]}"
        for marker, hit in zip(markers, hits, strict=True)
    )
    system = SYSTEM.format(
        language=LANGUAGE_NAMES.get(answer.language, answer.language), example=markers[0]
    )
    user = (
        f"Question: {query}\n\n"
        f"Extractive answer (sentences quoted from the passages):\n{answer.answer}\n\n"
        f"Passages:\n\n{passages}"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}], markers


def citation_problem(reply: str, markers: list[str]) -> str | None:
    """Why the reply cannot be used, or None when its citations are all given ones."""
    rest = reply
    for marker in sorted(markers, key=len, reverse=True):  # a longer marker first: no overlap
        rest = rest.replace(marker, " ")
    invented = _CITATION_LIKE.search(rest)
    if invented:
        return f"the rewrite cites {invented.group(0)}, which is not a retrieved passage"
    if not any(marker in reply for marker in markers):
        return "the rewrite kept none of the retrieved passages' citations"
    return None


def _kept(answer: KnowledgeAnswer, why: str) -> KnowledgeAnswer:
    return dataclasses.replace(
        answer, answer_source="extractive", answer_note=f"{why}; the extractive answer is kept"
    )


def _not_sent(answer: KnowledgeAnswer) -> KnowledgeAnswer | None:
    """The answer as it is when there is nothing the model may rewrite from."""
    if answer.no_answer:
        return dataclasses.replace(answer, answer_note=NO_ANSWER_NOTE)
    if not cited_hits(answer):
        return dataclasses.replace(answer, answer_note="no retrieved passage to rewrite from")
    return None


def accept(answer: KnowledgeAnswer, reply: str, markers: list[str]) -> KnowledgeAnswer:
    text = reply.strip()
    problem = citation_problem(text, markers)
    if problem:
        return _kept(answer, problem)
    return dataclasses.replace(answer, answer=text, answer_source="llm", answer_note=None)


def rewrite_answer(client: ChatClient, query: str, answer: KnowledgeAnswer) -> KnowledgeAnswer:
    """The LLM's rewrite when it passes the citation check, else the extractive answer."""
    if (skipped := _not_sent(answer)) is not None:
        return skipped
    messages, markers = rewrite_messages(query, answer)
    try:
        reply = client.complete(messages)
    except LlmError as exc:
        return _kept(answer, str(exc))
    return accept(answer, reply, markers)


async def arewrite_answer(
    client: ChatClient, query: str, answer: KnowledgeAnswer
) -> KnowledgeAnswer:
    """As `rewrite_answer`, awaiting the endpoint (the knowledge role's event loop)."""
    if (skipped := _not_sent(answer)) is not None:
        return skipped
    messages, markers = rewrite_messages(query, answer)
    try:
        reply = await client.acomplete(messages)
    except LlmError as exc:
        return _kept(answer, str(exc))
    return accept(answer, reply, markers)
