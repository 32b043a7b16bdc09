"""Read the drawn page back: PyMuPDF words -> regions, lines and markdown content.

Every word comes from the rendered PDF (``page.get_text("words")``); the layout records
only say which drawn flowable a word belongs to (its centre lies in the flowable's
drawn rectangle). Text regions are measured as the union of their words' boxes; tables
as their drawn grid plus words; images as their drawn rectangle; equations as their
image's rectangle plus their number's words. Code listings put each word on its line and
column of the listing's character grid.
"""

from __future__ import annotations

import functools
import html
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from synth.mupdf import pymupdf

from synth.ocr1 import inline_math
from synth.ocr1.fonts import NAMED_STYLES

TEXT_LABELS = ("title", "sub_title", "text", "table_caption", "image_caption", "header", "footer",
               "page_number", "footnote")
# Region boxes of these labels are the drawn rectangles (an equation's widened to its
# number, the only PDF text it may carry).
DRAWN_LABELS = ("image", "equation")
_MATH = -1  # block number of the pseudo-words that stand for inline formulas


@dataclass
class ReadRegion:
    """A region read back: label, box in PDF points (y down), markdown and plain text."""

    label: str
    box: tuple[float, float, float, float]
    content: str
    plain: str
    lines: list[tuple[str, tuple[float, float, float, float]]] = field(default_factory=list)
    words: list[tuple[str, tuple[float, float, float, float]]] = field(default_factory=list)


class PageText:
    """The text of one rendered page from a single PyMuPDF TextPage.

    Every text extraction of the page (words, spans, characters) comes from this one
    TextPage, each made once, when first asked: building a TextPage runs the page's whole
    content stream, and the read-back and the text-location queries used to build four or
    five of them per page. The flags are PyMuPDF's ``TEXTFLAGS_TEXT``, which its words,
    dict and rawdict extractions all default to, so the results are the same as theirs.
    Drawn images are listed apart (:meth:`images`, pages with inline formulas only).
    Given the page's display list (``render.display_list``), the TextPage is made by
    running it, which the raster shares, rather than by parsing the page again.
    """

    def __init__(self, page, drawing=None):
        self.page = page
        self.drawing = drawing
        if drawing is None:
            self.textpage = page.get_textpage(flags=pymupdf.TEXTFLAGS_TEXT)
        else:
            self.textpage = pymupdf.TextPage(drawing.get_textpage(flags=pymupdf.TEXTFLAGS_TEXT))
            self.textpage.parent = page  # what page.get_text checks a TextPage against

    @functools.cached_property
    def words(self) -> list[tuple]:
        """``page.get_text("words")``: (x0, y0, x1, y1, text, block, line, word) in page order."""
        return self.page.get_text("words", textpage=self.textpage, sort=False)

    @functools.cached_property
    def blocks(self) -> list[dict[str, Any]]:
        """The blocks of ``page.get_text("dict")`` (lines of spans with font, flags, bbox)."""
        return self.textpage.extractDICT()["blocks"]

    @functools.cached_property
    def raw_blocks(self) -> list[dict[str, Any]]:
        """The blocks of ``page.get_text("rawdict")`` (spans of characters with boxes)."""
        return self.textpage.extractRAWDICT()["blocks"]

    def clipped_raw_blocks(self, rect) -> list[dict[str, Any]]:
        """The blocks of ``page.get_text("rawdict", clip=rect)``: only the characters inside
        ``rect`` (a TextPage whose page box is ``rect``, as PyMuPDF makes it), from the
        display list when there is one rather than by parsing the page again."""
        if self.drawing is None:
            return self.page.get_text("rawdict", flags=pymupdf.TEXTFLAGS_TEXT, clip=rect)["blocks"]
        mupdf = pymupdf.mupdf
        stext = mupdf.FzStextPage(mupdf.FzRect(*rect))
        device = mupdf.fz_new_stext_device(stext, mupdf.FzStextOptions(pymupdf.TEXTFLAGS_TEXT))
        mupdf.fz_run_display_list(self.drawing.this, device, mupdf.FzMatrix(), mupdf.FzRect(mupdf.FzRect.Fixed_INFINITE),
                                  mupdf.FzCookie())
        mupdf.fz_close_device(device)
        return pymupdf.TextPage(stext).extractRAWDICT()["blocks"]

    def images(self, sizes) -> list[tuple[tuple[float, float, float, float], str]]:
        """(box, hex MD5 of the pixels) of each drawn image whose pixel size (w, h) is one of
        ``sizes``, in drawing order: what ``page.get_image_info(hashes=True)`` reports for
        them (the same boxes, the same pixmap digest), without decoding the page's other
        images (charts, display equations: most of its cost).

        Given the display list, the images are listed by running it through a device that
        hears only the image calls (:class:`_ImageLister`), not through a TextPage that
        keeps images, which also takes in all the page's text again (0.6 ms a page); the
        boxes are the ones that TextPage gives (``fz_transform_rect`` of the unit square by
        the image's matrix; tested). A page that draws a stencil mask, which the engine's
        pages never do, is listed through the TextPage."""
        mupdf = pymupdf.mupdf
        if self.drawing is not None:
            lister = _ImageLister(sizes)
            mupdf.fz_run_display_list(self.drawing.this, lister, mupdf.FzMatrix(),
                                      mupdf.FzRect(mupdf.FzRect.Fixed_INFINITE), mupdf.FzCookie())
            mupdf.fz_close_device(lister)
            found = None if lister.masks else lister.found
        else:
            found = None
        if found is None:
            if self.drawing is not None:
                textpage = pymupdf.TextPage(self.drawing.get_textpage(flags=pymupdf.TEXT_PRESERVE_IMAGES))
            else:
                textpage = self.page.get_textpage(flags=pymupdf.TEXT_PRESERVE_IMAGES)
            found = []
            for block in textpage.this:
                if block.m_internal.type != mupdf.FZ_STEXT_BLOCK_IMAGE:
                    continue
                img = block.i_image()
                if (img.w(), img.h()) in sizes:
                    found.append((mupdf.FzRect(block.m_internal.bbox), img))
        whole = mupdf.FzIrect(pymupdf.FZ_MIN_INF_RECT, pymupdf.FZ_MIN_INF_RECT, pymupdf.FZ_MAX_INF_RECT,
                              pymupdf.FZ_MAX_INF_RECT)
        out = []
        for rect, img in found:
            pix, _w, _h = mupdf.fz_get_pixmap_from_image(img, whole, mupdf.FzMatrix(img.w(), 0, 0, img.h(), 0, 0))
            out.append((pymupdf.JM_py_from_rect(rect), bytes(mupdf.fz_md5_pixmap2(pix)).hex()))
        return out


