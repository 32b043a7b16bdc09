"""Fonts for OCR 1.0 pages, all shipped inside installed packages (nothing downloaded).

A *face set* maps a style ("regular", "bold", "italic") to a reportlab font name. Sets:
- reportlab's Bitstream Vera TTFs, matplotlib's DejaVu Sans/Serif and STIX TTFs
  (named, not embedded, in the pages made for the engine: MuPDF draws them from one font
  object per process, see ``SharedTTFont``; embedded, subset per document, inside
  ``embedded_fonts()``);
- the PDF standard fonts Helvetica/Times/Courier (not embedded: PyMuPDF draws them
  with its built-in Nimbus clones);
- Computer Modern (cmr10, cmb10, cmti10: the BaKoMa TTFs matplotlib ships), LaTeX's
  default face. These fonts keep TeX's OT1 layout, so a few ASCII codes draw other
  glyphs (``<`` draws an inverted exclamation mark, ``_`` a dot accent, ``|`` an em dash;
  see ``UNDRAWABLE``): text set in them avoids those characters;
- Chinese: reportlab's ``STSong-Light`` CID font (not embedded; PyMuPDF draws it with
  its fallback CJK font) and PyMuPDF's built-in Droid Sans Fallback registered with
  reportlab as a TrueType font (shared or embedded like the Latin TTFs).
Registration happens once per process.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.pdfdoc import PDFObject
from reportlab.pdfbase.ttfonts import TTFont

STYLES = ("regular", "bold", "italic")

_REPORTLAB_TTF = {"regular": "Vera.ttf", "bold": "VeraBd.ttf", "italic": "VeraIt.ttf"}
_MPL_TTF = {
    "DejaVuSans": {"regular": "DejaVuSans.ttf", "bold": "DejaVuSans-Bold.ttf", "italic": "DejaVuSans-Oblique.ttf"},
    "DejaVuSerif": {"regular": "DejaVuSerif.ttf", "bold": "DejaVuSerif-Bold.ttf", "italic": "DejaVuSerif-Italic.ttf"},
    "STIX": {"regular": "STIXGeneral.ttf", "bold": "STIXGeneralBol.ttf", "italic": "STIXGeneralItalic.ttf"},
    "ComputerModern": {"regular": "cmr10.ttf", "bold": "cmb10.ttf", "italic": "cmti10.ttf"},
}
# Characters a family draws as a different glyph (TeX's OT1 slots in Computer Modern:
# < > _ { } | " \ ~ ^ ` become ¡ ¿ ˙ – ˝ — ” “ ˜ ˆ ‘); pages in the family avoid them.
# (The apostrophe draws as a right quote, which is the same character to a reader.)
UNDRAWABLE: dict[str, str] = {"ComputerModern": '<>_{}|"\\~^`'}
# The mathtext fontset whose equations look like each family's text (default: DejaVu Sans).
MATH_FONTSET: dict[str, str] = {"ComputerModern": "cm", "STIX": "stix", "Times": "stix",
                                "DejaVuSerif": "dejavuserif"}
# PDF font names whose style PyMuPDF's span flags miss (the BaKoMa fonts set no flags).
NAMED_STYLES: dict[str, str] = {"Cmb10": "bold", "Cmti10": "italic"}
_STANDARD = {
    "Helvetica": {"regular": "Helvetica", "bold": "Helvetica-Bold", "italic": "Helvetica-Oblique"},
    "Times": {"regular": "Times-Roman", "bold": "Times-Bold", "italic": "Times-Italic"},
    "Courier": {"regular": "Courier", "bold": "Courier-Bold", "italic": "Courier-Oblique"},
}

# Monospaced faces of code listings: the standard Courier and matplotlib's DejaVu Sans Mono.
MONO_FAMILIES = ("Courier", "DejaVuSansMono")
LATIN_FAMILIES = ("Vera", "DejaVuSans", "DejaVuSerif", "STIX", "Helvetica", "Times", "Courier", "ComputerModern")
CJK_FAMILIES = ("STSong", "DroidSansFallback")


@functools.lru_cache(maxsize=1)
def mpl_font_dir() -> str:
    """matplotlib's bundled TTF folder (``mpl-data/fonts/ttf``), found without importing
    matplotlib (0.2 s a process; pages need only its font files)."""
    import importlib.util

    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the DejaVu, STIX and Computer Modern faces come from matplotlib: pip install matplotlib")
    return os.path.join(list(spec.submodule_search_locations)[0], "mpl-data", "fonts", "ttf")


# The ascent, in 1/1000 em, that the PDF declares for the Chinese faces. PyMuPDF's
# glyph-cell boxes reach from a font's declared descent to its declared ascent. Droid Sans
# Fallback declares its OS/2 typographic ascender, 0.766 em, and reportlab's STSong-Light
# 0.752 em (MuPDF draws that non-embedded face with the same fallback glyphs), but the
# ideographs reach 0.829 em (the highest of the lexicon's 5,600 characters, measured with
# FreeType): boxes cut one or two rows off the tops of Chinese lines. The descriptors say
# 0.83 em instead. Layout is untouched: reportlab lays pages out with the face's own
# metrics, and the declared value is swapped in only while the PDF's font objects are
# written. tests/test_ocr1_ink.py holds every face to its ink.
CJK_ASCENT = 830


# Whether TrueType faces are embedded in the PDFs built now (see SharedTTFont): a page made
# for the engine names them and MuPDF draws them from fonts it loaded once per process; a
# PDF meant to be opened elsewhere (``render_pdf(..., embed_fonts=True)``) embeds them.
_EMBED = [False]


@contextlib.contextmanager
def embedded_fonts():
    """Within this block, PDFs built embed their TrueType faces (subset per document, as
    reportlab does) instead of naming them: a PDF that leaves the process must, since only
    a process that registered the faces (``face_set``) can draw the named ones."""
    saved = _EMBED[0]
    _EMBED[0] = True
    try:
        yield
    finally:
        _EMBED[0] = saved


def embedding() -> bool:
    """Whether the PDF being built now is meant to leave the process (``embedded_fonts``)."""
    return _EMBED[0]


class SharedTTFont(TTFont):
    """reportlab's TTFont, written into the PDF by name, not embedded.

    reportlab embeds a subset of a TrueType face in each document, and MuPDF loads every
    subset afresh, page after page (``synth.mupdf.share_font`` says what that costs). Here each 256-character subset is written as a TrueType font
    dictionary that names the face (``AAAAAA+DejaVuSans``, as an embedded subset is named),
    gives the widths reportlab laid out with, maps each code to its character by glyph name
    (``/Differences`` with ``uniXXXX``), and declares the face's metrics without a font
    file; ``synth.mupdf.share_font`` gives MuPDF the whole face under that name. Pixels and
    words read back are the same as from the embedded subsets (tested). ``declared_ascent``
    (1/1000 em), when set, is the ascent the descriptor declares instead of the face's.
    """

    declared_ascent: int | None = None

    def addObjects(self, doc):  # noqa: N802 (reportlab's name)
        face = self.face
        own = face.ascent
        if self.declared_ascent is not None:
            face.ascent = self.declared_ascent
        try:
            if _EMBED[0]:
                return super().addObjects(doc)
            return self._add_named(doc)
        finally:
            face.ascent = own

    def _add_named(self, doc) -> None:
        from reportlab.pdfbase import pdfdoc
        from reportlab.pdfbase.ttfonts import FF_NONSYMBOLIC, FF_SYMBOLIC, SUBSETN

        state = self._assignState(doc)
        state.frozen = 1
        face = self.face
        flags = (face.flags & ~FF_SYMBOLIC) | FF_NONSYMBOLIC  # codes map to characters by glyph name
        for n, subset in enumerate(state.subsets):
            internal = self.getSubsetInternalName(n, doc)[1:]
            base = b"".join((SUBSETN(n), b"+", face.name, face.subfontNameX)).decode("pdfdoc")
            font = pdfdoc.PDFTrueTypeFont()
            font.__Comment__ = f"Font {self.fontName} subset {n} (not embedded)"
            font.Name = internal
            font.BaseFont = base
            font.FirstChar = 0
            font.LastChar = len(subset) - 1
            # The two 256-entry arrays as the bytes reportlab would format them element by
            # element (about 0.4 ms a page): widths and names are formatted once per face.
            widths = _width_bytes(face)
            font.Widths = _Formatted(_array_bytes([widths(c) for c in subset]))
            font.Encoding = pdfdoc.PDFDictionary({
                "Type": pdfdoc.PDFName("Encoding"),
                "Differences": _Formatted(_array_bytes([b"0"] + [_glyph_name_bytes(c) for c in subset]))})
            font.FontDescriptor = doc.Reference(pdfdoc.PDFDictionary({
                "Type": "/FontDescriptor", "Ascent": face.ascent, "CapHeight": face.capHeight,
                "Descent": face.descent, "Flags": flags, "FontBBox": pdfdoc.PDFArray(face.bbox),
                "FontName": pdfdoc.PDFName(base), "ItalicAngle": face.italicAngle, "StemV": face.stemV,
                "MissingWidth": 0}), "fontDescriptor:" + base)
            doc.Reference(font, internal)
            doc.idToObject["BasicFonts"].dict[internal] = font
        del self.state[doc]


class _Formatted(PDFObject):
    """A PDF object given as the bytes reportlab would write for it."""

    def __init__(self, data: bytes):
        self.data = data

    def format(self, document) -> bytes:  # noqa: ARG002 (reportlab's signature)
        return self.data


def _array_bytes(items: list[bytes]) -> bytes:
    """The bytes ``pdfdoc.PDFArray`` writes for elements already formatted as ``items``:
    one line unless ``rl_config.pdfMultiLine``, broken after every tenth element (reportlab
    inserts ``"\\n "`` there as an element of its own, so two spaces follow the break)."""
    from reportlab import rl_config

    if rl_config.pdfMultiLine:
        body = b"\n ".join(items)
    else:
        body = b" \n  ".join(b" ".join(items[i:i + 10]) for i in range(0, len(items), 10))
    return b"[ " + body + b" ]"


def _width_bytes(face):
    """``code -> width`` of ``face`` as reportlab formats a number in a PDF, memoised on
    the face (faces live as long as the process)."""
    memo = face.__dict__.get("_ocr1_width_bytes")
    if memo is None:
        from reportlab.lib.rl_accel import fp_str

        cache: dict[int, bytes] = {}

        def memo(code: int) -> bytes:
            b = cache.get(code)
            if b is None:
                b = cache[code] = fp_str(face.getCharWidth(code)).encode("latin-1")
            return b

        face._ocr1_width_bytes = memo
    return memo


@functools.lru_cache(maxsize=1 << 16)
def _glyph_name_bytes(code: int) -> bytes:
    """``/uni4E2D``: the glyph name of ``code`` as a PDF name."""
    from reportlab.pdfbase import pdfdoc

    return pdfdoc.PDFName(_glyph_name(code)).encode("latin-1")


def _glyph_name(code: int) -> str:
    """The glyph name of a character by its code point (``uni4E2D``; ``.notdef`` for 0)."""
    if code == 0:
        return ".notdef"
    return f"uni{code:04X}" if code <= 0xFFFF else f"u{code:X}"


_FACE_BUILD_VERSION = 1


def _face_arrays(source: str | bytes) -> dict:
    """reportlab's parse of a TrueType face (``TTFontFace``: metrics, character map,
    widths, table directory), as arrays for ``synth.cache``: its attributes, marshalled."""
    import marshal

    import numpy as np
    from reportlab.pdfbase.ttfonts import TTFNameBytes, TTFontFace

    from synth import cache

    face = TTFontFace(io.BytesIO(source) if isinstance(source, bytes) else source)
    state = {k: v for k, v in vars(face).items() if k not in ("_ttf_data", "_pdfScale")}
    names = sorted(k for k, v in state.items() if isinstance(v, TTFNameBytes))
    for k in names:  # marshal knows bytes, not reportlab's subclass of them
        state[k] = bytes(state[k])
    return {"state": np.frombuffer(marshal.dumps(state), np.uint8), "names": cache.pack_strings(names)}


def cached_face(source: str | bytes):
    """reportlab's ``TTFontFace`` of a TrueType face (a file path or its bytes), parsed once
    per node into ``synth.cache`` and loaded from there: parsing cost every process 7.5 ms
    for DejaVu Sans and 57 ms for Droid Sans Fallback (its 34,000 characters), loading
    costs 1.5 and 34 ms. The face holds the same attributes as one reportlab parses
    (tested)."""
    import hashlib
    import marshal
    import sys

    from reportlab.pdfbase.ttfonts import TTFNameBytes, TTFontFace

    from synth import cache

    ident = hashlib.sha256(source).hexdigest() if isinstance(source, bytes) else cache.file_stamp(source)
    a = cache.load_or_build("ttf-face", cache.key("ttf-face", _FACE_BUILD_VERSION, ident,
                                                  cache.library_versions("reportlab"), sys.version),
                            lambda: _face_arrays(source), lock=False)
    state = marshal.loads(a["state"].tobytes())
    for k in cache.unpack_strings(a["names"]):
        state[k] = TTFNameBytes(state[k])
    face = TTFontFace.__new__(TTFontFace)
    face.__dict__.update(state)
    if isinstance(source, bytes):
        face._ttf_data = source
    else:
        with open(source, "rb") as f:
            face._ttf_data = f.read()
    # As TTFontFile.extractInfo sets it: widths in 1/1000 em.
    per_1000 = 1000 / face.unitsPerEm
    face._pdfScale = (lambda x: x) if face.unitsPerEm == 1000 else (lambda x: x * per_1000)
    return face


def _font_with_face(name: str, face) -> SharedTTFont:
    """``SharedTTFont(name, ...)`` built around an already parsed ``face``: TTFont's
    constructor is run as it is, with its module's TTFontFace answering ``face``."""
    from reportlab.pdfbase import ttfonts

    saved = ttfonts.TTFontFace
    ttfonts.TTFontFace = lambda *_args, **_kwargs: face
    try:
        return SharedTTFont(name, face.filename)
    finally:
        ttfonts.TTFontFace = saved


