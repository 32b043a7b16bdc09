"""PyMuPDF, imported without its layout and markdown add-ons.

PyMuPDF 2.0 imports ``pymupdf.layout`` and ``pymupdf4llm`` from its own ``__init__``
whenever they are installed: the first loads onnxruntime and an ONNX model for
``Page.get_layout``, the second tabulate and its helpers for ``pymupdf.to_markdown``;
together about 0.5 s per process, for functions the engine never calls. This module
imports PyMuPDF with those two imports refused, then lifts the refusal, so code that
imports them itself still gets them (``pymupdf.to_markdown`` stays unavailable in a
process that imported PyMuPDF through here). Import PyMuPDF as
``from synth.mupdf import pymupdf`` in the engine.
"""

from __future__ import annotations

import sys


_ADD_ONS = ("pymupdf.layout", "pymupdf4llm")


def _load():
    if "pymupdf" in sys.modules:  # imported earlier by someone else: use it as it is
        return sys.modules["pymupdf"]
    blocked = [name for name in _ADD_ONS if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # `import name` raises ImportError, which PyMuPDF expects
    try:
        import pymupdf
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    return pymupdf


pymupdf = _load()


# Fonts that pages name without embedding them, loaded once per process and shared by every
# document MuPDF opens in it (see ``share_font``).
_SHARED_FONTS: dict[str, object] = {}
_SHARED_SOURCES: dict[str, str | bytes] = {}
_loader = None


class _SharedFontLoader(pymupdf.mupdf.FzInstallLoadSystemFontFuncsArgs2):
    """MuPDF's "system font" hook: a PDF font that is not embedded is looked up here by its
    name (subset tag dropped) before MuPDF falls back to its built-in substitutes."""

    def __init__(self):
        super().__init__()
        self.use_virtual_f()

    def f(self, ctx, name, bold, italic, needs_exact_metrics):  # noqa: ARG002 (MuPDF's signature)
        font = _SHARED_FONTS.get(name.split("+", 1)[-1] if name else name)
        if font is None:
            return None
        _drop_width_table(font.m_internal)
        # A new reference for MuPDF, which drops it with the document.
        return pymupdf.mupdf.ll_fz_keep_font(font.m_internal)


def _drop_width_table(font) -> None:
    """Free the width table a previous document's load left on the shared ``font``.

    MuPDF loads a font it found by name as it loads any other: it gives the font object a
    table of the PDF's widths (``pdf_make_width_table``), assuming the object is new, and
    frees the table only with the object. A shared object got one more table from every
    font resource of every page, and the one before was lost: about 40 KB a page, a
    worker's memory growing by 45 MB every 1,000 pages (measured). MuPDF sets a new table
    right after this call, and reads the table only through the font, so freeing the
    previous one changes nothing that is drawn or read (the pages' bytes are the same)."""
    if font.width_table is not None:
        pymupdf.mupdf.ll_fz_free(font.width_table)
        font.width_table = None
        font.width_count = 0


def _without_glyph_names(ttf: bytes) -> bytes:
    """The TrueType font ``ttf`` with its 'post' table marked version 3 (no glyph names).

    Pages map codes to characters by glyph name (``uni0041``), and MuPDF looks each name
    up among the font's own glyph names first: FreeType compares it with every name a
    version-2 'post' table holds (DejaVu Sans: 6,000), for each of 256 codes, each page
    (about 4 ms of a default clean page, measured: 7.4 against 3.4 ms to open, interpret
    and rasterise it). Without names the lookup fails at once and MuPDF maps the name's character
    through the font's Unicode cmap, as reportlab did (FreeType does not check table
    checksums)."""
    import struct

    (count,) = struct.unpack(">H", ttf[4:6])
    for i in range(count):
        tag, _checksum, offset, _length = struct.unpack(">4sIII", ttf[12 + 16 * i:28 + 16 * i])
        if tag == b"post":
            return ttf[:offset] + struct.pack(">I", 0x00030000) + ttf[offset + 4:]
    return ttf


_RELEASE_EVERY = 50  # pages between two emptyings of MuPDF's store
_released = 0  # pages since the store was last emptied


def release_store() -> None:
    """Empty MuPDF's resource store every ``_RELEASE_EVERY`` calls (one a page).

    MuPDF keeps the images it decodes (formulas, charts), keyed by image object, until its
    store reaches 256 MB, although no later document can use them: each opens its own
    image objects. A worker's memory grew by 85 MB of them in 400 pages, and by far more
    in malloc's fragments as the full store turned over: 1.3 GB after 6,000 pages, still
    rising (measured). The store also holds what every page shares (the CJK CMaps, the
    built-in fallback font), which MuPDF loads again after an emptying (about 7 ms), so
    it is emptied every 50 pages rather than after each; the page bytes do not change."""
    global _released
    _released += 1
    if _released >= _RELEASE_EVERY:
        _released = 0
        pymupdf.mupdf.fz_empty_store()


def unstretch_shared_fonts() -> None:
    """Draw the shared fonts' glyphs at their own widths.

    MuPDF marks a font it found by name as a substitute, to be stretched to the widths the
    PDF gives (``ft_stretch``). Ours are the very faces the widths came from, but the PDF
    writes widths to four decimals, so a stretch of about 1e-7 would reach FreeType and
    move a few edge pixels by a few grey levels. MuPDF sets the mark as it loads a font,
    so this is called after a page's fonts are loaded (``synth.ocr1.render``) and before it
    is rasterised; the pixels are then those of the embedded subsets (tested)."""
    for font in _SHARED_FONTS.values():
        font.m_internal.flags.ft_stretch = 0


def share_font(name: str, source: str | bytes) -> None:
    """Let PDFs name the TrueType font ``name`` without embedding it: MuPDF then draws it
    from one font object made here from ``source`` (a file path or the font's bytes).

    A page that embeds its fonts makes reportlab subset and serialise each face it uses and
    MuPDF load each subset afresh; a named face costs neither. Measured on default clean
    pages (docs/ocr1.md, Speed): 1.2 ms less layout per page; the raster itself (open,
    display list, pixmap: 3.5 ms at 1024 px) costs the same either way. Raises ValueError
    when ``name`` is already shared from another source.
    """
    global _loader
    if name in _SHARED_SOURCES:
        if _SHARED_SOURCES[name] != source:
            raise ValueError(f"font {name!r} is already shared from {_SHARED_SOURCES[name]!r}, not {source!r}")
        return
    mupdf = pymupdf.mupdf
    data = source
    if not isinstance(data, bytes):
        with open(source, "rb") as f:
            data = f.read()
    data = mupdf.FzBuffer.fz_new_buffer_from_copied_data(_without_glyph_names(data))
    _SHARED_FONTS[name], _SHARED_SOURCES[name] = mupdf.fz_new_font_from_buffer(name, data, 0, 0), source
    if _loader is None:
        _loader = _SharedFontLoader()
        mupdf.fz_install_load_system_font_funcs2(_loader)
