"""Draw a page plan with reportlab platypus, in memory, keeping only the first page.

Returns the PDF bytes and the list of drawn-rectangle records (see ``flowables``).

Columns run to their foot (docs/ocr1.md, "Fill"): a block that cannot split and does not
fit the rest of its column waits for the next one while the text after it fills the
space, as LaTeX's floats do; a heading moves on with its paragraph only when it and the
paragraph's first two lines do not fit.
"""

from __future__ import annotations

import io
import zlib
from collections import OrderedDict
from typing import Any

from reportlab import rl_config
from reportlab.pdfbase import pdfdoc
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import BaseDocTemplate, Frame, PageTemplate, Paragraph
from reportlab.platypus import paragraph as rl_paragraph
from reportlab.platypus.doctemplate import FrameBreak
from reportlab.platypus.flowables import KeepTogether
from reportlab.platypus.paraparser import ParaFrag

from synth.ocr1 import fonts
from synth.ocr1.content import Decoration, PagePlan
from synth.ocr1.flowables import TSupply, can_wait, record

_FUZZ = rl_config._FUZZ  # reportlab's frames' tolerance on a fit
_IMAGE_MEMO = 256  # loaded image XObjects kept per process, at most
_IMAGE_MEMO_BYTES = 64 << 20  # and at most this many bytes of their streams (stored: raw pixels)


class _StoredDeflate:
    """``zlib`` as reportlab's pdfdoc sees it while a page for the engine is built: image
    streams are deflated at level 0 (stored blocks), still valid Flate data. The PDF lives
    in memory for one page and MuPDF decodes the same pixels either way; deflating them at
    zlib's default level cost about 0.3 ms an image (two a page) and inflating them again
    in MuPDF more. A PDF that leaves the process (``fonts.embedded_fonts``) is deflated as
    reportlab does."""

    @staticmethod
    def compress(data, level: int = 0) -> bytes:  # noqa: ARG004 (zlib's signature; always stored)
        return zlib.compress(data, 0)

    decompress = staticmethod(zlib.decompress)


class _ImageXObject(pdfdoc.PDFImageXObject):
    """reportlab's image XObject, loaded once per process for each image name.

    reportlab names an image by the MD5 of its pixels (an ImageReader) or of its path (a
    file: the inline formulas' PNGs, which are named by their pixels), and loads it afresh
    for every document: it reads and decodes the image and deflates its pixels again (0.8
    ms a page). Here the loaded state is kept by name (and by how its stream is deflated),
    and each document gets a fresh object (reportlab marks the objects it registers with a
    document), so the PDF bytes are the same. The memo is bounded by count and by bytes."""

    _loaded: OrderedDict = OrderedDict()
    _bytes = 0

    def __init__(self, name, source=None, mask=None):
        key = (name, repr(mask), pdfdoc.zlib is _StoredDeflate)
        state = self._loaded.get(key)
        if state is None:
            super().__init__(name, source, mask)
            state = self._loaded[key] = dict(self.__dict__)
            cls = type(self)
            cls._bytes += _state_bytes(state)
            while len(self._loaded) > 1 and (len(self._loaded) > _IMAGE_MEMO or cls._bytes > _IMAGE_MEMO_BYTES):
                cls._bytes -= _state_bytes(self._loaded.popitem(last=False)[1])
        else:
            self._loaded.move_to_end(key)
        self.__dict__.update(state)
        smask = state.get("_smask")
        if smask is not None:  # a soft mask (alpha) is registered by the canvas too: a fresh one
            self._smask = object.__new__(type(smask))
            self._smask.__dict__.update({k: v for k, v in smask.__dict__.items() if k != "__InternalName__"})


_WIDTHS: dict[tuple, float] = {}  # (text, font name, size, encoding) -> width in points
_WIDTHS_MAX = 1 << 16  # entries kept (about 16 MB) before the memo starts afresh


