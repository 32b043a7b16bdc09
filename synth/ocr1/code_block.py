"""How a code listing is set on the page: face, size, box and syntax colours.

``make(rng, width, body_size)`` draws a listing from ``code_sources`` that fits a column
``width`` points wide and returns the tracked ``TCode`` flowable. Targets do not depend
on the look: the read-back gives the listing's characters whatever their colour.
"""

from __future__ import annotations

import keyword
import re

import numpy as np
from reportlab.pdfbase.pdfmetrics import stringWidth

from synth.ocr1 import code_sources, fonts
from synth.ocr1.flowables import TCode

BLACK = (0.0, 0.0, 0.0)
# A listing is set at 80-95 % of the body size; a listing whose longest line would need a
# smaller size than this share of it is not drawn.
MIN_SCALE = 0.8
# Dark enough to stay ink on a blurred, low-contrast photo of a small listing: no colour
# is lighter than grey 0.3 (a comment's), most are near 0.2.
PALETTES = (
    {"keyword": (0.0, 0.15, 0.6), "string": (0.0, 0.38, 0.08), "comment": (0.3, 0.3, 0.3),
     "number": (0.05, 0.25, 0.65), "constant": (0.42, 0.0, 0.42)},
    {"keyword": (0.5, 0.05, 0.05), "string": (0.05, 0.33, 0.33), "comment": (0.22, 0.32, 0.22),
     "number": (0.5, 0.25, 0.0), "constant": (0.5, 0.05, 0.05)},
)
_CONSTANTS = {"True", "False", "None", "self", "cls", "null", "true", "false", "NULL"}
_WORD_NUMBER = r"|(?P<word>[A-Za-z_]\w*)|(?P<number>\d+(?:\.\d+)?)"
_STRINGS = r"(?P<string>'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\")"
# Per language: the token pattern, its keywords, and the delimiters of blocks that may
# span lines (Python's triple-quoted strings, C's comments) with the colour they take.
_LANGS = {
    "python": (re.compile(r"(?P<comment>#.*)|" + _STRINGS + _WORD_NUMBER), frozenset(keyword.kwlist),
               (('"""', '"""'), ("'''", "'''")), "string"),
    "json": (re.compile(_STRINGS + _WORD_NUMBER), frozenset(), (), "string"),
    "c": (re.compile(r"(?P<comment>//.*|/\*.*?\*/)|(?P<keyword>#\s*[a-z]+)|" + _STRINGS + _WORD_NUMBER),
          frozenset({"auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
                     "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register", "return",
                     "short", "signed", "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned",
                     "void", "volatile", "while"}),
          (("/*", "*/"),), "comment"),
}
# The language each listing kind is coloured as.
LANG_OF_KIND = {"python": "python", "doctest": "python", "json": "json", "c": "c"}


def colour_runs(line: str, palette: dict[str, tuple[float, float, float]] | None, lang: str = "python",
                start: int = 0) -> list[tuple[int, str, tuple[float, float, float]]]:
    """A line as ``(column, text, rgb)`` segments, blanks at their ends dropped: keywords,
    strings, comments, numbers and constants of ``lang`` ("python", "json" or "c") in the
    palette's colours, the rest black (the whole line black without a palette). ``start``
    is the column of the line's first character."""
    segments: list[tuple[int, str, tuple[float, float, float]]] = []

    def add(at: int, text: str, rgb) -> None:
        stripped = text.lstrip(" ")
        if stripped.rstrip(" "):
            segments.append((start + at + len(text) - len(stripped), stripped.rstrip(" "), rgb))

    if palette is None:
        add(0, line, BLACK)
        return segments
    pattern, keywords, _blocks, _colour = _LANGS[lang]
    pos = 0
    for m in pattern.finditer(line):
        kind = m.lastgroup
        if kind == "word":
            word = m.group()
            kind = "constant" if word in _CONSTANTS else "keyword" if word in keywords else None
        if kind is None:
            continue
        add(pos, line[pos:m.start()], BLACK)
        add(m.start(), m.group(), palette[kind])
        pos = m.end()
    add(pos, line[pos:], BLACK)
    return segments


def colour_listing(lines: tuple[str, ...], palette: dict[str, tuple[float, float, float]] | None,
                   lang: str = "python") -> list[list[tuple[int, str, tuple[float, float, float]]]]:
    """:func:`colour_runs` of every line, with blocks that span lines (Python's
    triple-quoted strings, C's ``/* */`` comments) in their colour throughout."""
    _pattern, _keywords, blocks, block_colour = _LANGS[lang]
    out = []
    close = None  # the delimiter that ends a block an earlier line left open
    for line in lines:
        segments: list[tuple[int, str, tuple[float, float, float]]] = []
        pos = 0
        while palette is not None and blocks:
            search = pos
            if close is None:
                hits = [(line.find(o, pos), o, c) for o, c in blocks if line.find(o, pos) >= 0]
                if not hits:
                    break
                at, opener, close = min(hits)
                segments += colour_runs(line[pos:at], palette, lang, start=pos)
                pos, search = at, at + len(opener)  # past the opening delimiter
            end = line.find(close, search)
            stop = len(line) if end < 0 else end + len(close)
            segments += [(c, t, palette[block_colour]) for c, t, _rgb in colour_runs(line[pos:stop], None, start=pos)]
            pos = stop
            if end < 0:
                break  # still open: the next line goes on inside the block
            close = None
        segments += colour_runs(line[pos:], palette, lang, start=pos)
        out.append(segments)
    return out


def make(rng: np.random.Generator, width: float, body_size: float) -> TCode | None:
    """A code listing for a column ``width`` points wide on a page whose body text is
    ``body_size`` points; None when no listing fits at ``MIN_SCALE`` of the body size or more."""
    face = fonts.mono_face(fonts.MONO_FAMILIES[int(rng.integers(len(fonts.MONO_FAMILIES)))])
    em = stringWidth("0", face, 1.0)  # every character's advance, in em
    look = rng.random()
    fill = float(rng.uniform(0.92, 0.97)) if look < 0.5 else None
    border = fill is not None and bool(rng.random() < 0.4)
    rule = 0.5 <= look < 0.65
    pad = body_size * float(rng.uniform(0.4, 0.8)) if fill is not None or rule else 0.0
    text_w = width - 2 * pad - (0.3 * body_size if rule else 0.0)
    snippet = code_sources.pick(rng, int(text_w / (em * MIN_SCALE * body_size)))
    if snippet is None:
        return None
    size = min(body_size * float(rng.uniform(MIN_SCALE, 0.95)), text_w / (em * snippet.width))
    leading = size * float(rng.uniform(1.15, 1.35))
    palette = PALETTES[int(rng.integers(len(PALETTES)))] if rng.random() < 0.4 else None
    runs = colour_listing(snippet.lines, palette, LANG_OF_KIND[snippet.kind])
    tag = {"label": "text", "group": 1, "code": snippet.kind, "code_lines": list(snippet.lines)}
    return TCode(runs, face, size, leading, em * size, width, pad, tag, fill=fill, border=border, rule=rule)
