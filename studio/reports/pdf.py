"""The run's report as a PDF (ReportLab): title, summary, metrics table, importance and
correlation charts, insights, action plan.

Text is set in a TrueType font embedded in the file (`studio_font_path`, NanumGothic from
apt `fonts-nanum` by default), so Korean renders in any viewer; without the font the PDF
is refused with the setting to fix, never drawn with missing glyphs.
"""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

from castml.errors import CastmlError

FONT_NAME = "StudioSans"


class FontMissingError(CastmlError):
    status_code = 503


def _register_font(path: Path) -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if not path.is_file():
        raise FontMissingError(
            f"the PDF font {path} is missing: install apt fonts-nanum or set "
            "CASTML_STUDIO_FONT_PATH to a TTF with Korean glyphs"
        )
    if FONT_NAME not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(FONT_NAME, str(path)))


def render(
    target: Path,
    title: str,
    report: dict[str, Any],
    metrics: dict[str, float],
    charts: dict[str, bytes],
    *,
    font: Path,
    include_insights: bool = True,
    include_action_plan: bool = True,
) -> Path:
    """Write the PDF to `target` (through a temporary file: a reader never sees half)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import cm
    from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    _register_font(font)
    body = ParagraphStyle("body", fontName=FONT_NAME, fontSize=10, leading=14)
    heading = ParagraphStyle("heading", parent=body, fontSize=14, leading=20, spaceBefore=8)
    big = ParagraphStyle("title", parent=body, fontSize=18, leading=24)

    def text(value: str, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(html.escape(value), style)

    story: list[Any] = [text(title, big), Spacer(1, 0.3 * cm)]
    story += [text("요약 (Summary)", heading), text(str(report["summary"]))]
    rows = [["metric", "value"]] + [
        [name, f"{value:.4f}"] for name, value in sorted(metrics.items())
    ]
    rows += [
        ["ROI increase (%)", f"{report['roiIncrease']:.2f}"],
        ["additional revenue / month", f"{report['additionalRevenue']:,.2f}"],
    ]
    table = Table(rows, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), FONT_NAME),
                ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
            ]
        )
    )
    story += [text("지표 (Metrics)", heading), table]
    for caption, png in charts.items():
        story += [text(caption, heading), Image(io.BytesIO(png), width=16 * cm, height=9 * cm)]
    if include_insights:
        story.append(text("인사이트 (Insights)", heading))
        story += [text(f"• {line}") for line in report["aiInsights"]]
    if include_action_plan:
        story.append(text("실행 계획 (Action plan)", heading))
        story += [text(f"{i}. {line}") for i, line in enumerate(report["actionPlan"], start=1)]
    story.append(text("계산 방법 (How each number is computed)", heading))
    story += [text(f"{key}: {value}") for key, value in report["formulas"].items()]
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".pdf.part")
    SimpleDocTemplate(str(partial), pagesize=A4, title=title).build(story)
    partial.replace(target)
    return target