class _ImageLister(pymupdf.mupdf.FzDevice2):
    """A MuPDF device that keeps (box, image) of each drawn image of one of ``sizes`` and
    notes whether any stencil mask was drawn; every other call is a no-op in C."""

    def __init__(self, sizes):
        super().__init__()
        self.use_virtual_fill_image()
        self.use_virtual_fill_image_mask()
        self.sizes, self.found, self.masks = sizes, [], 0

    def fill_image(self, ctx, image, ctm, alpha, color_params):  # noqa: ARG002 (MuPDF's signature)
        mupdf = pymupdf.mupdf
        img = mupdf.FzImage(mupdf.ll_fz_keep_image(image))  # a reference of our own
        if (img.w(), img.h()) in self.sizes:
            self.found.append((mupdf.fz_transform_rect(mupdf.FzRect(mupdf.FzRect.Fixed_UNIT), mupdf.FzMatrix(ctm)), img))

    def fill_image_mask(self, ctx, image, ctm, colorspace, color, alpha, color_params):  # noqa: ARG002
        self.masks += 1


def page_text(page_or_text) -> PageText:
    """A :class:`PageText` of a PyMuPDF page (a PageText is returned as it is)."""
    return page_or_text if isinstance(page_or_text, PageText) else PageText(page_or_text)