def _memo_string_width(text, fontName, fontSize, encoding="utf8"):  # noqa: N803 (reportlab's names)
    """``pdfmetrics.stringWidth`` remembered per process while pages are laid out.

    A paragraph measures every word, hyphenation candidate and line as it wraps and
    draws, about 850 calls a page, two in three of a string measured before; each call
    looks the font up and formats its arguments for the C routine. A font name stands for
    one font for the life of a process (fonts are registered once, ``synth.ocr1.fonts``),
    so the width of a string in it is a pure function of these arguments."""
    key = (text, fontName, fontSize, encoding)
    w = _WIDTHS.get(key)
    if w is None:
        if len(_WIDTHS) >= _WIDTHS_MAX:
            _WIDTHS.clear()
        w = _WIDTHS[key] = stringWidth(text, fontName, fontSize, encoding)
    return w


_pdf_name = pdfdoc.PDFName  # reportlab's own, kept before a build replaces it
_NAMES: dict[str, str] = {}
_NAMES_MAX = 4096


def _memo_pdf_name(data, *rest):
    """``pdfdoc.PDFName`` (a name escaped for the PDF), remembered: the same hundred-odd
    dictionary keys and values are escaped character by character on every page."""
    if rest or type(data) is not str:
        return _pdf_name(data, *rest)
    name = _NAMES.get(data)
    if name is None:
        if len(_NAMES) >= _NAMES_MAX:
            _NAMES.clear()
        name = _NAMES[data] = _pdf_name(data)
    return name


_ascent_descent = rl_paragraph.getAscentDescent  # reportlab's own, as above
_ASCENTS: dict[tuple, tuple[float, float]] = {}


def _memo_ascent_descent(fontName, fontSize=None):  # noqa: N803 (reportlab's names)
    """``pdfmetrics.getAscentDescent``, remembered during a build (fonts do not change
    within one): reportlab's asks the font for ``ascent``, which neither its TrueType nor
    its Type 1 fonts have, and answers from the face after the AttributeError, each time."""
    key = (fontName, fontSize)
    got = _ASCENTS.get(key)
    if got is None:
        got = _ASCENTS[key] = _ascent_descent(fontName, fontSize)
    return got


_DRAWN_ALIKE = ("fontName", "fontSize", "textColor", "rise", "us_lines", "link", "backColor", "nobr")
_NONE = object()


def _same_frag(f, g, _same=rl_paragraph.sameFrag, _frag=ParaFrag) -> bool:
    """reportlab's ``sameFrag`` (do two fragments of a paragraph draw alike?), answered
    here for its plain fragments. Lines ask it of each word's fragment and the one before
    (190 times a default page; a Chinese line glyph by glyph), and reportlab's C routine
    looks the attributes up by name, raising an AttributeError inside for each missing one:
    3.4 us a call, 0.4 us here. The answer is reportlab's: no fragment carrying an image
    (``cbDefn``) or a line break is drawn alike; else two are when each of the eight
    attributes it compares is missing on both or equal (``!=``) on both. A ParaFrag keeps
    its attributes in its own ``__dict__`` (the class defines none of them); other kinds
    of fragment go to reportlab's routine. For one object the answer is whether it
    carries an image or a line break."""
    if f is g:
        return not (hasattr(f, "cbDefn") or hasattr(f, "lineBreak"))
    if type(f) is not _frag or type(g) is not _frag:
        return _same(f, g)
    fd, gd = f.__dict__, g.__dict__
    if "cbDefn" in fd or "cbDefn" in gd or "lineBreak" in fd or "lineBreak" in gd:
        return False
    for name in _DRAWN_ALIKE:
        a, b = fd.get(name, _NONE), gd.get(name, _NONE)
        if a is not b and (a is _NONE or b is _NONE or a != b):
            return False
    return True


def _state_bytes(state: dict) -> int:
    smask = state.get("_smask")
    return len(state.get("streamContent") or b"") + len(getattr(smask, "streamContent", None) or b"")


