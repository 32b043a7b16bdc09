"""Flowables that record where reportlab actually drew them.

Each tracked flowable carries a ``tag`` (a dict with at least ``label``); when drawn it
appends a record ``{"tag", "rect": (x0, y0, x1, y1) in PDF points, y up, ...}`` to the
``drawn`` list of the document being built. Split parts keep their parent's tag, so a
paragraph continued in the next column yields two records (two regions).
"""

from __future__ import annotations

import html
import io
import re
from collections import OrderedDict
from typing import Any

from reportlab.graphics.shapes import Drawing
from reportlab.platypus import Flowable, KeepTogether, ListFlowable, Paragraph, Table

_TAG = re.compile(r"<[^>]*>")


def to_page(canvas, rect) -> tuple[float, float, float, float]:
    """A rectangle in the canvas's current coordinates as a page rectangle (PDF points, y
    up): the bounding box of its corners under the current transformation matrix, which
    is the identity except inside :class:`TRotated`."""
    a, b, c, d, e, f = canvas._currentMatrix
    if (a, b, c, d, e, f) == (1, 0, 0, 1, 0, 0):
        return tuple(float(v) for v in rect)
    x0, y0, x1, y1 = rect
    xs = [a * x + c * y + e for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
    ys = [b * x + d * y + f for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
    return min(xs), min(ys), max(xs), max(ys)


def record(canvas, tag: dict[str, Any], rect: tuple[float, float, float, float], **extra: Any) -> None:
    """Append a drawn-rectangle record (in page coordinates) to the document that owns
    ``canvas`` (if tracked)."""
    doc = getattr(canvas, "_doctemplate", None)
    drawn = getattr(doc, "ocr1_drawn", None)
    if drawn is not None:
        drawn.append({"tag": tag, "rect": to_page(canvas, rect), **extra})


class _Tracked:
    """Mixin: remember the wrapped size, record the drawn rectangle, tag split parts."""

    tag: dict[str, Any] = {}
    splittable = True

    def wrap(self, availWidth, availHeight):  # noqa: N803 (reportlab's names)
        # The same question twice gets the first answer: the layout asks whether a block
        # fits before the frame places it, a group kept together is measured before its
        # parts are placed, a title before its frame is sized. A paragraph's answer depends
        # on the width only and lives in its broken lines (a failed split drops them).
        para = isinstance(self, Paragraph)
        key = availWidth if para else (availWidth, availHeight)
        if getattr(self, "_ocr1_key", None) != key or para and not hasattr(self, "blPara"):
            self._ocr1_wh = super().wrap(availWidth, availHeight)
            self._ocr1_key = key
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
        record(canvas, self.tag, (x0, y, x0 + w, y + h), **self.extras(canvas, x0, y))
        return super().drawOn(canvas, x, y, _sW)

    def extras(self, canvas, x0: float, y0: float) -> dict[str, Any]:
        """Extra layout facts of the drawn flowable (table cells ...), in page coordinates."""
        return {}


def source_text(flowable) -> str:
    """The plain text a flowable was given (markup tags dropped, entities decoded), through
    list items and nested lists: what the read-back checks a hyphenated line end against."""
    if isinstance(flowable, Paragraph):
        return html.unescape(_TAG.sub("", flowable.text))
    # ListItem and an unwrapped ListFlowable keep their flowables in _flowables (a
    # ListFlowable drops it once laid out: TList reads it when built).
    children = getattr(flowable, "_flowables", None) or []
    return " ".join(source_text(f) for f in children)


def _ends_in_hyphen(line) -> bool:
    """Whether a broken line of a Paragraph (a ``(space, words)`` tuple or a FragLine)
    ends in a hyphen."""
    words = line[1] if isinstance(line, tuple) else [getattr(w, "text", "") for w in line.words]
    return "".join(words).rstrip().endswith("-")


def can_wait(flowable) -> bool:
    """Whether the layout may hold ``flowable`` for the next column when it does not fit the
    rest of this one (``layout``): a block that cannot split (table, figure, list, code
    listing, sideways block), alone or kept with its caption. Display equations cannot:
    their numbers follow the text."""
    if isinstance(flowable, KeepTogether):  # what keepWithNext grouped
        return any(can_wait(f) for f in flowable._content)
    return getattr(flowable, "splittable", True) is False and not isinstance(flowable, TEquation)


class TSupply(Flowable):
    """The end of a body that fills its page: paragraphs made on demand. The layout asks for
    the next one while the page has room (``layout``), so the page is full whatever the
    plan's estimate of its capacity, and no paragraph is made that is not drawn. Each one
    is also inserted before the supply in ``into`` (the plan's body), which then lists what
    the page drew. A plan is built once: the supply's generator is spent."""

    def __init__(self, make, into: list, limit: int = 200):
        Flowable.__init__(self)
        self.make, self.into, self.limit = make, into, limit

    def more(self) -> list:
        """The next paragraph's flowables; [] once ``limit`` have been made."""
        if self.limit <= 0:
            return []
        self.limit -= 1
        flows = self.make()
        at = next(i for i, f in enumerate(self.into) if f is self)
        self.into[at:at] = flows
        return flows

    def wrap(self, availWidth, availHeight):  # noqa: N803
        return 0.0, 0.0  # never drawn: the layout replaces it by what it makes

    def draw(self) -> None:
        pass


class TPara(_Tracked, Paragraph):
    """A tracked Paragraph; records its source text (see :func:`source_text`)."""

    def split(self, availWidth, availHeight):  # noqa: N803
        marked = getattr(self, "blPara", None) is not None and self.blPara.kind == 1
        leading = self.style.leading
        parts = super().split(availWidth, availHeight)
        while len(parts) == 2:
            higher = (int(availHeight / leading) - 0.5) * leading  # room for a line less
            # reportlab rebuilds the first part of a paragraph with markup (fonts,
            # hyphenation) from its lines' fragments, and re-breaking it can take a line
            # more than it measured (a hyphenated, bold-run paragraph of the papers recipe,
            # seed 193): the frame then raised a LayoutError. Such a part goes a line higher
            # (or the paragraph moves on, as reportlab does when fewer than two lines stay).
            if marked and parts[0].wrap(availWidth, availHeight)[1] > availHeight + 1e-6:
                availHeight = higher
                parts = super().split(availWidth, higher) if higher > leading else []
                continue
            # A column does not end in a hyphen where it can end a line higher, as TeX's
            # \brokenpenalty discourages: the word's pieces would lie in two regions, and
            # the second would open on a piece.
            if _ends_in_hyphen(parts[0].blPara.lines[-1]) and higher > leading:
                again = super().split(availWidth, higher)
                if len(again) == 2:
                    availHeight, parts = higher, again
                    continue
            break
        source = getattr(self, "_ocr1_source", None) or source_text(self)
        for p in parts:  # a continued part keeps the whole paragraph's text
            p._ocr1_source = source
        return parts

    def extras(self, canvas, x0: float, y0: float) -> dict[str, Any]:
        return {"source": getattr(self, "_ocr1_source", None) or source_text(self)}


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
        draw_image(self.canv, self.reader, 0, 0, self.width, self.height)


_JPEG_NAMES: OrderedDict[bytes, str] = OrderedDict()  # MD5 of a JPEG file -> reportlab's name of its image
_JPEG_NAMES_MAX = 1024


def draw_image(canv, reader, x: float, y: float, width: float, height: float) -> None:
    """What ``canv.drawImage(reader, x, y, width, height)`` draws, with each image named once
    rather than at every draw.

    reportlab names an ImageReader's image by the MD5 of its decoded pixels (plus its mask,
    here none) each time it is drawn: about 2 ms for a pooled chart, a JPEG that it decodes
    for nothing else (the PDF embeds the JPEG file as it is). Here a reader keeps its name
    (``_ocr1_xobject_name``: equation readers live as long as their pool), and a JPEG's
    name is remembered by the MD5 of its file (0.05 ms), so each chart of a pool is decoded
    for its name once per process. The rest is reportlab's ``drawImage`` for
    ``mask=None``: register the image XObject under that name once per document, then
    place it. The PDF is the same, byte for byte (tested against ``drawImage``)."""
    import hashlib

    from reportlab.lib.utils import _digester
    from reportlab.pdfbase import pdfdoc

    name = reader.__dict__.get("_ocr1_xobject_name")
    if name is None:
        jpeg = reader.fp.getvalue() if reader.__dict__.get("jpeg_fh") and isinstance(reader.fp, io.BytesIO) else None
        key = hashlib.md5(jpeg, usedforsecurity=False).digest() if jpeg is not None else None
        name = _JPEG_NAMES.get(key) if key is not None else None
        if name is None:
            name = _digester(reader.getRGBData() + str(None).encode("utf8"))
            if key is not None:
                _JPEG_NAMES[key] = name
                if len(_JPEG_NAMES) > _JPEG_NAMES_MAX:
                    _JPEG_NAMES.popitem(last=False)
        reader._ocr1_xobject_name = name
    canv._currentPageHasImages = 1
    doc = canv._doc
    registered = doc.getXObjectName(name)
    if not doc.idToObject.get(registered, None):
        image = pdfdoc.PDFImageXObject(name, reader, mask=None)  # a soft mask comes only with mask="auto"
        image.name = name
        canv._setXObjects(image)
        doc.Reference(image, registered)
        doc.addForm(name, image)
    # The document's image (or the per-process memo of loaded images, layout._ImageXObject)
    # holds the pixels now: a reader that lives as long as its pool need not keep a decoded
    # copy too (up to 80 MB for a full equation pool); it decodes again if ever asked.
    reader._data = None
    canv.saveState()
    canv.translate(x, y)
    canv.scale(width, height)
    canv._code.append(f"/{registered} Do")
    canv.restoreState()
    canv._formsinuse.append(name)


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
    """A tracked bulleted or numbered list, kept whole; records its items' source text."""

    splittable = False

    def __init__(self, flowables, **kwargs):
        self._ocr1_source = " ".join(source_text(f) for f in flowables)
        super().__init__(flowables, **kwargs)

    def extras(self, canvas, x0: float, y0: float) -> dict[str, Any]:
        return {"source": self._ocr1_source}


class TTable(_Tracked, Table):
    """A tracked table, kept whole; records every origin cell's rectangle.

    ``tag["spans"]`` lists (row0, col0, row1, col1) spans; cells covered by a span other
    than its origin are not emitted.
    """

    splittable = False

    def extras(self, canvas, x0: float, y0: float) -> dict[str, Any]:
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
                rect = to_page(canvas, (x0 + cols[c], y0 + rows[r1 + 1], x0 + cols[c1 + 1], y0 + rows[r]))
                cells.append((r, c, r1 - r + 1, c1 - c + 1, *rect))
        return {"cells": cells, "shape": (nrows, ncols)}


class TRotated(Flowable):
    """Flowables stacked top to bottom and drawn turned 90 degrees counter-clockwise, like a
    sideways table: their top points to the page's left and their lines read upward.

    The wrapped flowables record page rectangles (``record`` maps through the rotation);
    their tags should say ``rotation: 90`` so the read-back groups their lines upward.
    """

    splittable = False

    def __init__(self, flowables: list, hAlign: str = "CENTER"):  # noqa: N803
        Flowable.__init__(self)
        self.flowables, self.hAlign = flowables, hAlign

    def wrap(self, availWidth, availHeight):  # noqa: N803
        # Turned, the frame's height is the width the stack may take, and vice versa.
        # Fixed-size flowables (the table) set the stack's width; paragraphs wrap to it.
        fixed = [f.wrap(availHeight, availWidth)[0] for f in self.flowables if not isinstance(f, Paragraph)]
        self._stack_w = max(fixed) if fixed else availHeight
        sizes = [f.wrap(self._stack_w, availWidth) for f in self.flowables]
        self._stack_h = sum(h + f.getSpaceAfter() for (_w, h), f in zip(sizes, self.flowables))
        self.width, self.height = self._stack_h, self._stack_w
        return self.width, self.height

    def draw(self) -> None:
        canv = self.canv
        canv.translate(self._stack_h, 0)
        canv.rotate(90)  # local (u, v) lands on page (stack_h - v, u)
        y = self._stack_h
        for f in self.flowables:
            w, h = f.wrap(self._stack_w, self._stack_h)
            y -= h
            f.drawOn(canv, (self._stack_w - w) / 2, y)  # each centred across the stack
            y -= f.getSpaceAfter()


class TCode(_Tracked, Flowable):
    """A tracked code listing, kept whole: monospaced lines whose characters sit on a fixed
    grid of columns, so the read-back recovers indentation and inner spacing from each
    word's x (``readback._code_lines``).

    ``runs`` holds, per line, ``(column, text, (r, g, b))`` segments (syntax colours); the
    block is ``width`` wide, with ``pad`` points around the text, on an optional grey
    ``fill`` (0 black .. 1 white) with an optional ``border``, or with a left ``rule``.
    """

    splittable = False

    def __init__(self, runs: list[list[tuple[int, str, tuple[float, float, float]]]], font: str, size: float,
                 leading: float, advance: float, width: float, pad: float, tag: dict[str, Any],
                 fill: float | None = None, border: bool = False, rule: bool = False):
        Flowable.__init__(self)
        self.runs, self.font, self.size, self.leading, self.advance = runs, font, size, leading, advance
        self.pad, self.fill, self.border, self.rule, self.tag = pad, fill, border, rule, tag
        self.hAlign = "LEFT"
        self.width = width
        # Ascent above the first baseline and descent below the last: 0.8 and 0.25 em.
        self.height = 2 * pad + 1.05 * size + (len(runs) - 1) * leading
        self._baseline0 = self.height - pad - 0.8 * size
        self._text_x = pad + (0.3 * size if rule else 0.0)

    def wrap(self, availWidth, availHeight):  # noqa: N803
        self._ocr1_wh = (self.width, self.height)
        return self._ocr1_wh

    def extras(self, canvas, x0: float, y0: float) -> dict[str, Any]:
        return {"text_x0": x0 + self._text_x, "baseline0": y0 + self._baseline0, "advance": self.advance,
                "leading": self.leading, "size": self.size}

    def draw(self) -> None:
        canv = self.canv
        canv.saveState()
        if self.fill is not None:
            canv.setFillGray(self.fill)
            canv.setStrokeGray(0.7)
            canv.setLineWidth(0.5)
            canv.rect(0, 0, self.width, self.height, stroke=int(self.border), fill=1)
        if self.rule:
            canv.setStrokeGray(0.55)
            canv.setLineWidth(max(1.0, 0.15 * self.size))
            canv.line(0, 0, 0, self.height)
        canv.setFont(self.font, self.size)
        for i, segments in enumerate(self.runs):
            y = self._baseline0 - i * self.leading
            for col, text, rgb in segments:
                canv.setFillColorRGB(*rgb)
                canv.drawString(self._text_x + col * self.advance, y, text)
        canv.restoreState()


class TEquation(_Tracked, Flowable):
    """A tracked display equation: its image centred across the column and, when numbered,
    its number (``(3)``) set as text flush right on the image's middle, as papers do.

    Records the column-wide rectangle plus ``image_rect``, the image's page rectangle; the
    read-back takes the number from the PDF's words.
    """

    splittable = False

    def __init__(self, reader, width: float, height: float, tag: dict[str, Any], number: str = "",
                 font: str = "Helvetica", size: float = 10.0):
        Flowable.__init__(self)
        self.reader, self.img_w, self.img_h, self.tag = reader, width, height, tag
        self.number, self.font, self.size = number, font, size
        self.hAlign = "LEFT"

    def wrap(self, availWidth, availHeight):  # noqa: N803
        self.width, self.height = availWidth, max(self.img_h, 1.2 * self.size if self.number else 0.0)
        self._ocr1_wh = (self.width, self.height)
        return self._ocr1_wh

    def _image_origin(self) -> tuple[float, float]:
        return (self.width - self.img_w) / 2, (self.height - self.img_h) / 2

    def extras(self, canvas, x0: float, y0: float) -> dict[str, Any]:
        ix, iy = self._image_origin()
        return {"image_rect": to_page(canvas, (x0 + ix, y0 + iy, x0 + ix + self.img_w, y0 + iy + self.img_h))}

    def draw(self) -> None:
        ix, iy = self._image_origin()
        draw_image(self.canv, self.reader, ix, iy, self.img_w, self.img_h)
        if self.number:
            self.canv.setFont(self.font, self.size)
            # Centred on the image's middle: the baseline sits 0.35 em below it.
            self.canv.drawRightString(self.width, self.height / 2 - 0.35 * self.size, self.number)
