"""Draw a page plan with reportlab platypus, in memory, keeping only the first page.

Returns the PDF bytes and the list of drawn-rectangle records (see ``flowables``).
"""

from __future__ import annotations

import io
from typing import Any

from reportlab import rl_config
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import BaseDocTemplate, Frame, PageTemplate
from reportlab.platypus.doctemplate import FrameBreak

from synth.ocr1.content import PagePlan
from synth.ocr1.flowables import record


class _FirstPageDoc(BaseDocTemplate):
    """A document that stops laying out once its first page is full."""

    def __init__(self, buf, plan: PagePlan, frames: list[Frame]):
        super().__init__(buf, pagesize=(plan.page_w, plan.page_h), invariant=1, pageCompression=0,
                         leftMargin=plan.margins[0], rightMargin=plan.margins[1],
                         topMargin=plan.margins[2], bottomMargin=plan.margins[3])
        self.plan = plan
        self.ocr1_drawn: list[dict[str, Any]] = []
        self.ocr1_full = False
        self.addPageTemplates([PageTemplate(id="page", frames=frames, onPage=self._decorate)])

    def handle_pageEnd(self):  # noqa: N802 (reportlab's name)
        if self.ocr1_full:
            return  # page 2 is begun by reportlab but never drawn, ended or saved
        self.ocr1_full = True
        super().handle_pageEnd()

    def handle_flowable(self, flowables):  # noqa: N802
        if self.ocr1_full:
            del flowables[:]  # the rest would go to page 2, which is never kept
            return
        super().handle_flowable(flowables)

    def _decorate(self, canv, doc) -> None:
        if self.page != 1:
            return
        plan = self.plan
        for d in plan.decorations:
            w = stringWidth(d.text, d.font, d.size)
            x = {"left": d.x, "center": d.x - w / 2, "right": d.x - w}[d.align]
            canv.setFont(d.font, d.size)
            canv.drawString(x, d.y, d.text)
            record(canv, d.tag, (x - 1, d.y - 0.35 * d.size, x + w + 1, d.y + 1.05 * d.size))
        ml, _mr, _mt, mb = plan.margins
        y = mb + plan.footnote_height
        for p in plan.footnotes:
            h = p._ocr1_wh[1]
            y -= h
            p.drawOn(canv, ml, y)
            y -= p.style.spaceAfter


def frames_for(plan: PagePlan) -> list[Frame]:
    """The title frame (if any) and the body column frames, in reading order."""
    ml, mr, mt, mb = plan.margins
    usable_w = plan.page_w - ml - mr
    top = plan.page_h - mt
    frames = []
    if plan.title_flowables:
        frames.append(Frame(ml, top - plan.title_height, usable_w, plan.title_height, id="title",
                            leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0))
        top -= plan.title_height
    bottom = mb + plan.footnote_height
    col_w = (usable_w - (plan.columns - 1) * plan.gutter) / plan.columns
    for i in range(plan.columns):
        frames.append(Frame(ml + i * (col_w + plan.gutter), bottom, col_w, top - bottom, id=f"col{i}",
                            leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0))
    return frames


def live_area(plan: PagePlan) -> tuple[float, float, float, float]:
    """The rectangle (x0, y0, x1, y1; PDF points, y up) that all drawing stays inside."""
    ml, mr, mt, mb = plan.margins
    x0, y0, x1, y1 = ml, mb, plan.page_w - mr, plan.page_h - mt
    for d in plan.decorations:
        w = stringWidth(d.text, d.font, d.size)
        dx = {"left": d.x, "center": d.x - w / 2, "right": d.x - w}[d.align]
        x0, x1 = min(x0, dx), max(x1, dx + w)
        y0, y1 = min(y0, d.y - 0.35 * d.size), max(y1, d.y + 1.05 * d.size)
    return x0, y0, x1, y1


def build_pdf(plan: PagePlan) -> tuple[bytes, list[dict[str, Any]]]:
    """Lay out the plan; return (PDF bytes, drawn records in drawing order)."""
    buf = io.BytesIO()
    doc = _FirstPageDoc(buf, plan, frames_for(plan))
    story = list(plan.title_flowables)
    if story:
        story.append(FrameBreak())
    story += plan.body
    # ASCII85 of image streams is pure Python without rl_accel (~10 ms per image) and
    # buys nothing in memory: write binary streams for this build only.
    saved = rl_config.useA85
    rl_config.useA85 = 0
    try:
        doc.build(story)
    finally:
        rl_config.useA85 = saved
    return buf.getvalue(), doc.ocr1_drawn
