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


def _register_ttf(name: str, path_or_file) -> str:
    from reportlab.pdfbase.ttfonts import TTFont

    if name not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(name, path_or_file))
    return name


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
        import matplotlib

        base = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
        return {s: _register_ttf(f"ocr1-{family}-{s}", os.path.join(base, f)) for s, f in _MPL_TTF[family].items()}
    if family in _STANDARD:
        return dict(_STANDARD[family])
    if family == "STSong":
        from reportlab.pdfbase.cidfonts import UnicodeCIDFont

        if "STSong-Light" not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
        # The CID font has no bold/italic face; headings differ by size only.
        return {s: "STSong-Light" for s in STYLES}
    if family == "DroidSansFallback":
        from synth.mupdf import pymupdf

        name = _register_ttf("ocr1-DroidSansFallback", io.BytesIO(pymupdf.Font("cjk").buffer))
        return {s: name for s in STYLES}
    raise ValueError(f"unknown font family {family!r}; valid: {', '.join(LATIN_FAMILIES + CJK_FAMILIES)}")


@functools.lru_cache(maxsize=None)
def mono_face(family: str) -> str:
    """Register (once) and return the reportlab name of a monospaced face (``MONO_FAMILIES``)."""
    if family == "Courier":
        return "Courier"
    if family == "DejaVuSansMono":
        import matplotlib

        return _register_ttf("ocr1-DejaVuSansMono", os.path.join(matplotlib.get_data_path(), "fonts", "ttf",
                                                                 "DejaVuSansMono.ttf"))
    raise ValueError(f"unknown monospaced family {family!r}; valid: {', '.join(MONO_FAMILIES)}")


def families_for(lang: str) -> tuple[str, ...]:
    """The font families that can set text of a language ("en" or "zh")."""
    if lang == "zh":
        return CJK_FAMILIES
    if lang == "en":
        return LATIN_FAMILIES
    raise ValueError(f"unsupported language {lang!r}; valid: 'en', 'zh'")
