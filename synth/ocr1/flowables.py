"""Flowables that record where reportlab actually drew them.

Each tracked flowable carries a ``tag`` (a dict with at least ``label``); when drawn it
appends a record ``{"tag", "rect": (x0, y0, x1, y1) in PDF points, y up, ...}`` to the
``drawn`` list of the document being built. Split parts keep their parent's tag, so a
paragraph continued in the next column yields two records (two regions).
"""

from __future__ import annotations

from typing import Any

from reportlab.graphics.shapes import Drawing
from reportlab.platypus import Flowable, ListFlowable, Paragraph, Table


def record(canvas, tag: dict[str, Any], rect: tuple[float, float, float, float], **extra: Any) -> None:
    """Append a drawn-rectangle record to the document that owns ``canvas`` (if tracked)."""
    doc = getattr(canvas, "_doctemplate", None)
    drawn = getattr(doc, "ocr1_drawn", None)
    if drawn is not None:
        drawn.append({"tag": tag, "rect": tuple(float(v) for v in rect), **extra})


class _Tracked:
    """Mixin: remember the wrapped size, record the drawn rectangle, tag split parts."""

    tag: dict[str, Any] = {}
    splittable = True

    def wrap(self, availWidth, availHeight):  # noqa: N803 (reportlab's names)
        self._ocr1_wh = super().wrap(availWidth, availHeight)
        return self._ocr1_wh

    def split(self, availWidth, availHeight):  # noqa: N803
        if not self.splittable:
            # Tables and lists move whole to the next frame: their structure stays intact.
            return []
        parts = super().split(availWidth, availHeight)
        for p in parts:
            p.tag = self.tag
        return parts

    def drawOn(self, canvas, x, y, _sW=0):  # noqa: N802, N803
        w, h = getattr(self, "_ocr1_wh", (0.0, 0.0))
        x0 = self._hAlignAdjust(x, _sW)
        record(canvas, self.tag, (x0, y, x0 + w, y + h), **self.extras(x0, y))
        return super().drawOn(canvas, x, y, _sW)

    def extras(self, x0: float, y0: float) -> dict[str, Any]:
        """Extra layout facts of the drawn flowable (table cells ...)."""
        return {}


class TPara(_Tracked, Paragraph):
    """A tracked Paragraph."""


class TImage(_Tracked, Flowable):
    """A tracked raster image (equations, charts) drawn from a reportlab ImageReader."""

    splittable = False

    def __init__(self, reader, width: float, height: float, hAlign: str = "CENTER"):  # noqa: N803
        Flowable.__init__(self)
        self.reader, self.width, self.height, self.hAlign = reader, width, height, hAlign

    def wrap(self, availWidth, availHeight):  # noqa: N803
        self._ocr1_wh = (self.width, self.height)
        return self._ocr1_wh

    def draw(self) -> None:
        self.canv.drawImage(self.reader, 0, 0, self.width, self.height)


class TDrawing(_Tracked, Flowable):
    """A tracked vector figure (a reportlab.graphics Drawing)."""

    splittable = False

    def __init__(self, drawing: Drawing, tag: dict[str, Any], hAlign: str = "CENTER"):  # noqa: N803
        Flowable.__init__(self)
        self.drawing, self.tag, self.hAlign = drawing, tag, hAlign
        self.width, self.height = drawing.width, drawing.height

    def wrap(self, availWidth, availHeight):  # noqa: N803
        self._ocr1_wh = (self.width, self.height)
        return self._ocr1_wh

    def draw(self) -> None:
        from reportlab.graphics import renderPDF

        renderPDF.draw(self.drawing, self.canv, 0, 0)


class TList(_Tracked, ListFlowable):
    """A tracked bulleted or numbered list, kept whole."""

    splittable = False


class TTable(_Tracked, Table):
    """A tracked table, kept whole; records every origin cell's rectangle.

    ``tag["spans"]`` lists (row0, col0, row1, col1) spans; cells covered by a span other
    than its origin are not emitted.
    """

    splittable = False

    def extras(self, x0: float, y0: float) -> dict[str, Any]:
        cols = self._colpositions  # absolute x of column edges, left to right, from 0
        rows = self._rowpositions  # y of row edges from the top (height) down to 0
        nrows, ncols = len(rows) - 1, len(cols) - 1
        covered: set[tuple[int, int]] = set()
        origin: dict[tuple[int, int], tuple[int, int]] = {}
        for r0, c0, r1, c1 in self.tag.get("spans", ()):
            origin[(r0, c0)] = (r1, c1)
            covered.update((r, c) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1) if (r, c) != (r0, c0))
        cells = []
        for r in range(nrows):
            for c in range(ncols):
                if (r, c) in covered:
                    continue
                r1, c1 = origin.get((r, c), (r, c))
                cells.append((r, c, r1 - r + 1, c1 - c + 1,
                              x0 + cols[c], y0 + rows[r1 + 1], x0 + cols[c1 + 1], y0 + rows[r]))
        return {"cells": cells, "shape": (nrows, ncols)}