def _register_ttf(name: str, source: str | bytes, ascent: int | None = None) -> str:
    """Register a TrueType face (a file path or its bytes) with reportlab as ``name``, and
    with MuPDF under its PostScript name (``SharedTTFont``); ``ascent`` is the ascent its
    PDF font descriptors declare (1/1000 em), when not its own."""
    from synth.mupdf import share_font

    if name not in pdfmetrics.getRegisteredFontNames():
        font = _font_with_face(name, cached_face(source))
        font.declared_ascent = ascent
        share_font((font.face.name + font.face.subfontNameX).decode("pdfdoc"), source)
        pdfmetrics.registerFont(font)
    return name


def _st_song():
    """reportlab's STSong-Light CID font, declaring :data:`CJK_ASCENT` (see there)."""
    import copy

    from reportlab.pdfbase import cidfonts

    class STSong(cidfonts.UnicodeCIDFont):
        _info = None

        def addObjects(self, doc):  # noqa: N802 (reportlab's name)
            name = self.face.name
            if STSong._info is None:
                STSong._info = copy.deepcopy(cidfonts.CIDFontInfo[name])
                STSong._info["DescendantFonts"][0]["FontDescriptor"]["Ascent"] = CJK_ASCENT
            own = cidfonts.CIDFontInfo[name]
            cidfonts.CIDFontInfo[name] = STSong._info
            try:
                super().addObjects(doc)
            finally:
                cidfonts.CIDFontInfo[name] = own

    return STSong("STSong-Light")