def _room(frame: Frame, f) -> float:
    """The height left for ``f`` in ``frame``, as ``Frame.split`` counts it."""
    s = 0.0
    if not frame._atTop:
        s = f.getSpaceBefore()
        if frame._oASpace:
            s = max(s - frame._prevASpace, 0.0)
    return frame._y - frame._y1p - s


def _fits(f, frame: Frame, canv) -> bool:
    """Whether the whole of ``f`` (a block, or a group that keepWithNext made) fits the rest
    of ``frame``; a group's parts are summed with their spaces, as a frame would stack them
    (KeepTogether's own measure copies the frame)."""
    room = _room(frame, f)
    if room <= 0:
        return False
    group = isinstance(f, KeepTogether)
    parts = f._content if group else [f]
    aW = frame._getAvailableWidth()
    # Asked as the frame (a block) or the group's own measure (its parts) will ask next, so
    # the flowables answer that from memory (``flowables._Tracked.wrap``).
    h = sum(p.wrapOn(canv, aW, 0xFFFFFFF if group else room)[1] for p in parts)
    h += sum(a.getSpaceAfter() + b.getSpaceBefore() for a, b in zip(parts, parts[1:]))
    return h <= room + _FUZZ


class _KeepWithNext(KeepTogether):
    """reportlab's keepWithNext group (a heading and its paragraph, a caption and its
    table), kept as LaTeX keeps a heading: a group that ends in a paragraph stays in this
    column when what precedes the paragraph and the paragraph's first lines fit (no orphan,
    as the paragraph's own split decides); the paragraph then goes on in the next column.
    reportlab's KeepTogether moved the whole group on, leaving the rest of the column blank."""

    def split(self, aW, aH):  # noqa: N803 (reportlab's names)
        *lead, last = self._content
        if lead and isinstance(last, Paragraph) and all(isinstance(f, Paragraph) for f in lead):
            h = sum(f.wrap(aW, aH)[1] for f in lead)
            h += sum(a.getSpaceAfter() + b.getSpaceBefore() for a, b in zip(lead, self._content[1:]))
            if h < aH and last.split(aW, aH - h):
                return list(self._content)
        return super().split(aW, aH)


class _FirstPageDoc(BaseDocTemplate):
    """A document that stops laying out once its first page is full."""

    def __init__(self, buf, plan: PagePlan, frames: list[Frame]):
        super().__init__(buf, pagesize=(plan.page_w, plan.page_h), invariant=1, pageCompression=0,
                         leftMargin=plan.margins[0], rightMargin=plan.margins[1],
                         topMargin=plan.margins[2], bottomMargin=plan.margins[3],
                         keepTogetherClass=_KeepWithNext)
        self.plan = plan
        self.ocr1_drawn: list[dict[str, Any]] = []
        self.ocr1_full = False
        self.ocr1_held: list = []  # rigid blocks waiting for the next column, in order
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
        frame = getattr(self, "frame", None)
        # Not the page-begin actions reportlab runs through here (``_hanging``).
        if frame is not None and frame.id.startswith("col") and flowables is not self._hanging:
            if self.ocr1_held and frame._atTop:  # a new column: the held blocks open it
                if flowables and hasattr(flowables[0], "_postponed"):
                    del flowables[0]._postponed  # it no longer opens a column: it may wait again
                flowables[0:0] = self.ocr1_held
                self.ocr1_held = []
            if isinstance(flowables[0], TSupply):  # the page still has room: one more paragraph
                made = flowables[0].more()
                if not made:
                    del flowables[0]
                    return
                flowables[0:0] = made
            self.handle_keepWithNext(flowables)  # group a caption with its float first
            f = flowables[0]
            # A rigid block that does not fit waits for the next column and the text after
            # it fills this one; later rigid blocks wait behind it, so floats keep their order.
            if can_wait(f) and not frame._atTop and (self.ocr1_held or not _fits(f, frame, self.canv)):
                self.ocr1_held.append(flowables.pop(0))
                if not flowables:  # the text ran out first: the held blocks still get a column
                    flowables.append(FrameBreak())
                return
        super().handle_flowable(flowables)

    def _decorate(self, canv, doc) -> None:
        if self.page != 1:
            return
        plan = self.plan
        wm = plan.watermark
        if wm is not None:  # first, so everything else is drawn over it
            from reportlab.lib.utils import ImageReader

            canv.drawImage(ImageReader(wm.image), wm.x, wm.y, wm.w, wm.h)
        for d in plan.decorations:
            canv.setFont(d.font, d.size)
            rect = decoration_rect(d)
            if d.rotation or d.gray:  # upright black strings keep their plain drawing ops
                canv.saveState()
                canv.setFillGray(d.gray)
                canv.translate(d.x, d.y)
                canv.rotate(d.rotation)
                canv.drawString(0 if d.rotation else rect[0] + 1 - d.x, 0, d.text)
                canv.restoreState()
            else:
                canv.drawString(rect[0] + 1, d.y, d.text)
            record(canv, d.tag, rect)
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
        dx0, dy0, dx1, dy1 = decoration_rect(d)
        x0, y0, x1, y1 = min(x0, dx0), min(y0, dy0), max(x1, dx1), max(y1, dy1)
    return x0, y0, x1, y1


