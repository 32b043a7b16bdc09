"""The page plan: page geometry, fonts and the flowables of one page, drawn from the rng.

Nothing here measures the result: the plan says what to draw; ``layout`` draws it and
``readback`` reads what was drawn.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from reportlab.lib import colors, pagesizes
from reportlab.lib.enums import TA_CENTER, TA_JUSTIFY, TA_LEFT
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import ListFlowable, ListItem, Paragraph, Spacer, TableStyle

from synth import text_sources as ts
from synth.ocr1 import code_block, equations, figures, fonts, hyphenation, inline_math, references
from synth.ocr1.config import Config, allowed_families
from synth.ocr1.flowables import TDrawing, TEquation, TImage, TList, TPara, TRotated, TSupply, TTable


@dataclass
class Decoration:
    """A single-line string drawn by the page callback (header, footer, page number)."""

    text: str
    x: float
    y: float  # baseline, PDF points, y up
    font: str
    size: float
    align: str  # "left", "center", "right": how x anchors the string
    tag: dict[str, Any]
    # Counter-clockwise degrees about (x, y): 90 reads bottom to top, -90 top to bottom.
    rotation: int = 0
    gray: float = 0.0  # fill grey level, 0 black .. 1 white


@dataclass
class PagePlan:
    """Everything ``layout.build_pdf`` needs to draw one page."""

    lang: str
    page_w: float
    page_h: float
    page_name: str
    landscape: bool
    margins: tuple[float, float, float, float]  # left, right, top, bottom
    columns: int
    gutter: float
    family: str
    font_size: float
    title_flowables: list = field(default_factory=list)
    title_height: float = 0.0
    body: list = field(default_factory=list)
    decorations: list[Decoration] = field(default_factory=list)
    footnotes: list = field(default_factory=list)  # TPara already wrapped at full width
    footnote_height: float = 0.0
    inner_page: bool = False  # a page after the first: no title block, body opens mid-paragraph
    watermark: Any = None  # a synth.ocr1.watermark.Watermark drawn behind everything, or None
    hyphenated: bool = False  # body text breaks words at line ends (pyphen's en_US patterns)


def _choice(rng: np.random.Generator, weights: dict[str, float]) -> str:
    keys = list(weights)
    p = np.asarray([weights[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


class _Styles:
    """The paragraph styles of one page."""

    def __init__(self, rng: np.random.Generator, faces: dict[str, str], fs: float, lang: str,
                 hyphenate: bool = False):
        lead = fs * _u(rng, 1.15, 1.4)
        wrap = "CJK" if lang == "zh" else None
        align = TA_JUSTIFY if rng.random() < 0.6 else TA_LEFT
        indent = fs * 1.5 if rng.random() < 0.4 else 0.0
        self.fs = fs
        self.body = ParagraphStyle("body", fontName=faces["regular"], fontSize=fs, leading=lead,
                                   alignment=align, firstLineIndent=indent, spaceAfter=fs * 0.6,
                                   wordWrap=wrap, hyphenationLang="en_US" if hyphenate else "")
        self.item = ParagraphStyle("item", parent=self.body, firstLineIndent=0, spaceAfter=fs * 0.15)
        self.heading = ParagraphStyle("heading", fontName=faces["bold"], fontSize=fs * 1.2,
                                      leading=fs * 1.5, spaceBefore=fs * 0.6, spaceAfter=fs * 0.4,
                                      keepWithNext=1, wordWrap=wrap)
        self.title = ParagraphStyle("title", fontName=faces["bold"], fontSize=fs * _u(rng, 1.6, 2.2),
                                    leading=fs * 2.6, alignment=TA_CENTER if rng.random() < 0.6 else TA_LEFT,
                                    spaceAfter=fs * 0.6, wordWrap=wrap)
        self.author = ParagraphStyle("author", parent=self.body, fontName=faces["italic"],
                                     alignment=self.title.alignment, firstLineIndent=0, spaceAfter=fs)
        self.caption = ParagraphStyle("caption", parent=self.body, fontSize=fs * 0.9, leading=fs * 1.15,
                                      alignment=TA_CENTER, firstLineIndent=0, spaceBefore=fs * 0.3,
                                      spaceAfter=fs * 0.8)
        self.footnote = ParagraphStyle("footnote", parent=self.body, fontSize=fs * 0.8, leading=fs,
                                       firstLineIndent=0, spaceAfter=fs * 0.2, alignment=TA_LEFT)


# Dark accent colours for titles and headings (reports, slides, theses): navy, dark red,
# dark green, teal, purple, dark orange; all dark enough to read as ink (grey < 130).
_ACCENTS = ("#1f3b73", "#8b1a1a", "#1b5e20", "#00555a", "#4a148c", "#a04a00")


def _tag(label: str, group: int = 1, **extra: Any) -> dict[str, Any]:
    return {"label": label, "group": group, **extra}


def _para(text: str, style: ParagraphStyle, tag: dict[str, Any]) -> TPara:
    p = TPara(escape(text), style)
    p.tag = tag
    return p


def _emphasised(rng: np.random.Generator, text: str, faces: dict[str, str]) -> str:
    """Paragraph markup of ``text`` with one or two runs of 1-3 whole words in the bold or
    italic face (whole space-separated words, so every drawn word has a single font)."""
    words = text.split(" ")
    styles = [""] * len(words)
    for _ in range(int(rng.integers(1, 3))):
        n = int(rng.integers(1, 4))
        if len(words) <= n + 1:
            break
        start = int(rng.integers(0, len(words) - n))
        if any(styles[max(0, start - 1):start + n + 1]):  # runs neither overlap nor touch
            continue
        style = "bold" if rng.random() < 0.6 else "italic"
        styles[start:start + n] = [style] * n
    out, i = [], 0
    while i < len(words):
        j = i
        while j < len(words) and styles[j] == styles[i]:
            j += 1
        run = escape(" ".join(words[i:j]))
        out.append(f'<font name="{faces[styles[i]]}">{run}</font>' if styles[i] else run)
        i = j
    return " ".join(out)


def _ideograph(ch: str) -> bool:
    """A CJK unified ideograph (what reportlab's line breaker treats as breakable CJK)."""
    return "\u4e00" <= ch <= "\u9fff"


def _sentences(rng: np.random.Generator, lang: str, lo: int, hi: int, avoid: str = "") -> str:
    return ts.paragraph(rng, lang, int(rng.integers(lo, hi + 1)), avoid)


def _short_sentence(rng: np.random.Generator, lang: str, avoid: str = "") -> str:
    if lang == "zh":
        return ts.chinese_sentence(rng, int(rng.integers(3, 9)))
    s = ts.english_sentence(rng, avoid)
    return s if len(s) < 140 else s[:s.rfind(" ", 0, 120)].rstrip(",;:") + "."


class _Body:
    """Generates body blocks for one page and estimates the height they take."""

    def __init__(self, rng, cfg: Config, lang: str, faces: dict[str, str], st: _Styles, col_w: float,
                 frame_h: float, family: str = ""):
        self.rng, self.cfg, self.lang, self.faces, self.st = rng, cfg, lang, faces, st
        self.family = family
        self.col_w, self.frame_h = col_w, frame_h
        self.avoid = fonts.UNDRAWABLE.get(family, "")  # characters the font draws as other glyphs
        self.math_fontset = fonts.MATH_FONTSET.get(family, "dejavusans")  # mathtext's match for the face
        self.section = int(rng.integers(1, 6))
        self.n_table = self.n_figure = 0
        self.n_equation: int | None = None  # drawn at the first numbered equation
        self.eq_by_section = False  # numbers like (3.2) rather than (7)
        # Average advance of a character, in em: Latin prose ~0.5, CJK ideographs 1.0.
        self.char_em = 1.0 if lang == "zh" else 0.5

    def _text_height(self, text: str, style: ParagraphStyle, width: float) -> float:
        lines = np.ceil(len(text) * self.char_em * style.fontSize / max(width, 1.0)) or 1
        return float(lines) * style.leading + style.spaceAfter + style.spaceBefore

    def paragraph(self) -> tuple[list, float]:
        text = _sentences(self.rng, self.lang, 2, 6, self.avoid)
        height = self._text_height(text, self.st.body, self.col_w)
        # CJK faces have no bold or italic: only English paragraphs get inline emphasis.
        # Switched off, the option draws nothing: such recipes keep their earlier bytes.
        if self.lang == "en" and self.cfg.emphasis_prob > 0 and self.rng.random() < self.cfg.emphasis_prob:
            p = TPara(_emphasised(self.rng, text, self.faces), self.st.body)
            p.tag = _tag("text", emphasis=True)
            return [p], height
        if self.cfg.inline_math_prob > 0 and self.rng.random() < self.cfg.inline_math_prob:
            # Left-aligned: reportlab's justification mis-measures lines holding images and
            # pushes their last word past the column edge.
            style = ParagraphStyle("inline_math", parent=self.st.body, alignment=TA_LEFT)
            found = self._with_inline_math(text, style)
            if found is not None:
                p = found[2] or TPara(found[0], style)
                # The digests name the drawn images at read-back (see synth.ocr1.inline_math).
                p.tag = _tag("text", inline_math=found[1],
                             inline_digests=[inline_math.digest(f, self.math_fontset) for f in found[1]],
                             inline_sizes=[inline_math.pixel_size(f, self.math_fontset) for f in found[1]])
                return [p], height
        return [_para(text, self.st.body, _tag("text"))], height

    def _with_inline_math(self, text: str, style: ParagraphStyle) -> tuple[str, list[str], TPara | None] | None:
        """Paragraph markup of ``text`` with 1-3 short formulas set in it, the formulas'
        LaTeX in order, and (Chinese) the paragraph already wrapped at the column width;
        None when no placement lays out (Chinese, see below).

        English formulas go between words. Chinese ones go between two ideographs: reportlab's
        CJK line breaker (``cjkFragSplit``) calls ``ord()`` on an image fragment, which has no
        text, when it scans back from a Latin character that ends a line, or when the image
        itself overflows the line. Ideographs on both sides keep the scan off the image, and
        each placement is wrapped at the column width here, as the frame will wrap it (the
        same width, so the same lines); up to three placements are tried. The paragraph that
        wrapped is the one drawn, so the frame's wrap is answered from memory.
        """
        n = int(self.rng.integers(1, 4))
        if self.lang != "zh":
            words = text.split(" ")
            at = set(self.rng.integers(1, max(2, len(words)), size=n).tolist())
            parts, formulas = [], []
            for i, word in enumerate(words):
                if i in at:
                    formulas.append(inline_math.pick(self.rng, self.cfg.inline_math_pool))
                    parts.append(inline_math.markup(formulas[-1], self.math_fontset, self.st.fs))
                parts.append(escape(word))
            return " ".join(parts), formulas, None
        slots = [i for i in range(1, len(text)) if _ideograph(text[i - 1]) and _ideograph(text[i])]
        for _attempt in range(3):
            if not slots:
                return None
            at = sorted(set(slots[k] for k in self.rng.integers(0, len(slots), size=n).tolist()))
            formulas = [inline_math.pick(self.rng, self.cfg.inline_math_pool) for _ in at]
            cuts = [0, *at, len(text)]
            parts = [escape(text[a:b]) for a, b in zip(cuts, cuts[1:])]
            markup = parts[0] + "".join(inline_math.markup(f, self.math_fontset, self.st.fs) + part
                                        for f, part in zip(formulas, parts[1:]))
            para = TPara(markup, style)
            try:
                para.wrap(self.col_w, 1e6)
            except TypeError:
                continue
            return markup, formulas, para
        return None

    def carried_over(self) -> tuple[list, float]:
        """The tail of a paragraph begun on the previous page: it opens mid-sentence and,
        being a continuation, without a first-line indent."""
        text = _sentences(self.rng, self.lang, 1, 4, self.avoid)
        if self.lang == "zh":
            cut = int(self.rng.integers(1, max(2, len(text) // 2)))
            tail = text[cut:].lstrip("，。、；：！？")
        else:
            words = text.split(" ")
            tail = " ".join(words[int(self.rng.integers(1, max(2, len(words) // 2))):])
        style = ParagraphStyle("carried", parent=self.st.body, firstLineIndent=0)
        return [_para(tail, style, _tag("text", carried_over=True))], self._text_height(tail, style, self.col_w)

    def wide_float(self, width: float) -> list:
        """A figure or table spanning every column (LaTeX's ``figure*``), for the top of a
        multi-column page: at most a third of the body's height, tables of 4-8 columns."""
        if self.rng.random() < 0.6:
            return self.figure(max_frac=0.33, width=width)[0]
        return self.table(min_cols=4, max_cols=8, stretch=True, width=width)[0]

    def sideways_table(self) -> tuple[list, float]:
        """A table of 5-9 columns set sideways with its caption (turned 90 degrees, read
        upward), as tables wider than the column are: its width runs down the column."""
        flows, _h = self.table(min_cols=5, max_cols=9, width=0.9 * self.frame_h)
        return self._sideways(flows[:2]) if flows else ([], 0.0)

    def sideways_figure(self) -> tuple[list, float]:
        """A landscape figure set sideways with its caption (turned 90 degrees, read upward),
        as figures wider than the column are: its width runs down the column."""
        flows, _h = self.figure(max_frac=0.9 * self.col_w / self.frame_h, width=0.8 * self.frame_h)
        return self._sideways(flows[1:3])

    def _sideways(self, stack: list) -> tuple[list, float]:
        """``stack`` (a float and its caption, top to bottom) turned 90 degrees in a
        ``TRotated`` with space around it; nothing when it does not fit the column."""
        for f in stack:
            f.tag = {**f.tag, "rotation": 90}
        block = TRotated(stack)
        w, h = block.wrap(self.col_w, self.frame_h)
        if w > self.col_w or h > 0.9 * self.frame_h:
            return [], 0.0
        gap = self.st.fs * 0.8
        return [Spacer(1, gap), block, Spacer(1, gap)], h + 2 * gap

    def _caption(self, label: str, kind: str) -> TPara:
        """A caption: its label ("Table 2:", "图3") then a sentence. In English the label is
        set in bold with probability ``emphasis_prob``, as papers often do."""
        sentence = _short_sentence(self.rng, self.lang, self.avoid)
        if self.lang == "en" and self.cfg.emphasis_prob > 0 and self.rng.random() < self.cfg.emphasis_prob:
            p = TPara(f'<font name="{self.faces["bold"]}">{escape(label)}</font> {escape(sentence)}', self.st.caption)
            p.tag = _tag(kind, emphasis=True)
            return p
        return _para(f"{label} {sentence}", self.st.caption, _tag(kind))

    def references(self) -> tuple[list, float]:
        """A "References" heading and 3-8 numbered entries with a hanging indent, each a
        ``text`` region (``[12] A. Author. Title. Venue, 2019.``)."""
        fs = self.st.fs
        style = ParagraphStyle("reference", parent=self.st.body, fontSize=fs * 0.9, leading=fs * 1.15,
                               firstLineIndent=-fs * 1.8, leftIndent=fs * 1.8, alignment=TA_LEFT,
                               spaceAfter=fs * 0.3)
        title = "参考文献" if self.lang == "zh" else ("References", "Bibliography")[int(self.rng.random() < 0.2)]
        out = [_para(title, self.st.heading, _tag("sub_title"))]
        height = self.st.heading.leading * 2
        start = int(self.rng.integers(1, 40))
        for k in range(start, start + int(self.rng.integers(3, 9))):
            text = references.entry(self.rng, self.lang, k)
            out.append(_para(text, style, _tag("text", reference=True)))
            height += self._text_height(text, style, self.col_w - fs * 1.8)
        return out, height

    def heading(self) -> tuple[list, float]:
        self.section += 1
        words = ts.title(self.rng, self.lang, int(self.rng.integers(1, 5)))
        r = self.rng.random()
        if r < 0.4:
            text = f"{self.section} {words}"
        elif r < 0.6:
            text = f"{self.section}.{int(self.rng.integers(1, 5))} {words}"
        else:
            text = words
        h = _para(text, self.st.heading, _tag("sub_title"))
        out, hh = self.paragraph()
        return [h] + out, hh + self.st.heading.leading * 2

    def list(self) -> tuple[list, float]:
        n = int(self.rng.integers(2, 6))
        numbered = self.rng.random() < 0.45
        items = [_short_sentence(self.rng, self.lang, self.avoid) for _ in range(n)]
        markup = [escape(t) for t in items]
        # A definition-style list: each item opens with a bold term ("**Scope:** ...").
        # Switched off, the option draws nothing: such recipes keep their earlier bytes.
        emphasis = self.lang == "en" and self.cfg.emphasis_prob > 0 and self.rng.random() < self.cfg.emphasis_prob
        if emphasis:
            terms = [ts.title(self.rng, "en", int(self.rng.integers(1, 4))) + ":" for _ in items]
            items = [f"{term} {t}" for term, t in zip(terms, items)]
            markup = [f'<font name="{self.faces["bold"]}">{escape(term)}</font> {m}' for term, m in zip(terms, markup)]
        indent = self.st.fs * 1.8
        body_w = self.col_w - indent
        flows = [ListItem(Paragraph(m, self.st.item)) for m in markup]
        est = sum(self._text_height(t, self.st.item, body_w) for t in items) + self.st.fs * 0.6
        sub_marker = None
        # Switched off, the option draws nothing: such recipes keep their earlier bytes.
        if self.cfg.nested_list_prob > 0 and self.rng.random() < self.cfg.nested_list_prob:
            sub_marker = "\u2013"  # an en dash: in Helvetica's WinAnsi set, unlike U+25E6
            host = int(self.rng.integers(n))
            subs = [_short_sentence(self.rng, self.lang, self.avoid) for _ in range(int(self.rng.integers(2, 4)))]
            nested = ListFlowable([ListItem(Paragraph(escape(t), self.st.item)) for t in subs], bulletType="bullet",
                                  start=sub_marker, bulletFontName="Helvetica", bulletFontSize=self.st.fs,
                                  leftIndent=indent, bulletDedent=indent * 0.8)
            # Inside the host item's ListItem, so the sub-list takes no number or bullet of its own.
            flows[host] = ListItem([Paragraph(markup[host], self.st.item), nested])
            est += sum(self._text_height(t, self.st.item, body_w - indent) for t in subs)
        flow = TList(
            flows,
            bulletType="1" if numbered else "bullet",
            start=None if numbered else "\u2022",
            bulletFormat="%s." if numbered else None,
            # Bullets in a Latin font: CJK fonts lack U+2022.
            bulletFontName="Helvetica", bulletFontSize=self.st.fs,
            leftIndent=indent, bulletDedent=indent * 0.8, spaceAfter=self.st.fs * 0.6,
        )
        flow.tag = _tag("list", numbered=numbered, sub_marker=sub_marker, emphasis=emphasis)
        if est > 0.8 * self.frame_h:
            return [], 0.0
        return [flow], est

    def _phrase_cell(self, header: bool) -> str:
        """A cell of 2-4 words (nouns in Chinese), set on two lines half of the time."""
        n = int(self.rng.integers(2, 4 if header else 5))
        words = ts.words(self.rng, self.lang, n)
        if header and self.lang == "en":
            words[0] = words[0].capitalize()
        sep = "" if self.lang == "zh" else " "
        if self.rng.random() < 0.5:  # an explicit break: reportlab draws "\n" as a new line
            k = n // 2
            return sep.join(words[:k]) + "\n" + sep.join(words[k:])
        return sep.join(words)

    def _cell(self, col: int, header: bool, phrase_ok: bool = True) -> str:
        # Headers and row labels may be phrases; switched off, the option draws nothing.
        p = self.cfg.table_phrase_prob
        if phrase_ok and (header or col == 0) and p > 0 and self.rng.random() < p:
            return self._phrase_cell(header)
        if header:
            return ts.title(self.rng, self.lang, 1) if self.lang == "zh" else ts.words(self.rng, "en", 1)[0].capitalize()
        if col == 0:
            return ts.words(self.rng, self.lang, 1)[0]
        r = self.rng.random()
        if r < 0.5:
            return f"{self.rng.uniform(0, 100):.{int(self.rng.integers(0, 3))}f}"
        if r < 0.7:
            return f"{int(self.rng.integers(0, 5000))}"
        if r < 0.8:
            return f"{self.rng.uniform(0, 100):.1f}%"
        return ts.words(self.rng, self.lang, 1)[0]

    def table(self, min_cols: int = 2, max_cols: int = 5, stretch: bool = False,
              width: float | None = None) -> tuple[list, float]:
        """A captioned table of ``min_cols``-``max_cols`` columns at most ``width`` wide (the
        column's by default); ``stretch`` widens its columns to fill 70-100% of that width."""
        st, rng = self.st, self.rng
        avail = width or self.col_w
        fs = st.fs * _u(rng, 0.8, 0.95)
        regular, bold = self.faces["regular"], self.faces["bold"]
        pad = fs * 0.35
        ncols = int(rng.integers(min_cols, max_cols + 1))
        nrows = int(rng.integers(3, 9))
        for _ in range(3):  # shrink until it fits the column
            data = [[self._cell(c, r == 0) for c in range(ncols)] for r in range(nrows)]
            col_w = [max(stringWidth(line, bold if r == 0 else regular, fs)
                             for r in range(nrows) for line in data[r][c].split("\n")) + 2 * pad + fs
                     for c in range(ncols)]
            if sum(col_w) <= avail:
                break
            ncols = max(2, ncols - 1)
        else:
            return [], 0.0
        if sum(col_w) > avail:
            return [], 0.0
        if stretch:
            grow = _u(rng, 0.7, 1.0) * avail / sum(col_w)
            col_w = [w * max(grow, 1.0) for w in col_w]
        spans: list[tuple[int, int, int, int]] = []
        style = [("FONT", (0, 0), (-1, -1), regular, fs, fs * 1.2), ("FONT", (0, 0), (-1, 0), bold, fs, fs * 1.2),
                 ("TOPPADDING", (0, 0), (-1, -1), pad), ("BOTTOMPADDING", (0, 0), (-1, -1), pad),
                 ("LEFTPADDING", (0, 0), (-1, -1), pad), ("RIGHTPADDING", (0, 0), (-1, -1), pad),
                 ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                 ("ALIGN", (1, 0), (-1, -1), "CENTER" if rng.random() < 0.5 else "RIGHT")]
        hdr = 0  # index of the last header row
        r = rng.random()
        if r < 0.25 and ncols >= 3:  # header group spanning two columns, on an extra top row
            top = [""] * ncols
            top[1] = self._cell(1, True, phrase_ok=False)  # its width was not measured
            data.insert(0, top)
            nrows += 1
            hdr = 1
            spans.append((0, 1, 0, 2))
            spans.append((0, 0, 1, 0))  # the stub header spans both header rows
            data[0][0], data[1][0] = data[1][0], ""  # stub header moves up; its width is known
            style.append(("FONT", (0, 0), (-1, 1), bold, fs, fs * 1.2))
        elif r < 0.45 and nrows >= 4:  # a row label spanning two body rows
            spans.append((1, 0, 2, 0))
            data[2][0] = ""
        for r0, c0, r1, c1 in spans:
            style.append(("SPAN", (c0, r0), (c1, r1)))
        if rng.random() < 0.5:
            style.append(("GRID", (0, 0), (-1, -1), 0.5, colors.black))
        else:  # booktabs look
            style += [("LINEABOVE", (0, 0), (-1, 0), 1.0, colors.black),
                      ("LINEBELOW", (0, hdr), (-1, hdr), 0.5, colors.black),
                      ("LINEBELOW", (0, -1), (-1, -1), 1.0, colors.black)]
        if rng.random() < 0.3:
            style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dddddd")))
        t = TTable(data, colWidths=col_w, style=TableStyle(style), hAlign="CENTER")
        t.tag = _tag("table", spans=spans)
        self.n_table += 1
        label = f"表{self.n_table}" if self.lang == "zh" else f"Table {self.n_table}:"
        cap = self._caption(label, "table_caption")
        cap.keepWithNext = 1
        lines = sum(max(cell.count("\n") + 1 for cell in row) for row in data)
        height = lines * fs * 1.2 + nrows * 2 * pad
        return [cap, t, Spacer(1, st.fs * 0.8)], height + st.fs * 3

    def code(self) -> tuple[list, float]:
        """A code listing (``synth.ocr1.code_block``): a ``text`` region whose markdown is a
        fenced block; nothing when no listing fits the column or it is too tall."""
        block = code_block.make(self.rng, self.col_w, self.st.fs)
        if block is None or block.height > 0.6 * self.frame_h:
            return [], 0.0
        gap = self.st.fs * 0.6
        return [Spacer(1, gap), block, Spacer(1, gap)], block.height + 2 * gap

    def equation(self) -> tuple[list, float]:
        """A display equation, centred; numbered ``(7)`` or ``(3.2)`` at the column's right
        edge with probability ``equation_number_prob``."""
        latex = equations.pick(self.rng, self.cfg.equation_pool)
        _img, w, h = equations.render(latex, self.math_fontset)
        scale = self.st.fs / 12.0 * _u(self.rng, 1.0, 1.3)
        number = ""
        # Switched off, the option draws nothing: such recipes keep their earlier bytes.
        if self.cfg.equation_number_prob > 0 and self.rng.random() < self.cfg.equation_number_prob:
            if self.n_equation is None:  # the page's document has numbered some equations already,
                self.n_equation = int(self.rng.integers(0, 20))  # in one style throughout
                self.eq_by_section = bool(self.rng.random() < 0.3)
            self.n_equation += 1
            number = f"({self.section}.{self.n_equation})" if self.eq_by_section else f"({self.n_equation})"
        # Chinese papers set the number in a Latin face too.
        font = "Times-Roman" if self.lang == "zh" else self.faces["regular"]
        # The image stays clear of the number on both sides, so it is centred in the column.
        room = self.col_w - 2 * (stringWidth(number, font, self.st.fs) + self.st.fs) if number else self.col_w
        scale = min(scale, 0.9 * room / w)
        im = TEquation(equations.reader(latex, self.math_fontset), w * scale, h * scale, _tag("equation", latex=latex),
                       number=number, font=font, size=self.st.fs)
        gap = self.st.fs * 0.6
        return [Spacer(1, gap), im, Spacer(1, gap)], max(h * scale, 1.2 * self.st.fs) + 2 * gap

    def figure(self, max_frac: float = 0.45, width: float | None = None) -> tuple[list, float]:
        """A captioned figure at most ``width`` wide (the column's by default) and
        ``max_frac`` of the frame high."""
        rng = self.rng
        w = (width or self.col_w) * _u(rng, 0.55, 0.95)
        h = min(w * _u(rng, 0.45, 0.75), max_frac * self.frame_h)
        tag = _tag("image")
        got = figures.chart(rng, self.cfg.chart_pool, self.lang) if rng.random() < self.cfg.chart_prob else None
        if got is not None:
            reader, aspect = got
            h = min(w * aspect, max_frac * self.frame_h)
            fig = TImage(reader, width=h / aspect, height=h, hAlign="CENTER")
            fig.tag = tag
        else:
            fig = TDrawing(figures.drawing(rng, w, h), tag)
        self.n_figure += 1
        label = f"图{self.n_figure}" if self.lang == "zh" else f"Figure {self.n_figure}:"
        cap = self._caption(label, "image_caption")
        fig.keepWithNext = 1
        return [Spacer(1, self.st.fs * 0.5), fig, cap], h + self.st.fs * 4


def _page_geometry(rng, cfg: Config) -> tuple[str, bool, float, float]:
    name = _choice(rng, cfg.page_sizes)
    w, h = getattr(pagesizes, name)
    landscape = rng.random() < cfg.landscape_prob
    if landscape:
        w, h = h, w
    return name, landscape, float(w), float(h)


def _columns(rng, cfg: Config, usable_w: float, fs: float) -> int:
    cols = int(_choice(rng, cfg.columns))
    # A column narrower than ~22 em sets badly (and tables stop fitting): cap the count.
    while cols > 1 and (usable_w - (cols - 1) * fs * 1.5) / cols < 22 * fs:
        cols -= 1
    return cols


def make_plan(cfg: Config, rng: np.random.Generator) -> PagePlan:
    """Draw a page plan (geometry, fonts, decorations, title block and body flowables)."""
    lang = _choice(rng, cfg.langs)
    page_name, landscape, pw, ph = _page_geometry(rng, cfg)
    short = min(pw, ph)
    ml, mr = (_u(rng, cfg.margin_min, cfg.margin_max) * short for _ in range(2))
    mt, mb = (_u(rng, cfg.margin_min, cfg.margin_max) * short for _ in range(2))
    allowed = allowed_families(cfg, lang)
    family = allowed[int(rng.integers(len(allowed)))]
    faces = fonts.face_set(family)
    avoid = fonts.UNDRAWABLE.get(family, "")
    fs = _u(rng, cfg.font_size_min, cfg.font_size_max)
    if page_name == "A5":
        fs *= 0.9
    usable_w = pw - ml - mr
    cols = _columns(rng, cfg, usable_w, fs)
    gutter = fs * _u(rng, 1.5, 3.0)
    col_w = (usable_w - (cols - 1) * gutter) / cols
    # Switched off (or on Chinese pages), the option draws nothing.
    hyphenate = lang == "en" and cfg.hyphenate_prob > 0 and bool(rng.random() < cfg.hyphenate_prob)
    if hyphenate:
        hyphenation.ready()  # pyphen's patterns from the node cache, not parsed again in this process
    # Styles derived from the body's (lists, captions, footnotes...) copy its hyphenation.
    st = _Styles(rng, faces, fs, lang, hyphenate)
    # Switched off, the option draws nothing: such recipes keep their earlier bytes.
    if cfg.accent_prob > 0 and rng.random() < cfg.accent_prob:
        accent = colors.HexColor(_ACCENTS[int(rng.integers(len(_ACCENTS)))])
        st.title.textColor = st.heading.textColor = accent
    plan = PagePlan(lang=lang, page_w=pw, page_h=ph, page_name=page_name, landscape=landscape,
                    margins=(ml, mr, mt, mb), columns=cols, gutter=gutter, family=family, font_size=fs,
                    hyphenated=hyphenate)

    _decorations(rng, cfg, plan, faces, fs)

    if rng.random() < cfg.footnote_prob:
        for i in range(int(rng.integers(1, 3))):
            p = _para(f"{i + 1} {_short_sentence(rng, lang, avoid)}", st.footnote, _tag("footnote", group=2))
            p.wrap(usable_w, ph)
            plan.footnotes.append(p)
        plan.footnote_height = sum(p._ocr1_wh[1] + st.footnote.spaceAfter for p in plan.footnotes) + fs

    # Switched off, the option draws nothing: such recipes keep their earlier bytes.
    plan.inner_page = cfg.inner_page_prob > 0 and bool(rng.random() < cfg.inner_page_prob)
    if not plan.inner_page and rng.random() < cfg.title_prob:
        plan.title_flowables.append(_para(ts.title(rng, lang), st.title, _tag("title")))
        if rng.random() < 0.6:
            names = " ".join(f"{ts.words(rng, 'en', 1)[0].capitalize()} {ts.words(rng, 'en', 1)[0].capitalize()}"
                             for _ in range(int(rng.integers(1, 4))))
            author = ts.title(rng, "zh", int(rng.integers(2, 4))) if lang == "zh" else names.replace("  ", " ")
            plan.title_flowables.append(_para(author, st.author, _tag("text")))
        if cols > 1 and rng.random() < 0.5:
            plan.title_flowables.append(_para(_sentences(rng, lang, 3, 5, avoid), st.body, _tag("text")))
        plan.title_height = sum(f.wrap(usable_w, ph)[1] + f.style.spaceAfter + f.style.spaceBefore
                                for f in plan.title_flowables) + 2.0

    body = _Body(rng, cfg, lang, faces, st, col_w, ph - mt - mb - plan.title_height - plan.footnote_height, family)
    # Switched off (or on one-column pages), the option draws nothing.
    wide = cols > 1 and cfg.wide_float_prob > 0 and rng.random() < cfg.wide_float_prob
    flows = body.wide_float(usable_w) if wide else []
    if flows:
        plan.title_flowables += flows
        # The title frame holds the float: measure what will be drawn, with 2 pt of slack.
        plan.title_height += sum(f.wrap(usable_w, ph)[1] + f.getSpaceBefore() + f.getSpaceAfter()
                                 for f in flows) + (0.0 if plan.title_height else 2.0)
    frame_h = ph - mt - mb - plan.title_height - plan.footnote_height
    body.frame_h = frame_h
    capacity = cols * frame_h  # estimated, as the blocks' heights are
    total = 0.0
    kinds = dict(cfg.blocks)
    tail = {"paragraph": 1.0}
    if plan.inner_page:
        flows, h = body.carried_over()
        plan.body += flows
        total += h
    # Blocks of every kind until 70 % of the capacity; after that only paragraphs, which
    # split at a column's foot (a table or figure there would mostly wait for a column the
    # page does not have). A page that fills (fill >= 1) ends in a supply of paragraphs
    # that the layout draws from while it has room: estimates of heights are rough, and a
    # block that waits for the next column leaves its place to the text after it.
    full = cfg.fill >= 1
    while total < (0.7 if full else cfg.fill) * capacity:
        kind = _choice(rng, kinds if total < 0.7 * capacity else tail)
        flows, h = getattr(body, kind)()
        plan.body += flows
        total += h if flows else st.body.leading  # failed blocks still advance, so this ends
    if full:
        supplier = copy.copy(body)  # its own generator: what the layout draws is not planned here
        supplier.rng = np.random.default_rng(int(rng.integers(1 << 62)))
        plan.body.append(TSupply(lambda: supplier.paragraph()[0], plan.body))
    # Switched off, the option draws nothing: such recipes keep their earlier bytes.
    if cfg.watermark_prob > 0 and rng.random() < cfg.watermark_prob:
        from synth.ocr1 import watermark

        plan.watermark = watermark.make(rng, lang, (ml, mb, pw - mr, ph - mt))
    return plan


def _decorations(rng, cfg: Config, plan: PagePlan, faces: dict[str, str], fs: float) -> None:
    ml, mr, mt, mb = plan.margins
    pw, ph, lang = plan.page_w, plan.page_h, plan.lang
    size_top = min(fs * 0.85, mt * 0.3)
    size_bot = min(fs * 0.85, mb * 0.3)
    y_top = ph - mt * _u(rng, 0.45, 0.6)
    y_bot = mb * _u(rng, 0.35, 0.5)
    x_of = {"left": ml, "center": pw / 2, "right": pw - mr}
    used: dict[str, set[str]] = {"top": set(), "bottom": set()}

    def add(label: str, text: str, band: str, align: str, font: str) -> None:
        used[band].add(align)
        y, size = (y_top, size_top) if band == "top" else (y_bot, size_bot)
        plan.decorations.append(Decoration(text, x_of[align], y, font, size, align,
                                           _tag(label, group=0 if band == "top" else 3)))

    if rng.random() < cfg.header_prob:
        add("header", ts.title(rng, lang, int(rng.integers(2, 6))), "top",
            ("left", "center", "right")[int(rng.integers(3))], faces["italic"] if rng.random() < 0.5 else faces["regular"])
    if rng.random() < cfg.footer_prob:
        text = ts.title(rng, lang, int(rng.integers(2, 5)))
        if rng.random() < 0.5:
            text += f" {int(rng.integers(1990, 2030))}"
        add("footer", text, "bottom", "left" if rng.random() < 0.5 else "center", faces["regular"])
    if rng.random() < cfg.page_number_prob:
        n = int(rng.integers(1, 400))
        fmt = ("{n}", "- {n} -", "Page {n}", "第{n}页" if lang == "zh" else "{n}")[int(rng.integers(4))]
        band = "bottom" if rng.random() < 0.75 else "top"
        free = [a for a in ("center", "right", "left") if a not in used[band]]
        add("page_number", fmt.format(n=n), band, free[0], faces["regular"])
    # Switched off, the option draws nothing: such recipes keep their earlier bytes.
    if cfg.margin_note_prob > 0 and rng.random() < cfg.margin_note_prob:
        note = _margin_note(rng, plan, faces, fs)
        if note is not None:
            plan.decorations.append(note)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ARXIV_CATEGORIES = ("cs.CV", "cs.CL", "cs.LG", "cs.AI", "stat.ML", "math.OC", "physics.optics", "q-bio.QM",
                     "eess.IV", "hep-th")


def _margin_note_text(rng: np.random.Generator, lang: str) -> str:
    """An identifier stamped in a page's side margin: arXiv-style, a DOI, a preprint notice."""
    year = int(rng.integers(2008, 2027))  # arXiv's YYMM.NNNN identifiers began in 2007
    day, month = int(rng.integers(1, 29)), int(rng.integers(1, 13))
    kind = int(rng.integers(4))
    if kind == 0:
        cat = _ARXIV_CATEGORIES[int(rng.integers(len(_ARXIV_CATEGORIES)))]
        digits = 5 if year >= 2015 else 4  # arXiv numbers grew a digit in 2015
        number = f"{int(rng.integers(0, 10 ** digits)):0{digits}d}"
        return (f"arXiv:{year % 100:02d}{month:02d}.{number}v{int(rng.integers(1, 5))}"
                f" [{cat}] {day} {_MONTHS[month - 1]} {year}")
    if kind == 1:
        journal = ts.words(rng, "en", 1)[0][:6].lower()
        return f"DOI: 10.{int(rng.integers(1000, 100000))}/{journal}.{year}.{int(rng.integers(1, 10000)):04d}"
    if lang == "zh":
        return ("网络首发时间：" if kind == 2 else "收稿日期：") + f"{year}-{month:02d}-{day:02d}"
    if kind == 2:
        return f"Preprint submitted on {day} {_MONTHS[month - 1]} {year}"
    return f"Manuscript received {_MONTHS[month - 1]} {day}, {year}; accepted for publication"


def _margin_note(rng: np.random.Generator, plan: PagePlan, faces: dict[str, str], fs: float) -> Decoration | None:
    """A line of text turned 90 degrees in the left margin (reading upward) or -90 degrees
    in the right margin (reading downward), like an arXiv identifier; None if the margin is
    too narrow for legible text."""
    ml, mr, mt, mb = plan.margins
    left = rng.random() < 0.7
    margin = ml if left else mr
    text = _margin_note_text(rng, plan.lang)
    font = faces["regular"]
    # The glyph cell across the line is 1.4 em: at most 0.4 margin per em keeps it in the
    # middle 56% of the margin, clear of the page edge and of the body.
    size = min(fs * _u(rng, 1.0, 1.8), 0.4 * margin)
    span = plan.page_h - mt - mb
    size = min(size, 0.9 * span * size / stringWidth(text, font, size))
    if size < 6.0:
        return None
    w = stringWidth(text, font, size)
    centre = mb + span / 2 + _u(rng, -0.5, 0.5) * (span - w)
    if left:  # baseline on the right of the glyphs: their tops point to the page edge
        x, y, rotation = ml / 2 + 0.35 * size, centre - w / 2, 90
    else:
        x, y, rotation = plan.page_w - mr / 2 - 0.35 * size, centre + w / 2, -90
    gray = _u(rng, 0.3, 0.6) if rng.random() < 0.6 else 0.0  # arXiv stamps are grey
    return Decoration(text, x, y, font, size, "left", _tag("header", group=4, rotation=rotation), rotation, gray)
