"""Shared TrueType faces (synth.ocr1.fonts.SharedTTFont, synth.mupdf.share_font): pages that
name their faces draw and read back exactly as pages that embed them."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from synth.ocr1 import Config, fonts, generate, render_pdf
from tests.conftest import REPO

# Every shared face: the Latin TTF families (regular, bold, italic: emphasis and headings),
# Computer Modern's OT1-coded faces, DejaVu Sans Mono (code listings) and the Chinese face.
FAMILIES = [("en", "Vera"), ("en", "DejaVuSans"), ("en", "DejaVuSerif"), ("en", "STIX"),
            ("en", "ComputerModern"), ("zh", "DroidSansFallback")]
SEEDS = (0, 1)


def _cfg(lang: str, family: str) -> Config:
    # PNG and no looks: the stored image is the rasterised pixels, losslessly.
    return Config(langs={lang: 1.0}, fonts=[family], scan_prob=0.0, photo_prob=0.0, image_format="png",
                  png_compress_level=1, emphasis_prob=1.0,
                  blocks={"paragraph": 3, "heading": 1, "list": 1, "table": 1, "code": 1})


def _digest(sample) -> str:
    """sha256 of a page's pixels (PNG bytes) and everything read back from them."""
    read = {"text": sample.text, "truth": sample.truth, "regions": list(map(repr, sample.regions)),
            "lines": list(map(repr, sample.lines))}
    return hashlib.sha256(sample.image + json.dumps(read, sort_keys=True).encode()).hexdigest()


def test_shared_pdf_names_its_faces_and_embedded_pdf_carries_them():
    lang, family = "en", "DejaVuSerif"
    shared, _, _ = render_pdf(_cfg(lang, family), np.random.default_rng(0))
    embedded, _, _ = render_pdf(_cfg(lang, family), np.random.default_rng(0), embed_fonts=True)
    named = {m.split(b"+")[1] for m in re.findall(rb"/BaseFont /([A-Z]{6}\+[\w-]+)", shared)}
    assert {b"DejaVuSerif", b"DejaVuSerif-Bold", b"DejaVuSerif-Italic"} <= named
    assert b"/FontFile2" not in shared and embedded.count(b"/FontFile2") >= 3


@pytest.mark.parametrize("lang,family", FAMILIES)
def test_shared_faces_draw_and_read_back_as_embedded_ones(lang, family):
    cfg = _cfg(lang, family)
    for seed in SEEDS:
        shared = generate(cfg, np.random.default_rng(seed))
        with fonts.embedded_fonts():
            embedded = generate(cfg, np.random.default_rng(seed))
        assert shared.truth["words"], (family, seed)
        assert shared.image == embedded.image, f"{family} seed {seed}: pixels differ"
        assert (shared.text, shared.truth, shared.regions, shared.lines) == \
            (embedded.text, embedded.truth, embedded.regions, embedded.lines), f"{family} seed {seed}: read-back differs"


