"""Fonts the chart renderer may use, all shipped by installed packages.

Latin text uses matplotlib's bundled DejaVu and STIX families. Chinese text needs a CJK
font matplotlib can read: PyMuPDF ships Droid Sans Fallback (a TrueType font) as
``pymupdf.Font("cjk")``; its buffer is written once per process to a temporary file and
registered with matplotlib's font manager. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import os
import tempfile

# Latin families bundled with matplotlib (mpl-data/fonts/ttf).
LATIN_FAMILIES: tuple[str, ...] = ("DejaVu Sans", "DejaVu Serif", "STIXGeneral", "DejaVu Sans Mono")


@functools.lru_cache(maxsize=1)
def cjk_font_path() -> str:
    """Write PyMuPDF's CJK font (Droid Sans Fallback) to a per-process temp file once."""
    import pymupdf

    buf = pymupdf.Font("cjk").buffer
    # The file name carries the pid so concurrent workers never write the same file;
    # the content (and so the rendering) is the same everywhere.
    path = os.path.join(tempfile.gettempdir(), f"ocr_engine_cjk_{os.getpid()}_{len(buf)}.ttf")
    if not os.path.exists(path) or os.path.getsize(path) != len(buf):
        tmp = path + ".part"
        with open(tmp, "wb") as fh:
            fh.write(buf)
        os.replace(tmp, path)
    return path


@functools.lru_cache(maxsize=1)
def cjk_family() -> str:
    """Register the CJK font with matplotlib (once per process); return its family name."""
    from matplotlib import font_manager

    path = cjk_font_path()
    font_manager.fontManager.addfont(path)
    return font_manager.FontProperties(fname=path).get_name()


def families_for(lang: str, latin: str, cjk_first: bool = True) -> list[str]:
    """The font family list (matplotlib falls back glyph by glyph) for a chart in ``lang``.

    Chinese charts usually put the CJK font first so that mixed strings such as
    ``2019年`` use one typeface, otherwise it is the fallback. English charts leave it
    out: their text is Latin, and a listed CJK font would be asked for a bold face it
    lacks (matplotlib logs a warning per miss).
    """
    if latin not in LATIN_FAMILIES:
        raise ValueError(f"font family {latin!r} is not bundled; valid: {', '.join(LATIN_FAMILIES)}")
    if lang == "zh" and cjk_first:
        return [cjk_family(), latin]
    if lang == "zh":
        return [latin, cjk_family()]
    return [latin]
