"""Fonts for OCR 1.0 pages, all shipped inside installed packages (nothing downloaded).

A *face set* maps a style ("regular", "bold", "italic") to a reportlab font name. Sets:
- reportlab's Bitstream Vera TTFs, matplotlib's DejaVu Sans/Serif and STIX TTFs
  (embedded, subset per document);
- the PDF standard fonts Helvetica/Times/Courier (not embedded: PyMuPDF draws them
  with its built-in Nimbus clones);
- Computer Modern (cmr10, cmb10, cmti10: the BaKoMa TTFs matplotlib ships), LaTeX's
  default face. These fonts keep TeX's OT1 layout, so a few ASCII codes draw other
  glyphs (``<`` draws an inverted exclamation mark, ``_`` a dot accent, ``|`` an em dash;
  see ``UNDRAWABLE``): text set in them avoids those characters;
- Chinese: reportlab's ``STSong-Light`` CID font (not embedded; PyMuPDF draws it with
  its fallback CJK font) and PyMuPDF's built-in Droid Sans Fallback registered with
  reportlab as an embedded TrueType font.
Registration happens once per process.
"""

from __future__ import annotations

import functools
import io
import os

from reportlab.pdfbase import pdfmetrics

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


def _declare_ascent(font, ascent: int):
    """Make a registered TTFont write ``ascent`` in its PDF font descriptor."""
    face = font.face
    write = face.addSubsetObjects

    def add_subset_objects(doc, fontname, subset):
        own = face.ascent
        face.ascent = ascent
        try:
            return write(doc, fontname, subset)
        finally:
            face.ascent = own

    face.addSubsetObjects = add_subset_objects
    return font


def _register_ttf(name: str, path_or_file, ascent: int | None = None) -> str:
    from reportlab.pdfbase.ttfonts import TTFont

    if name not in pdfmetrics.getRegisteredFontNames():
        font = TTFont(name, path_or_file)
        pdfmetrics.registerFont(_declare_ascent(font, ascent) if ascent is not None else font)
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
    try:
        return pdfmetrics.getFont(name)
    except KeyError:
        return None


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

        name = _register_ttf("ocr1-DroidSansFallback", io.BytesIO(pymupdf.Font("cjk").buffer), CJK_ASCENT)
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