def test_a_fresh_process_draws_its_first_page_with_shared_faces_as_embedded():
    """A new process (as a pool or Ray worker starts) shares its faces before its first page."""
    pages = [("en", "DejaVuSans", 0), ("zh", "DroidSansFallback", 1)]
    code = ("import sys, numpy as np; from tests.test_ocr1_fonts import _cfg, _digest; "
            "from synth.ocr1 import generate; "
            f"print(' '.join(_digest(generate(_cfg(l, f), np.random.default_rng(s))) for l, f, s in {pages!r}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    with fonts.embedded_fonts():
        here = [_digest(generate(_cfg(lang, family), np.random.default_rng(seed))) for lang, family, seed in pages]
    assert out.stdout.split() == here


def _face_sources() -> list:
    import reportlab

    from synth.mupdf import pymupdf

    rl = os.path.join(os.path.dirname(reportlab.__file__), "fonts")
    paths = [os.path.join(rl, f) for f in fonts._REPORTLAB_TTF.values()]
    paths += [os.path.join(fonts.mpl_font_dir(), f) for styles in fonts._MPL_TTF.values() for f in styles.values()]
    paths.append(os.path.join(fonts.mpl_font_dir(), "DejaVuSansMono.ttf"))
    return paths + [bytes(pymupdf.Font("cjk").buffer)]


def test_faces_from_the_node_cache_are_the_faces_reportlab_parses(tmp_path, monkeypatch):
    """Every TrueType face the pages use, loaded from synth.cache, holds what reportlab's
    own parse holds; once cached, a face is not parsed again (a fresh process's view)."""
    import io

    from reportlab.pdfbase import ttfonts

    monkeypatch.setenv("SYNTH_CACHE_DIR", str(tmp_path))
    sources = _face_sources()
    parsed = [ttfonts.TTFont("t", io.BytesIO(s) if isinstance(s, bytes) else s) for s in sources]
    for s in sources:
        fonts.cached_face(s)  # builds the node's files
    assert len(list(tmp_path.glob("ttf-face/*.bin"))) == len(sources) == 17

    def parse(*_args, **_kwargs):
        raise AssertionError("a cached face was parsed again")

    monkeypatch.setattr(ttfonts.TTFontFile, "extractInfo", parse)
    for s, ref in zip(sources, parsed):
        font = fonts._font_with_face("t", fonts.cached_face(s))
        got, want = vars(font.face), vars(ref.face)
        assert got.keys() == want.keys() and vars(font).keys() == vars(ref).keys()
        for k in want:
            if k != "_pdfScale":
                assert type(got[k]) is type(want[k]) and got[k] == want[k], k
        assert [font.face._pdfScale(v) for v in (0, 1, 777, 2048)] == [ref.face._pdfScale(v) for v in (0, 1, 777, 2048)]
        text = "Hello, wörld — 中文排版 0123"
        assert font.stringWidth(text, 10.5) == ref.stringWidth(text, 10.5)


def test_registering_the_cjk_cid_face_searches_no_afm_files():
    """Whether STSong-Light is registered yet is asked of the registered fonts: reportlab's
    getFont would search every AFM file on its path for the name first (7 ms a process)."""
    code = ("from reportlab.pdfbase import pdfmetrics\n"
            "def search(*a, **k):\n    raise SystemExit('searched the AFM files')\n"
            "pdfmetrics.bruteForceSearchForAFM = search\n"
            "from synth.ocr1 import fonts\n"
            "assert fonts.face_set('STSong') == {s: 'STSong-Light' for s in fonts.STYLES}\n"
            "assert type(pdfmetrics.getFont('STSong-Light')).__name__ == 'STSong'\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-500:]


@pytest.mark.parametrize("count", [0, 1, 9, 10, 11, 20, 256])
def test_preformatted_font_arrays_are_the_bytes_reportlab_writes(count):
    """The Widths and Differences arrays of a named subset are written as bytes formatted
    once per face (fonts._array_bytes): the same bytes as reportlab's PDFArray of numbers
    and names, at every length (the line break after each tenth element included)."""
    from reportlab.pdfbase import pdfdoc, pdfmetrics

    face = pdfmetrics.getFont(fonts.face_set("DejaVuSans")["regular"]).face
    codes = [0, 32, 65, 0x4E2D, 0x1F600, 0xE9, 0x3B1][:count] + list(range(97, 97 + max(0, count - 7)))
    doc = pdfdoc.PDFDocument()
    widths = pdfdoc.PDFArray([face.getCharWidth(c) for c in codes])
    names = pdfdoc.PDFArray([0] + [pdfdoc.PDFName(fonts._glyph_name(c)) for c in codes])
    assert fonts._array_bytes([fonts._width_bytes(face)(c) for c in codes]) == pdfdoc.format(widths, doc)
    assert fonts._array_bytes([b"0"] + [fonts._glyph_name_bytes(c) for c in codes]) == pdfdoc.format(names, doc)
    assert any(not float(w).is_integer() for w in widths.sequence) or count < 8  # fractional widths are covered


def _malloc_in_use() -> int:
    """Bytes malloc has handed out and not had back (glibc's mallinfo2)."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="measures glibc's malloc (mallinfo2)")
def test_a_shared_face_keeps_one_width_table_however_many_pages_load_it(monkeypatch):
    """MuPDF gives a font it loads a table of the PDF's widths and frees it only with the
    font; a shared font object is loaded by every page, and each page's table was lost
    (~40 KB a page, a worker's memory growing 45 MB per 1,000 pages). The control run, with
    synth.mupdf's freeing turned off, shows the loss this measures."""
    import gc

    import synth.mupdf
    from synth.ocr1.render import display_list, open_page
    from synth.mupdf import pymupdf

    pdf, _plan, _drawn = render_pdf(_cfg("zh", "DroidSansFallback"), np.random.default_rng(0))

    def growth(pages: int) -> int:
        def load() -> None:
            display_list(open_page(pdf))  # loads the page's fonts, as generate does
            pymupdf.mupdf.fz_empty_store()  # what the store keeps is not what is measured
            gc.collect()

        for _ in range(3):
            load()
        before = _malloc_in_use()
        for _ in range(pages):
            load()
        return _malloc_in_use() - before

    freed = growth(10)
    table = 2 * synth.mupdf._SHARED_FONTS["Droid-Sans-Fallback"].m_internal.width_count  # shorts
    assert table > 10_000
    assert freed < 4 * table, (freed, table)
    monkeypatch.setattr(synth.mupdf, "_drop_width_table", lambda font: None)
    kept = growth(10)
    assert kept > 10 * table, (kept, table)  # the control: each load lost its tables