def _registered(name: str):
    # Looked up among the registered fonts: getFont would search every AFM file on
    # reportlab's path for a name it does not hold (7 ms, once a process).
    return pdfmetrics.getFont(name) if name in pdfmetrics.getRegisteredFontNames() else None


@functools.lru_cache(maxsize=None)
def face_set(family: str) -> dict[str, str]:
    """Register (once) and return the reportlab font names of a family's styles.

    Raises ValueError naming the family and the valid ones when it is unknown.
    """
    if family == "Vera":
        import reportlab

        base = os.path.join(os.path.dirname(reportlab.__file__), "fonts")
        return {s: _register_ttf(f"ocr1-Vera-{s}", os.path.join(base, f)) for s, f in _REPORTLAB_TTF.items()}
    if family in _MPL_TTF:
        base = mpl_font_dir()
        return {s: _register_ttf(f"ocr1-{family}-{s}", os.path.join(base, f)) for s, f in _MPL_TTF[family].items()}
    if family in _STANDARD:
        return dict(_STANDARD[family])
    if family == "STSong":
        if type(_registered("STSong-Light")).__name__ != "STSong":  # ours, not reportlab's plain one
            pdfmetrics.registerFont(_st_song())
        # The CID font has no bold/italic face; headings differ by size only.
        return {s: "STSong-Light" for s in STYLES}
    if family == "DroidSansFallback":
        from synth.mupdf import pymupdf

        name = _register_ttf("ocr1-DroidSansFallback", bytes(pymupdf.Font("cjk").buffer), CJK_ASCENT)
        return {s: name for s in STYLES}
    raise ValueError(f"unknown font family {family!r}; valid: {', '.join(LATIN_FAMILIES + CJK_FAMILIES)}")


@functools.lru_cache(maxsize=None)
def mono_face(family: str) -> str:
    """Register (once) and return the reportlab name of a monospaced face (``MONO_FAMILIES``)."""
    if family == "Courier":
        return "Courier"
    if family == "DejaVuSansMono":
        return _register_ttf("ocr1-DejaVuSansMono", os.path.join(mpl_font_dir(), "DejaVuSansMono.ttf"))
    raise ValueError(f"unknown monospaced family {family!r}; valid: {', '.join(MONO_FAMILIES)}")


def families_for(lang: str) -> tuple[str, ...]:
    """The font families that can set text of a language ("en" or "zh")."""
    if lang == "zh":
        return CJK_FAMILIES
    if lang == "en":
        return LATIN_FAMILIES
    raise ValueError(f"unsupported language {lang!r}; valid: 'en', 'zh'")
