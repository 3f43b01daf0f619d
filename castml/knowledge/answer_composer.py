"""The extractive answer: sentences taken from the retrieved passages, grouped as likely causes,
checks and actions, each citing `[document, page or section, relevance]`. Nothing is
generated: when no passage clears the relevance threshold, the answer says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from castml.knowledge.passages import Chunk
from castml.knowledge.retrieval import Hit

MAX_PER_GROUP = 3
MAX_SOURCES = 5
_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+|(?<=다\.)|\n+")

# Cue words that put a sentence into a group; the first group that matches wins (a "how to
# check" line often also names the fix). English cues match whole words, with -s/-ed/-ing.
_CUES: dict[str, tuple[str, ...]] = {
    "checks": (
        "check",
        "inspect",
        "verify",
        "measure",
        "confirm",
        "monitor",
        "확인",
        "점검",
        "검사",
        "측정",
        "모니터",
    ),
    "actions": (
        "reduce",
        "increase",
        "adjust",
        "raise",
        "lower",
        "replace",
        "clean",
        "keep",
        "bring",
        "set",
        "apply",
        "improve",
        "repair",
        "degas",
        "조정",
        "높이",
        "낮추",
        "줄이",
        "늘리",
        "교체",
        "청소",
        "유지",
        "개선",
        "조치",
        "설정",
        "보수",
        "탈가스",
    ),
    "causes": (
        "cause",
        "due to",
        "because",
        "leads to",
        "root",
        "when",
        "원인",
        "때문",
        "발생",
        "의해",
        "인해",
        "경우",
    ),
}
_CUE_PATTERNS = {
    group: [
        re.compile(rf"\b{re.escape(cue)}(?:s|es|d|ed|ing)?\b") if cue.isascii() else cue
        for cue in cues
    ]
    for group, cues in _CUES.items()
}
MAX_SENTENCE_CHARS = 320
_HEADINGS = {
    "en": {"causes": "Likely causes", "checks": "Checks", "actions": "Actions"},
    "ko": {"causes": "추정 원인", "checks": "점검 항목", "actions": "조치"},
}
_NO_ANSWER = {
    "en": "The knowledge base has no good answer to this question "
    "(best relevance {best:.2f} is below {threshold:.2f}).",
    "ko": "지식 베이스에 이 질문에 대한 충분한 답이 없습니다 "
    "(최고 관련도 {best:.2f} < 기준 {threshold:.2f}).",
}
_OTHER_LANGUAGE = {
    "en": "No English passage matched; from documents in another language:",
    "ko": "일치하는 한국어 문서가 없어 다른 언어 문서에서 인용합니다:",
}
_RELATED = {"en": "Related passages", "ko": "관련 내용"}


@dataclass
class KnowledgeAnswer:
    answer: str
    sources: list[dict[str, Any]]
    recommendations: list[str]
    language: str
    no_answer: bool
    language_note: str | None = None
    hits: list[Hit] = field(default_factory=list, repr=False)
    # Who wrote `answer`: these sentences ("extractive"), or an LLM rewrite of them that kept
    # their citations ("llm", castml.knowledge.answer_rewrite); `answer_note` says why a
    # configured LLM's rewrite was not used.
    answer_source: str = "extractive"
    answer_note: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "answer": self.answer,
            "sources": self.sources,
            "recommendations": self.recommendations,
            "language": self.language,
        }
        if self.language_note:
            out["language_note"] = self.language_note
        return out

    def provenance(self) -> dict[str, Any]:
        """`answer_source` and, when set, `answer_note`: the fields a served answer adds."""
        out: dict[str, Any] = {"answer_source": self.answer_source}
        if self.answer_note:
            out["answer_note"] = self.answer_note
        return out


def where(chunk: Chunk) -> tuple[str, str | int]:
    return ("page", chunk.page) if chunk.page is not None else ("section", chunk.section)


def citation(hit: Hit) -> str:
    key, value = where(hit.chunk)
    place = f"p. {value}" if key == "page" else f"§ {value}"
    return f"[{hit.chunk.doc_id}, {place}, {hit.relevance:.2f}]"


def source(hit: Hit) -> dict[str, Any]:
    key, value = where(hit.chunk)
    return {
        "document": hit.chunk.doc_id,
        key: value,
        "relevance": round(hit.relevance, 3),
        "title": hit.chunk.title,
        "id": hit.chunk.chunk_id,
    }


def sentences(text: str) -> list[str]:
    parts = (" ".join(p.split()) for p in _SENTENCE_END.split(text))
    # Very short fragments (headings, table cells) make poor cited sentences.
    return [p for p in parts if len(p) >= 12]


def _group(sentence: str) -> str | None:
    lowered = sentence.lower()
    for group, patterns in _CUE_PATTERNS.items():
        for cue in patterns:
            if cue.search(lowered) if isinstance(cue, re.Pattern) else cue in lowered:
                return group
    return None


def _quoted(sentence: str) -> str:
    # PDF tables flatten into run-on "sentences"; quote the start, marked as cut.
    if len(sentence) <= MAX_SENTENCE_CHARS:
        return sentence
    return sentence[:MAX_SENTENCE_CHARS].rsplit(" ", 1)[0] + " …"


def compose_answer(
    hits: Sequence[Hit],
    language: str,
    threshold: float,
    recommendations: list[str],
    language_note: str | None = None,
) -> KnowledgeAnswer:
    good = [h for h in hits if h.relevance >= threshold]
    if not good:
        best = max((h.relevance for h in hits), default=0.0)
        text = _NO_ANSWER[language].format(best=best, threshold=threshold)
        return KnowledgeAnswer(text, [], recommendations, language, True, language_note, [])
    # Sentences in the answer's language come from passages in that language when any cleared
    # the threshold; otherwise we quote the other language and say so rather than translate.
    same = [h for h in good if h.chunk.language == language]
    quoted = (same or good)[:MAX_SOURCES]
    groups: dict[str, list[str]] = {g: [] for g in _CUES}
    unused: list[str] = []
    seen: set[str] = set()
    for hit in quoted:
        for sentence in sentences(hit.chunk.text):
            # A PDF page's first line is its heading: a label, not a statement to cite.
            if sentence in seen or sentence == hit.chunk.section:
                continue
            seen.add(sentence)
            group = _group(sentence)
            line = f"- {_quoted(sentence)} {citation(hit)}"
            if group and len(groups[group]) < MAX_PER_GROUP:
                groups[group].append(line)
            elif not group and len(unused) < 2:
                unused.append(line)
    lines: list[str] = [] if same else [_OTHER_LANGUAGE[language]]
    for group in ("causes", "checks", "actions"):
        if groups[group]:
            lines.append(f"{_HEADINGS[language][group]}:")
            lines.extend(groups[group])
    if not any(groups.values()):
        lines.append(f"{_RELATED[language]}:")
        lines.extend(unused)
    cited = {id(h) for h in quoted}
    sources = [source(h) for h in quoted] + [source(h) for h in good if id(h) not in cited][
        : max(0, MAX_SOURCES - len(quoted))
    ]
    return KnowledgeAnswer(
        "\n".join(lines), sources, recommendations, language, False, language_note, list(good)
    )
