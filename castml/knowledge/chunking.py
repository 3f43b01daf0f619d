"""Passages -> chunks: one per section, long sections cut into overlapping character windows.

Windows end on a sentence or line break where one is near, so a chunk rarely starts
mid-sentence; the overlap keeps a fact that straddles a cut findable from both sides.
Chunk ids are `<passage id>~<n>`: stable as long as the document does not change.
"""

from __future__ import annotations

from collections.abc import Iterable

from castml.knowledge.passages import Chunk, Passage

DEFAULT_MAX_CHARS = 900
DEFAULT_OVERLAP = 150
_BREAKS = ("\n", ". ", "다. ", "요. ", "? ", "! ", "; ")


def _cut(text: str, start: int, max_chars: int) -> int:
    end = start + max_chars
    if end >= len(text):
        return len(text)
    # Prefer a break in the last third of the window.
    floor = start + (2 * max_chars) // 3
    best = max(text.rfind(mark, floor, end) for mark in _BREAKS)
    if best > floor:
        return best + 1
    space = text.rfind(" ", floor, end)
    return space if space > floor else end


def windows(text: str, max_chars: int, overlap: int) -> list[str]:
    if max_chars <= overlap:
        raise ValueError("max_chars must be larger than overlap")
    text = text.strip()
    if len(text) <= max_chars:
        return [text] if text else []
    out: list[str] = []
    start = 0
    while start < len(text):
        end = _cut(text, start, max_chars)
        out.append(text[start:end].strip())
        if end >= len(text):
            break
        nxt = max(end - overlap, start + 1)
        # Start the overlap at a word boundary, not mid-word.
        space = text.find(" ", nxt, end)
        start = space + 1 if 0 <= space < end - 1 else nxt
    return [piece for piece in out if piece]


def chunk_passages(
    passages: Iterable[Passage],
    max_chars: int = DEFAULT_MAX_CHARS,
    overlap: int = DEFAULT_OVERLAP,
) -> list[Chunk]:
    chunks: list[Chunk] = []
    used: dict[str, int] = {}
    for passage in passages:
        pid = passage.passage_id
        # Two sections with the same heading in one document get distinct ids.
        used[pid] = used.get(pid, 0) + 1
        if used[pid] > 1:
            pid = f"{pid}-{used[pid]}"
        for n, text in enumerate(windows(passage.text, max_chars, overlap)):
            doc = passage.doc
            chunks.append(
                Chunk(
                    chunk_id=f"{pid}~{n}",
                    passage_id=pid,
                    doc_id=doc.doc_id,
                    title=doc.title,
                    language=doc.language,
                    doc_type=doc.doc_type,
                    defects=doc.defects,
                    section=passage.section,
                    page=passage.page,
                    text=text,
                )
            )
    return chunks