def decoration_rect(d: Decoration) -> tuple[float, float, float, float]:
    """The rectangle (PDF points, y up) a decoration's glyph cells fill, with 1 pt of slack
    along the line: descent 0.35 em below the baseline, ascent 1.05 em above it."""
    w = stringWidth(d.text, d.font, d.size)
    if d.rotation == 90:  # reads upward from (x, y); glyph tops point to -x
        return d.x - 1.05 * d.size, d.y - 1, d.x + 0.35 * d.size, d.y + w + 1
    if d.rotation == -90:  # reads downward from (x, y); glyph tops point to +x
        return d.x - 0.35 * d.size, d.y - w - 1, d.x + 1.05 * d.size, d.y + 1
    x = {"left": d.x, "center": d.x - w / 2, "right": d.x - w}[d.align]
    return x - 1, d.y - 0.35 * d.size, x + w + 1, d.y + 1.05 * d.size


def _build_patches() -> tuple[tuple[Any, str, Any], ...]:
    """(module, attribute, value) of what reportlab uses instead during one build; each is
    put back after the build, failed or not.

    ASCII85 of image streams is pure Python without rl_accel (~10 ms per image) and buys
    nothing in memory: binary streams. Images are loaded once per process
    (_ImageXObject), and their streams stored, not deflated, unless the PDF leaves the
    process (_StoredDeflate). String widths, PDF names and font ascents are remembered and
    fragments compared here (the ``_memo_*`` functions and ``_same_frag``)."""
    return ((rl_config, "useA85", 0), (pdfdoc, "PDFImageXObject", _ImageXObject),
            (pdfdoc, "zlib", zlib if fonts.embedding() else _StoredDeflate),
            (rl_paragraph, "stringWidth", _memo_string_width), (rl_paragraph, "sameFrag", _same_frag),
            (pdfdoc, "PDFName", _memo_pdf_name), (rl_paragraph, "getAscentDescent", _memo_ascent_descent))


def build_pdf(plan: PagePlan) -> tuple[bytes, list[dict[str, Any]]]:
    """Lay out the plan; return (PDF bytes, drawn records in drawing order)."""
    buf = io.BytesIO()
    doc = _FirstPageDoc(buf, plan, frames_for(plan))
    story = list(plan.title_flowables)
    if story:
        story.append(FrameBreak())
    story += plan.body
    patches = _build_patches()
    saved = [(owner, name, getattr(owner, name)) for owner, name, _value in patches]
    for owner, name, value in patches:
        setattr(owner, name, value)
    _ASCENTS.clear()
    try:
        doc.build(story)
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)
    return buf.getvalue(), doc.ocr1_drawn