def _join(parts: list[str], lang: str) -> str:
    """Join word or line strings (empty ones skipped): spaces in English; in Chinese only
    next to Latin/digits."""
    if lang != "zh":
        return " ".join(p for p in parts if p)
    out = ""
    for p in parts:
        if out and (out[-1].isascii() and out[-1].isalnum() or p[:1].isascii() and p[:1].isalnum()):
            out += " "
        out += p
    return out


def _union(boxes) -> tuple[float, float, float, float]:
    """The bounding box of (x0, y0, x1, y1) boxes (in plain Python: a line has a handful,
    and numpy's per-call overhead cost more than the work)."""
    x0, y0, x1, y1 = zip(*((b[0], b[1], b[2], b[3]) for b in boxes))
    return float(min(x0)), float(min(y0)), float(max(x1)), float(max(y1))


def _reading_frame(box, rotation: int) -> tuple[float, float, float, float]:
    """A word box in the frame where its text runs left to right and lines stack downward.

    ``rotation`` is the text's counter-clockwise rotation on the page in degrees (0, 90 or
    -90); boxes are PDF points with y down. Text turned 90 degrees reads bottom to top and
    its next line lies to the right; turned -90 it reads top to bottom, next line to the left.
    """
    x0, y0, x1, y1 = box[:4]
    if rotation == 90:
        return -y1, x0, -y0, x1
    if rotation == -90:
        return y0, -x1, y1, -x0
    return x0, y0, x1, y1


def _group_lines(words: list[tuple], rotation: int = 0) -> list[list[tuple]]:
    """Words (x0, y0, x1, y1, text, ...) grouped into visual lines in reading order, each
    sorted in reading direction (left to right for upright text; see :func:`_reading_frame`)."""
    if not words:
        return []
    framed = sorted(((_reading_frame(w, rotation), w) for w in words), key=lambda fw: (fw[0][1] + fw[0][3]) / 2)
    groups: list[list[tuple]] = [[framed[0]]]
    for fw in framed[1:]:
        first, f = groups[-1][0][0], fw[0]
        cy, h = (first[1] + first[3]) / 2, first[3] - first[1]
        # Same line when the centre is within ~40% of a line height of the line's first word.
        if abs((f[1] + f[3]) / 2 - cy) <= 0.4 * max(h, f[3] - f[1]):
            groups[-1].append(fw)
        else:
            groups.append([fw])
    return [[w for _f, w in sorted(g, key=lambda fw: fw[0][0])] for g in groups]


def _dehyphenate(groups: list[list[tuple]], source: str | None) -> list[list[tuple]]:
    """Visual lines of words with each word that hyphenation broke over a line end joined
    again: the line's last word, less its hyphen, takes the next line's first word.

    A line can also end in a hyphen the text has: a compound broken at its own hyphen
    (``comma-`` / ``separated``, joined with the hyphen kept) or a word before a space
    (``one-`` / ``to``, left apart). The page alone cannot tell these apart, so the
    flowable's source text decides: pieces are joined only into one of its words. Lines
    keep their count; a line whose only word moved up is left empty."""
    if not source or len(groups) < 2:
        return groups
    words = set(source.split())
    out = [list(g) for g in groups]
    for i in range(len(out) - 1):
        if not out[i] or not out[i + 1]:
            continue
        a, b = out[i][-1], out[i + 1][0]
        head = a[4]
        if a[5] == _MATH or b[5] == _MATH or len(head) < 2 or not head.endswith("-"):
            continue
        if head[:-1] + b[4] in words:  # hyphenated: "compu-" + "ting"
            whole = head[:-1] + b[4]
        elif head + b[4] in words:  # broken at its own hyphen: "comma-" + "separated"
            whole = head + b[4]
        else:  # a hyphen of the text before a space: "one-" + "to"
            continue
        out[i][-1] = (*a[:4], whole, *a[5:])
        out[i + 1] = out[i + 1][1:]
    return out


def _line_texts(groups: list[list[tuple]], lang: str) -> list[tuple[str, tuple[float, float, float, float], float]]:
    """(text, box, x0 of the first word) of each visual line of :func:`_group_lines`."""
    return [(_join([w[4] for w in g], lang), _union([w[:4] for w in g]), float(g[0][0])) for g in groups]


