"""How full a drawn page is: the share of its body columns left blank at the foot.

A page stands for a page cut out of a longer document, so its body columns should run
to their foot (docs/ocr1.md, "Fill"). This measures it from what was drawn: the layout's
column frames (``layout.frames_for``) and the rectangles reportlab drew the flowables at
(``build_pdf``'s records), nothing estimated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synth.ocr1.content import PagePlan


@dataclass(frozen=True)
class FootBlank:
    """The blank band at the foot of each body column, as a share of its height.

    columns: per column, left to right, (lowest drawn bottom - frame bottom) / frame height;
      1.0 for a column with nothing in it.
    share: the blank area at the foot of all columns over the columns' total area (the
      page's text area below the title block and above the footnotes).
    """

    columns: tuple[float, ...]
    share: float

    @property
    def worst(self) -> float:
        """The blankest column's share."""
        return max(self.columns)


def foot_blank(plan: PagePlan, drawn: list[dict[str, Any]]) -> FootBlank:
    """Measure the blank band at the foot of each body column of a built page.

    ``drawn`` is the list of records ``layout.build_pdf(plan)`` returned. A record belongs
    to the column frame holding its centre; header, footer, footnotes, margin notes and the
    title block lie outside every column frame, so they do not count.
    """
    from synth.ocr1.layout import frames_for

    shares, areas = [], []
    for f in frames_for(plan):
        if not f.id.startswith("col"):
            continue
        x0, y0, x1, y1 = f._x1, f._y1, f._x2, f._y2
        bottoms = [r["rect"][1] for r in drawn
                   if x0 <= (r["rect"][0] + r["rect"][2]) / 2 <= x1 and y0 <= (r["rect"][1] + r["rect"][3]) / 2 <= y1]
        low = min(bottoms) if bottoms else y1
        shares.append(min(1.0, max(0.0, (low - y0) / (y1 - y0))))
        areas.append((x1 - x0) * (y1 - y0))
    share = sum(s * a for s, a in zip(shares, areas)) / sum(areas)
    return FootBlank(tuple(shares), share)
