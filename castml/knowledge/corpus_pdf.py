"""Writing a document as a paged PDF with reportlab (`invariant=1`: byte-for-byte reproducible).

Korean PDFs embed NanumGothic from the Debian package `fonts-nanum`, needed only to regenerate
them; English ones use Helvetica, a standard font, so nothing is embedded.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from castml.knowledge.corpus_model import Document

DEFAULT_FONT_DIR = Path("/usr/share/fonts/truetype/nanum")


def _pdf_fonts(lang: str, font_dir: Path | None) -> tuple[str, str]:
    """Helvetica for English (a standard font, nothing embedded); NanumGothic for Korean."""
    if lang == "en":
        return "Helvetica", "Helvetica-Bold"
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    files = [
        (font_dir or DEFAULT_FONT_DIR) / name for name in ("NanumGothic.ttf", "NanumGothicBold.ttf")
    ]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(
            f"Korean PDFs need {', '.join(missing)}: install the Debian package fonts-nanum "
            "(apt-get install -y fonts-nanum) or pass --font-dir"
        )
    for name, file in zip(("NanumGothic", "NanumGothic-Bold"), files, strict=True):
        if name not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(name, str(file)))
    return "NanumGothic", "NanumGothic-Bold"


def write_pdf(doc: Document, path: Path, font_dir: Path | None) -> None:
    """A paged PDF: a contents page, then each chapter from a new page; records its pages."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfgen.canvas import Canvas
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer

    regular, bold = _pdf_fonts(doc.language, font_dir)
    body = ParagraphStyle("body", fontName=regular, fontSize=10.5, leading=15, spaceAfter=5)
    item = ParagraphStyle("item", parent=body, leftIndent=12, bulletIndent=2)
    h1 = ParagraphStyle("h1", fontName=bold, fontSize=16, leading=21, spaceAfter=10)
    h2 = ParagraphStyle("h2", fontName=bold, fontSize=12.5, leading=17, spaceBefore=8, spaceAfter=4)
    starts: dict[int, int] = {}

    class _Tracking(SimpleDocTemplate):  # type: ignore[misc]  # reportlab has no stubs
        def afterFlowable(self, flowable: Any) -> None:  # noqa: N802 (reportlab's hook name)
            index = getattr(flowable, "castml_chapter", None)
            if index is not None:
                starts.setdefault(index, self.page)

        def afterPage(self) -> None:  # noqa: N802 (reportlab's hook name)
            # Drawn after the page's text, so a text extractor reads the heading first.
            canvas: Canvas = self.canv
            canvas.setFont(regular, 8)
            canvas.drawString(20 * mm, 12 * mm, f"{doc.title} — {canvas.getPageNumber()}")

    contents = "Contents" if doc.language == "en" else "목차"
    story: list[Any] = [Paragraph(html.escape(doc.title), h1), Paragraph(contents, h2)]
    story += [Paragraph(html.escape(c.title), item, bulletText="•") for c in doc.chapters]
    for index, chapter in enumerate(doc.chapters):
        story.append(PageBreak())
        heading = Paragraph(html.escape(chapter.title), h1)
        heading.castml_chapter = index
        story.append(heading)
        for section in chapter.sections:
            story.append(Paragraph(html.escape(section.heading), h2))
            story += [Paragraph(html.escape(p), body) for p in section.paragraphs]
            story += [Paragraph(html.escape(i), item, bulletText="•") for i in section.items]
        story.append(Spacer(1, 4 * mm))
    template = _Tracking(
        str(path),
        pagesize=A4,
        invariant=1,
        title=doc.title,
        author="castml",
        subject=doc.doc_type,
        creator="castml.knowledge.corpus_gen",
        lang=doc.language,
        keywords=f"doc_id={doc.doc_id}; language={doc.language}; doc_type={doc.doc_type}; "
        f"defects={','.join(doc.defects)}",
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=20 * mm,
        bottomMargin=22 * mm,
    )
    template.build(story)
    last = template.page
    pages = [{"page": 1, "section": contents}]
    for index, chapter in enumerate(doc.chapters):
        end = starts.get(index + 1, last + 1) - 1
        pages += [{"page": p, "section": chapter.title} for p in range(starts[index], end + 1)]
    doc.pages = pages