def _lines(words: list[tuple], lang: str,
           rotation: int = 0) -> list[tuple[str, tuple[float, float, float, float], float]]:
    """Visual lines of words: (text, box, x0 of the first word) per line, in reading order."""
    return _line_texts(_group_lines(words, rotation), lang)


_MARKS = {"bold": "**", "italic": "*", "bold_italic": "***"}


def word_emphasis(page, words: list[tuple]) -> list[str]:
    """Per word: "bold", "italic", "bold_italic" or "" from the font flags of the drawn
    span under the word's centre (what the PDF drew, not what the plan asked for), or
    from its font's name where the font sets no flags (``fonts.NAMED_STYLES``). ``page``
    is a PyMuPDF page or its :class:`PageText`."""
    span_dicts = [sp for b in page_text(page).blocks for ln in b.get("lines", ()) for sp in ln["spans"]]
    spans = [(sp["bbox"], sp["flags"]) for sp in span_dicts]
    if not spans or not words:
        return [""] * len(words)
    sb = np.asarray([sp[0] for sp in spans], dtype=float)
    flags = np.asarray([sp[1] for sp in spans])
    wa = np.asarray([w[:4] for w in words], dtype=float)
    cx, cy = ((wa[:, 0] + wa[:, 2]) / 2)[:, None], ((wa[:, 1] + wa[:, 3]) / 2)[:, None]
    hit = (sb[None, :, 0] <= cx) & (cx <= sb[None, :, 2]) & (sb[None, :, 1] <= cy) & (cy <= sb[None, :, 3])
    area = (sb[:, 2] - sb[:, 0]) * (sb[:, 3] - sb[:, 1])
    owner = np.where(hit, area[None, :], np.inf).argmin(axis=1)
    named = [NAMED_STYLES.get(sp["font"], "") for sp in span_dicts]
    out = []
    for i, found in enumerate(hit.any(axis=1).tolist()):
        f = int(flags[owner[i]]) if found else 0
        name = named[owner[i]] if found else ""
        bold = bool(f & pymupdf.TEXT_FONT_BOLD) or name == "bold"
        italic = bool(f & pymupdf.TEXT_FONT_ITALIC) or name == "italic"
        out.append("bold_italic" if bold and italic else "bold" if bold else "italic" if italic else "")
    return out


def _emphasis_markdown(groups: list[list[tuple]], lang: str) -> str:
    """A paragraph's text from its visual lines of words (:func:`_group_lines`), with runs of
    emphasised words (style in each word's last field) wrapped in ``**``/``*``; without
    the marks it is exactly the plain text."""
    flat = [w for g in groups for w in g]
    parts: list[str] = []
    i = 0
    while i < len(flat):
        style, j = flat[i][-1], i
        while j < len(flat) and flat[j][-1] == style:
            j += 1
        text = _join([w[4] for w in flat[i:j]], lang)
        parts.append(f"{_MARKS[style]}{text}{_MARKS[style]}" if style else text)
        i = j
    return _join(parts, lang)


_NUMBER = re.compile(r"(\d+)\.\s*(.*)", re.S)
_BULLET = re.compile(r"\u2022\s*(.*)", re.S)


def _list_items(lines, numbered: bool, font_size: float, lang: str, sub_marker: str | None = None,
                groups: list[list[tuple]] | None = None) -> tuple[list[str], list[str]]:
    """Split list lines into items at the bullet column and, when the list nests one,
    sub-items at the column where lines open with ``sub_marker``; (markdown items, plain
    items). Sub-items are indented under their item's marker in the markdown. With the
    lines' word ``groups`` (words carrying their drawn style), the markdown marks emphasis."""
    tol = 0.3 * font_size
    col = min(x for _t, _b, x in lines)
    opens = [x for t, _b, x in lines if sub_marker and x > col + tol and t.startswith(sub_marker)]
    sub_col = min(opens) if opens else None
    items: list[tuple[int, list[int]]] = []
    for k, (text, _box, x) in enumerate(lines):
        if x <= col + tol or not items:
            items.append((0, [k]))
        elif sub_col is not None and abs(x - sub_col) <= tol and text.startswith(sub_marker):
            items.append((1, [k]))
        else:
            items[-1][1].append(k)
    md, plain = [], []
    number, lead = 0, "- "
    for level, ks in items:
        text = _join([lines[k][0] for k in ks], lang)
        marked = _emphasis_markdown([groups[k] for k in ks], lang) if groups is not None else text
        plain.append(text)
        if level == 1:
            md.append(" " * len(lead) + "- " + marked[len(sub_marker):].strip())
            continue
        number += 1
        # Chinese lines join "1." and "•" to the text without a space: match, don't split.
        marker = (_NUMBER if numbered else _BULLET).match(marked)
        if marker and numbered:
            lead, body = f"{marker.group(1)}. ", marker.group(2)
        elif marker:
            lead, body = "- ", marker.group(1)
        else:  # the marker was not read back: keep the text whole
            lead, body = (f"{number}. " if numbered else "- "), marked
        md.append(lead + body)
    return md, plain


def _table(rec: dict[str, Any], words: list[tuple], lang: str, H: float):
    """HTML of a drawn table from its recorded cells and the words inside each cell."""
    cells = rec["cells"]
    rects = np.asarray([[c[4], H - c[7], c[6], H - c[5]] for c in cells], dtype=float)
    by_cell: list[list[tuple]] = [[] for _ in cells]
    for w in words:
        cx, cy = (w[0] + w[2]) / 2, (w[1] + w[3]) / 2
        inside = np.nonzero((rects[:, 0] <= cx) & (cx <= rects[:, 2]) & (rects[:, 1] <= cy) & (cy <= rects[:, 3]))[0]
        by_cell[int(inside[0]) if len(inside) else 0].append(w)
    rows: dict[int, list[str]] = {}
    plain_rows: dict[int, list[str]] = {}
    lines = []
    for cell, ws in zip(cells, by_cell):
        r, _c, rs, cs = cell[:4]
        cl = _lines(ws, lang, int(rec["tag"].get("rotation", 0)))
        text = _join([t for t, _b, _x in cl], lang)
        lines += [(t, b) for t, b, _x in cl]
        attrs = (f' rowspan="{rs}"' if rs > 1 else "") + (f' colspan="{cs}"' if cs > 1 else "")
        rows.setdefault(r, []).append(f"<td{attrs}>{html.escape(text, quote=False)}</td>")
        if text:
            plain_rows.setdefault(r, []).append(text)
    nrows = rec["shape"][0]
    content = "<table>" + "".join("<tr>" + "".join(rows.get(r, [])) + "</tr>" for r in range(nrows)) + "</table>"
    plain = "\n".join(" ".join(plain_rows[r]) for r in sorted(plain_rows))
    return content, plain, lines


def _code_lines(rec: dict[str, Any], words: list[tuple], H: float):
    """A code listing's text and its (line text, box) pairs from its words' positions.

    The listing is monospaced (``flowables.TCode`` records its first baseline, line
    advance and character advance), so each word's line and column follow from its box:
    indentation, runs of spaces and blank lines come back exactly as drawn."""
    adv, lead, size = rec["advance"], rec["leading"], rec["size"]
    x0 = rec["text_x0"]
    mid0 = H - rec["baseline0"] - 0.3 * size  # y-down centre of the first line's x-height band
    rows: dict[int, list[tuple]] = {}
    for w in words:
        rows.setdefault(round(((w[1] + w[3]) / 2 - mid0) / lead), []).append(w)
    text_lines, lines = [], []
    for i in range(max(rows) + 1 if rows else 0):
        line = ""
        for w in sorted(rows.get(i, ()), key=lambda w: w[0]):
            col = max(round((w[0] - x0) / adv), len(line) + (1 if line else 0))
            line = line.ljust(col) + w[4]
        text_lines.append(line)
        if line:
            lines.append((line.strip(), _union([w[:4] for w in rows[i]])))
    return "\n".join(text_lines), lines


def _equation(rec: dict[str, Any], words: list[tuple], lang: str, H: float) -> ReadRegion:
    """A display equation: its LaTeX (the image's), and its number when the PDF has one
    beside it, as ``\\[ latex \\tag{7} \\]``; the box bounds the image and the number."""
    x0, y0, x1, y1 = rec.get("image_rect", rec["rect"])
    box = (x0, H - y1, x1, H - y0)
    latex = rec["tag"]["latex"]
    if not words:
        return ReadRegion("equation", box, f"\\[ {latex} \\]", "")
    number = _join([w[4] for w in sorted(words, key=lambda w: w[0])], lang)
    number_box = _union([w[:4] for w in words])
    tag = number[1:-1] if number.startswith("(") and number.endswith(")") else number
    return ReadRegion("equation", _union([box, number_box]), f"\\[ {latex} \\tag{{{tag}}} \\]", number,
                      [(number, number_box)], [(w[4], tuple(w[:4])) for w in words])


def _inline_math_tokens(page, drawn: list[dict[str, Any]], emphasis: bool) -> list[tuple]:
    """Each drawn inline formula as a pseudo-word ``(x0, y0, x1, y1, "\\( latex \\)", -1, -1,
    -1[, ""])``: PyMuPDF's images, named through their pixel digests by the formulas the
    page's paragraphs planned (the first planned wins where two draw the same pixels)."""
    names: dict[str, str] = {}
    sizes = set()
    for rec in drawn:
        tag = rec["tag"]
        for latex, digest in zip(tag.get("inline_math", ()), tag.get("inline_digests", ())):
            names.setdefault(digest, latex)
        sizes.update(tuple(s) for s in tag.get("inline_sizes", ()))
    out = []
    for bbox, digest in page_text(page).images(sizes):
        latex = names.get(digest)
        if latex is not None:
            tok = (*bbox, inline_math.token(latex), _MATH, _MATH, _MATH)
            out.append(tok + ("",) if emphasis else tok)
    return out


def _split_at_formulas(page, words: list[tuple], formulas: list[tuple]) -> list[tuple]:
    """Words cut where an inline formula sits inside them.

    PyMuPDF splits words at spaces only, so CJK text with a formula image between two
    ideographs comes back as one word running across the image. Such a word is cut at the
    formula's centre, by the boxes of its characters (``rawdict``), into words that keep its
    block, line and word numbers (and style field)."""
    cuts: dict[int, list[float]] = {}  # word index -> x of the formulas inside it
    for f in formulas:
        cx, cy = (f[0] + f[2]) / 2, (f[1] + f[3]) / 2
        for i, w in enumerate(words):
            if w[0] < cx < w[2] and w[1] <= cy <= w[3]:
                cuts.setdefault(i, []).append(cx)
    if not cuts:
        return words
    chars = [(ch["bbox"], ch["c"]) for b in page_text(page).raw_blocks
             for ln in b.get("lines", ()) for sp in ln["spans"] for ch in sp["chars"]]
    out = []
    for i, w in enumerate(words):
        if i not in cuts:
            out.append(w)
            continue
        mine = [(bb, c) for bb, c in chars if not c.isspace() and w[0] - 0.5 <= (bb[0] + bb[2]) / 2 <= w[2] + 0.5
                and w[1] - 0.5 <= (bb[1] + bb[3]) / 2 <= w[3] + 0.5]
        mine.sort(key=lambda bc: bc[0][0])
        edges = [-np.inf, *sorted(cuts[i]), np.inf]
        for lo, hi in zip(edges, edges[1:]):
            part = [(bb, c) for bb, c in mine if lo < (bb[0] + bb[2]) / 2 < hi]
            if part:
                box = _union([bb for bb, _c in part])
                out.append((*box, "".join(c for _bb, c in part), *w[5:]))
    return out


def read_regions(page, drawn: list[dict[str, Any]], lang: str, font_size: float) -> tuple[list[ReadRegion], int]:
    """Regions in reading order (boxes in points, y down) and the count of unassigned words.
    ``page`` is a PyMuPDF page or its :class:`PageText`."""
    page = page_text(page)
    H = float(page.page.rect.height)
    words = page.words
    emphasis = any(r["tag"].get("emphasis") for r in drawn)
    if emphasis:
        words = [tuple(w) + (style,) for w, style in zip(words, word_emphasis(page, words))]
    if any(r["tag"].get("inline_math") for r in drawn):
        formulas = _inline_math_tokens(page, drawn, emphasis)
        words = _split_at_formulas(page, list(words), formulas) + formulas
    order = sorted(range(len(drawn)), key=lambda i: (drawn[i]["tag"]["group"], i))
    recs = [drawn[i] for i in order]
    rects = np.asarray([[r["rect"][0], H - r["rect"][3], r["rect"][2], H - r["rect"][1]] for r in recs],
                       dtype=float).reshape(-1, 4)
    owned: list[list[tuple]] = [[] for _ in recs]
    orphans = 0
    if words and len(recs):
        tol = 1.0
        wa = np.asarray([w[:4] for w in words], dtype=float)
        cx = ((wa[:, 0] + wa[:, 2]) / 2)[:, None]
        cy = ((wa[:, 1] + wa[:, 3]) / 2)[:, None]
        hit = ((rects[None, :, 0] - tol <= cx) & (cx <= rects[None, :, 2] + tol)
               & (rects[None, :, 1] - tol <= cy) & (cy <= rects[None, :, 3] + tol))  # (words, recs)
        # Rectangles only overlap at touching edges: the smallest one containing the centre wins.
        area = (rects[:, 2] - rects[:, 0]) * (rects[:, 3] - rects[:, 1])
        owner = np.where(hit, area[None, :], np.inf).argmin(axis=1)
        found = hit.any(axis=1)
        orphans = int((~found).sum())
        for w, o, f in zip(words, owner.tolist(), found.tolist()):
            if f:
                owned[o].append(w)
    else:
        orphans = len(words)

    regions: list[ReadRegion] = []
    for rec, rect, ws in zip(recs, rects, owned):
        tag = rec["tag"]
        label = tag["label"]
        rect_t = tuple(float(v) for v in rect)
        if label == "equation":
            regions.append(_equation(rec, ws, lang, H))
            continue
        if label in DRAWN_LABELS:
            regions.append(ReadRegion(label, rect_t, "", ""))
            continue
        if not ws:
            continue  # e.g. an empty paragraph fragment: nothing was drawn
        wl = [(w[4], tuple(w[:4])) for w in ws if w[5] != _MATH]  # PyMuPDF's words only
        if label == "table":
            content, plain, lines = _table(rec, ws, lang, H)
            regions.append(ReadRegion(label, _union([rect_t] + [w[:4] for w in ws]), content, plain, lines, wl))
            continue
        if tag.get("code"):
            code, lines = _code_lines(rec, ws, H)
            regions.append(ReadRegion(label, _union([w[:4] for w in ws]), f"```\n{code}\n```", code, lines, wl))
            continue
        groups = _group_lines(ws, int(tag.get("rotation", 0)))
        lines3 = _line_texts(groups, lang)
        lines = [(t, b) for t, b, _x in lines3]  # line grounding: the lines as printed
        box = _union([w[:4] for w in ws])
        # The text: words broken by hyphenation joined again (lines keep their place).
        joined = _dehyphenate(groups, rec.get("source"))
        texts3 = [(_join([w[4] for w in g], lang), b, x) for g, (_t, b, x) in zip(joined, lines3)]
        if label == "list":
            md, plain_items = _list_items(texts3, bool(tag.get("numbered")), font_size, lang, tag.get("sub_marker"),
                                          joined if tag.get("emphasis") else None)
            regions.append(ReadRegion(label, box, "\n".join(md), "\n".join(plain_items), lines, wl))
            continue
        text = _join([t for t, _b, _x in texts3], lang)
        if label == "title":
            content = f"# {text}"
        elif label == "sub_title":
            content = f"## {text}"
        elif label in ("table_caption", "image_caption"):
            content = f"<center>{_emphasis_markdown(joined, lang) if tag.get('emphasis') else text}</center>"
        elif tag.get("emphasis"):
            content = _emphasis_markdown(joined, lang)
        else:
            content = text
        regions.append(ReadRegion(label, box, content, text, lines, wl))
    return regions, orphans

