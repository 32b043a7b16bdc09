"""What makes OCR 1.0 pages start fast and stay lean (issue 18): the node cache of derived
products, PyMuPDF without its add-ons, the inline-formula pool, bounded memos, the batched
binning and the pandas-free shard encoder."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from synth import cache

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty node cache for the test (and for subprocesses it starts)."""
    monkeypatch.setenv(cache.ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_products_are_built_once_then_loaded_and_checked_by_hash(fresh_cache):
    calls = []

    def build():
        calls.append(1)
        return {"a": np.arange(5, dtype=np.int32), "s": cache.pack_strings(["一", "two"]), "x": np.asarray(0.5)}

    first = cache.load_or_build("demo", "k1", build)
    again = cache.load_or_build("demo", "k1", build)
    assert len(calls) == 1  # the second came from the file
    assert again.keys() == first.keys() and all(np.array_equal(again[k], first[k]) for k in first)
    assert again["x"].shape == () and cache.unpack_strings(again["s"]) == ["一", "two"]
    path = fresh_cache / "demo" / "k1.bin"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # a flipped bit in the arrays: the stored sha256 no longer matches
    path.write_bytes(bytes(data))
    assert np.array_equal(cache.load_or_build("demo", "k1", build)["a"], first["a"]) and len(calls) == 2


def test_an_unwritable_cache_builds_in_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(cache.ENV, str(blocker / "cache"))
    cache._warn_unwritable.cache_clear()
    with pytest.warns(RuntimeWarning, match="not writable"):
        got = cache.load_or_build("demo", "k", lambda: {"a": np.ones(3)})
    assert got["a"].tolist() == [1.0, 1.0, 1.0]


def test_cached_text_models_and_renders_equal_fresh_ones(fresh_cache):
    """The Chinese lexicon, the code listings, an equation raster and a pooled chart: what
    a later process loads is what the first one built (same words, weights and pixels)."""
    from synth.ocr1 import code_sources, equations, figures
    from synth.text_sources import zh

    fns = (zh.lexicon, code_sources.pools, equations._product, equations.rasterize, figures._pooled_chart)
    for fn in fns:
        fn.cache_clear()
    built = (zh.lexicon(), code_sources.pools(), equations.rasterize(equations.entry(45), "cm"),
             figures._pooled_chart(3, "zh"))
    for fn in fns:
        fn.cache_clear()
    loaded = (zh.lexicon(), code_sources.pools(), equations.rasterize(equations.entry(45), "cm"),
              figures._pooled_chart(3, "zh"))
    (lex_b, code_b, (img_b, *m_b), chart_b), (lex_l, code_l, (img_l, *m_l), chart_l) = built, loaded
    assert lex_b.nouns == lex_l.nouns and all(
        lex_b.classes[k].words == lex_l.classes[k].words and np.array_equal(lex_b.classes[k].cdf, lex_l.classes[k].cdf)
        for k in lex_b.classes)
    assert code_b == code_l and sum(map(len, code_l.values())) > 1000
    assert img_b.tobytes() == img_l.tobytes() and m_b == m_l
    assert chart_b == chart_l and chart_l[0][:2] == b"\xff\xd8"  # a JPEG
    assert len(list((fresh_cache / "zh-lexicon").glob("*.bin"))) == 1
    for fn in fns:
        fn.cache_clear()  # later tests read the default cache again


def test_noise_tiles_are_drawn_once_per_node_then_loaded(fresh_cache, monkeypatch):
    """The looks' sensor-noise tiles (25-85 ms each to draw, four per worker) come from the
    node cache in later processes, with the very bytes a fresh draw gives."""
    from synth.realism import ops

    ops._noise_tile.cache_clear()
    built = ops._noise_tile(2)
    assert len(list((fresh_cache / "noise-tile").glob("*.bin"))) == 1
    ops._noise_tile.cache_clear()  # as a new worker process starts
    fresh = ops._draw_noise_tile(2)

    def no_draw(key):
        raise AssertionError(f"tile {key} was drawn again, not loaded")

    monkeypatch.setattr(ops, "_draw_noise_tile", no_draw)
    loaded = ops._noise_tile(2)
    assert loaded.tobytes() == built.tobytes() == fresh.tobytes() and loaded.shape == (ops.NOISE_TILE,) * 2
    assert not loaded.flags.writeable and not built.flags.writeable
    ops._noise_tile.cache_clear()  # later tests read the default cache again


def test_workers_import_no_layout_model_matplotlib_or_pandas():
    """A worker's page needs none of them: PyMuPDF's layout/markdown add-ons (onnxruntime),
    matplotlib (fonts are found by path, formulas come from the cache) and pandas (the
    shard encoder builds Arrow buffers itself). pymupdf.layout still imports on request."""
    code = """
import sys, numpy as np
from synth.ocr1 import Config, generate, pools
from annotate.ocr1 import records
from synth.rows import sample_to_row
from synth.shards import encode_table
cfg = Config(langs={"en": 1.0}, chart_prob=0.0, inline_math_prob=1.0, equation_pool=3, inline_math_pool=3)
pools.warm(cfg)
for m in ("matplotlib", "pandas"):
    sys.modules.pop(m, None)  # warming drew the formulas; a worker on a warm node never does
before = set(sys.modules)
rows = [sample_to_row(f"t/{s}", g, records(g)) for s in range(3) for g in [generate(cfg, np.random.default_rng(s))]]
encode_table(rows)
new = set(sys.modules) - before
print(sorted(m for m in new if m.split(".")[0] in ("matplotlib", "pandas", "onnxruntime", "pymupdf4llm")
             or m.startswith("pymupdf.layout")))
import pymupdf.layout
print("layout ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:2] == ["[]", "layout ok"], out.stdout


def test_inline_formulas_come_from_the_seeded_pool():
    """Pages draw inline formulas from a finite pool (each rendered once per node), the same
    pool in every process: entry i is a pure function of i."""
    from synth.ocr1 import Config, inline_math, render_pdf

    cfg = Config(langs={"en": 0.5, "zh": 0.5}, inline_math_prob=1.0, emphasis_prob=0.0, inline_math_pool=12)
    pool = {inline_math.entry(i) for i in range(12)}
    drawn = [f for s in range(4) for p in render_pdf(cfg, np.random.default_rng(s))[1].body
             for f in getattr(p, "tag", {}).get("inline_math", ())]
    assert len(drawn) >= 6 and set(drawn) <= pool
    inline_math.entry.cache_clear()
    assert {inline_math.entry(i) for i in range(12)} == pool


def test_every_in_process_memo_is_bounded():
    """Pools may be asked to hold 100,000 entries; no per-process memo grows without bound."""
    import importlib
    import pkgutil

    import synth.ocr1
    import synth.text_sources

    unbounded = []
    for pkg in (synth.ocr1, synth.text_sources):
        for info in pkgutil.iter_modules(pkg.__path__):
            mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
            for name, obj in vars(mod).items():
                if isinstance(obj, functools._lru_cache_wrapper) and obj.cache_parameters()["maxsize"] is None:
                    unbounded.append(f"{mod.__name__}.{name}")
    # face_set and mono_face: one entry per font family (10), registered with reportlab once.
    assert sorted(unbounded) == ["synth.ocr1.fonts.face_set", "synth.ocr1.fonts.mono_face"]


def test_batched_binning_equals_the_box_rule():
    from formats.bins import box_to_bins, boxes_to_bins

    rng = np.random.default_rng(0)
    b = rng.uniform(-50, 1100, size=(20_000, 4))
    b[:500, 2] = b[:500, 0]  # degenerate widths
    b[500:1000] = 1024.0  # degenerate at the last bin
    b[1000:2000] = np.round(b[1000:2000] * 2) / 2  # halves: rounding ties
    b[2000:2500, [0, 2]] = b[2000:2500, [2, 0]]  # reversed corners
    want = np.asarray([box_to_bins(r, 724, 1024) for r in b])
    assert np.array_equal(boxes_to_bins(b, 724, 1024), want)


def test_encoded_shards_read_back_as_the_rows(tmp_path):
    """The buffer-built Arrow columns equal pyarrow's own conversion, nulls included (a
    text-only row has no image), and load with `datasets`."""
    from annotate.ocr1 import records
    from synth.ocr1 import Config, generate
    from synth.rows import sample_to_row
    from synth.shards import SCHEMA, encode_table

    rows = []
    for s in range(2):
        page = generate(Config(locate_queries=2), np.random.default_rng(s))
        rows.append(sample_to_row(f"t/00000/{s:05d}", page, records(page)))
    rows.append(dict(rows[0], id="t/00000/00002", image=None, width=0, height=0, regions=[], lines=[]))
    rows = rows * 70  # 210 rows: three record batches
    data = encode_table(rows)
    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    assert table.equals(pa.Table.from_pylist(rows, schema=SCHEMA)) and table.to_pylist() == rows
    datasets = pytest.importorskip("datasets")
    (tmp_path / "shard.arrow").write_bytes(data)
    ds = datasets.Dataset.from_file(str(tmp_path / "shard.arrow"))
    assert ds.num_rows == 210 and ds[2]["image"] is None and ds[0]["image"].size == (rows[0]["width"], rows[0]["height"])


def _image_streams(pdf: bytes) -> list[tuple[int, bytes]]:
    """(stored length, decoded stream) of each image on the PDF's page."""
    from synth.mupdf import pymupdf

    doc = pymupdf.open("pdf", pdf)
    return [(len(doc.xref_stream_raw(im[0])), doc.xref_stream(im[0])) for im in doc[0].get_images()]


def test_engine_pages_store_image_streams_and_pdfs_that_leave_deflate_them():
    """A page built for the engine writes its images as stored (level-0) Flate streams: no
    time spent deflating pixels that MuPDF inflates a moment later. A PDF meant to leave
    the process deflates them as reportlab does. The pixels are the same either way."""
    from synth.ocr1 import Config, render_pdf

    for seed in (0, 2):
        engine, _, _ = render_pdf(Config(), np.random.default_rng(seed))
        leaving, _, _ = render_pdf(Config(), np.random.default_rng(seed), embed_fonts=True)
        stored, deflated = _image_streams(engine), _image_streams(leaving)
        assert len(stored) == len(deflated) >= 5
        assert all(raw >= len(decoded) for raw, decoded in stored)
        assert all(raw < len(decoded) for raw, decoded in deflated)
        assert [d for _, d in stored] == [d for _, d in deflated]  # the same pixels


def test_the_image_memo_is_bounded_in_bytes(monkeypatch):
    from synth.ocr1 import Config, generate, layout

    monkeypatch.setattr(layout, "_IMAGE_MEMO_BYTES", 200_000)
    monkeypatch.setattr(layout._ImageXObject, "_loaded", type(layout._ImageXObject._loaded)())
    monkeypatch.setattr(layout._ImageXObject, "_bytes", 0)
    for seed in range(6):
        generate(Config(), np.random.default_rng(seed))
        memo = layout._ImageXObject._loaded
        total = sum(layout._state_bytes(st) for st in memo.values())
        assert total == layout._ImageXObject._bytes
        assert total <= 200_000 or len(memo) == 1  # one image larger than the bound is kept alone


def test_string_widths_are_remembered_only_while_pages_are_laid_out_and_bounded(monkeypatch):
    """Paragraphs measure strings through a per-process memo (layout._memo_string_width)
    during a build only: reportlab's own function is back afterwards (after a failed build
    too: test_reportlab_is_patched_only_while_a_page_is_built_even_when_the_build_fails);
    the memo gives reportlab's widths and starts afresh at its bound."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.platypus import paragraph

    from synth.ocr1 import Config, fonts, layout, render_pdf

    monkeypatch.setattr(layout, "_WIDTHS", {})
    monkeypatch.setattr(layout, "_WIDTHS_MAX", 500)
    seen = []
    real = layout._memo_string_width
    monkeypatch.setattr(layout, "_memo_string_width", lambda *a, **k: seen.append(a) or real(*a, **k))
    render_pdf(Config(), np.random.default_rng(0))
    assert paragraph.stringWidth is pdfmetrics.stringWidth
    assert len(seen) > 200 and 0 < len(layout._WIDTHS) <= 500
    for text, font, size, *enc in seen[:300]:
        assert real(text, font, size, *enc) == pdfmetrics.stringWidth(text, font, size, *enc)
    name = fonts.face_set("DejaVuSans")["regular"]
    assert real("office", name, 9.5) == pdfmetrics.stringWidth("office", name, 9.5) > 0


def test_reportlab_is_patched_only_while_a_page_is_built_even_when_the_build_fails(monkeypatch):
    """Every replacement build_pdf gives reportlab (memoised widths, names and ascents, the
    fragment comparison, stored image streams) is in place while a page is laid out and
    reportlab's own is back afterwards, also when a flowable fails."""
    from reportlab.lib.rl_accel import sameFrag
    from reportlab.pdfbase import pdfdoc, pdfmetrics
    from reportlab.platypus import paragraph

    from synth.ocr1 import Config, layout
    from synth.ocr1.content import make_plan

    own = {(owner, name): getattr(owner, name) for owner, name, _value in layout._build_patches()}
    assert own[(paragraph, "stringWidth")] is pdfmetrics.stringWidth and own[(paragraph, "sameFrag")] is sameFrag
    assert own[(pdfdoc, "PDFName")] is layout._pdf_name and layout._pdf_name.__module__ == pdfdoc.__name__
    assert own[(paragraph, "getAscentDescent")] is pdfmetrics.getAscentDescent

    def fail(self, story):
        for owner, name, value in layout._build_patches():  # in use while building
            assert getattr(owner, name) is value, name
        assert paragraph.stringWidth is layout._memo_string_width and pdfdoc.PDFName is layout._memo_pdf_name
        raise RuntimeError("a flowable failed")

    monkeypatch.setattr(layout._FirstPageDoc, "build", fail)
    with pytest.raises(RuntimeError, match="a flowable failed"):
        layout.build_pdf(make_plan(Config(), np.random.default_rng(1)))
    for (owner, name), value in own.items():
        assert getattr(owner, name) is value, name
    assert paragraph.stringWidth is pdfmetrics.stringWidth
    assert pdfdoc.PDFName is layout._pdf_name and paragraph.getAscentDescent is pdfmetrics.getAscentDescent


def test_pdf_names_and_font_ascents_are_remembered_only_while_pages_are_laid_out(monkeypatch):
    """Escaped PDF names and fonts' ascent/descent are remembered during builds (bounded),
    give reportlab's own answers, and reportlab's functions are back after a build (a
    failed one: test_reportlab_is_patched_only_while_a_page_is_built_even_when_the_build_fails)."""
    from reportlab.pdfbase import pdfdoc, pdfmetrics
    from reportlab.platypus import paragraph

    from synth.ocr1 import Config, fonts, layout, render_pdf

    names, ascents = [], []
    real_name, real_ascent = layout._memo_pdf_name, layout._memo_ascent_descent
    monkeypatch.setattr(layout, "_NAMES", {})
    monkeypatch.setattr(layout, "_NAMES_MAX", 40)
    monkeypatch.setattr(layout, "_memo_pdf_name", lambda *a: names.append(a) or real_name(*a))
    monkeypatch.setattr(layout, "_memo_ascent_descent", lambda *a: ascents.append(a) or real_ascent(*a))
    for lang in ("en", "zh"):
        render_pdf(Config(langs={lang: 1.0}), np.random.default_rng(3))
    assert pdfdoc.PDFName is layout._pdf_name and paragraph.getAscentDescent is pdfmetrics.getAscentDescent
    assert len(names) > 100 and len(ascents) > 100 and 0 < len(layout._NAMES) <= 40
    odd = ("Type", "FormXob.6be6 89", "a#b(c)", "\u00e9t\u00e9", "F1")
    assert all(real_name(n) == pdfdoc.PDFName(n) for n in [a[0] for a in names] + list(odd))
    face = fonts.face_set("DejaVuSans")["regular"]
    for args in ascents + [(face, 9.5), (face, None), ("Times-Roman", 11.0)]:
        assert real_ascent(*args) == pdfmetrics.getAscentDescent(*args)


def test_fragments_compare_as_reportlab_does(monkeypatch):
    """Lines ask reportlab's sameFrag of each word's (a Chinese line: each glyph's) fragment
    and the one before; layout._same_frag answers it itself, during builds only, and gives
    reportlab's answer for every pair default and Chinese pages ask and for fragments that
    differ in each attribute reportlab compares, or lack it."""
    from reportlab.lib.colors import black, red
    from reportlab.lib.rl_accel import sameFrag
    from reportlab.platypus import paragraph
    from reportlab.platypus.paraparser import ParaFrag

    from synth.ocr1 import Config, layout, render_pdf

    asked = []
    real = layout._same_frag
    monkeypatch.setattr(layout, "_same_frag", lambda f, g: asked.append((f, g)) or real(f, g))
    render_pdf(Config(langs={"zh": 1.0}), np.random.default_rng(2))
    assert sum(f is g for f, g in asked) > 100  # the case answered at once
    for seed in range(8):
        render_pdf(Config(), np.random.default_rng(seed))
    assert paragraph.sameFrag is sameFrag  # reportlab's own once the build is done
    distinct = [(f, g) for f, g in asked if f is not g]
    assert len(distinct) > 500 and any(sameFrag(f, g) for f, g in distinct) and not all(
        sameFrag(f, g) for f, g in distinct)
    assert all(bool(real(f, g)) == bool(sameFrag(f, g)) for f, g in asked)
    base = dict(fontName="x", fontSize=9, textColor=black, rise=0, us_lines=[], link=None, backColor=None, nobr=0)
    other = dict(fontName="y", fontSize=9.5, textColor=red, rise=1, us_lines=[("u",)], link=["a"], backColor=red,
                 nobr=1)
    pairs = [(ParaFrag(**base, text="a"), ParaFrag(**base, text="b"))]
    for name in base:
        pairs.append((ParaFrag(**base), ParaFrag(**{**base, name: other[name]})))  # differs in one
        pairs.append((ParaFrag(**base), ParaFrag(**{k: v for k, v in base.items() if k != name})))  # lacks one
        lacking = {k: v for k, v in base.items() if k != name}
        pairs.append((ParaFrag(**lacking), ParaFrag(**lacking)))  # both lack it
    image, line_end = ParaFrag(**base), ParaFrag(**base)
    image.cbDefn, line_end.lineBreak = object(), True  # never drawn alike, not even with itself
    pairs += [(image, ParaFrag(**base)), (ParaFrag(**base), line_end), (image, image), (line_end, line_end),
              (paragraph.FragLine(**base), ParaFrag(**base))]
    for f, g in pairs:
        assert bool(real(f, g)) == bool(sameFrag(f, g)), (f, g)
    assert sum(bool(sameFrag(f, g)) for f, g in pairs) >= 2


def test_pages_drawn_in_bgr_are_the_rgb_pixels_and_store_the_same_bytes():
    """A page stored as drawn is rendered in OpenCV's channel order (render.rasterize with
    bgr): MuPDF draws the same values, text and figures alike, and the JPEG (or PNG) of
    those pixels is byte for byte the one of the RGB raster."""
    from synth.ocr1 import Config, render_pdf
    from synth.ocr1.render import display_list, encode, open_page, rasterize

    images = 0
    for seed in range(4):
        pdf, _, _ = render_pdf(Config(), np.random.default_rng(seed))
        page = open_page(pdf)
        images += len(page.get_images())
        drawing = display_list(page)
        rgb, scale = rasterize(page, 1024, drawing)
        bgr, scale2 = rasterize(page, 1024, drawing, bgr=True)
        assert scale == scale2 and np.array_equal(rgb, bgr[:, :, ::-1])
        assert encode(bgr, "jpeg", 60, bgr=True) == encode(rgb, "jpeg", 60)
        if seed == 0:
            assert encode(bgr, "png", 60, 1, bgr=True) == encode(rgb, "png", 60, 1)
    assert images >= 4  # figures and formulas are drawn through the same conversion


def test_images_named_once_draw_the_pdf_that_draw_image_writes():
    """flowables.draw_image names each image once (a reader keeps its name; a JPEG's is
    remembered by the file's digest) and otherwise does what reportlab's drawImage does:
    the same PDF, byte for byte, for a pooled chart (a JPEG), an equation (a PNG) and an
    image with alpha, each drawn twice; a chart named once is not decoded again."""
    import io

    from PIL import Image
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    from synth.ocr1 import equations, figures
    from synth.ocr1.flowables import draw_image

    def readers():
        chart, _aspect = figures.chart(np.random.default_rng(3), 4, "en")
        rgba = Image.new("RGBA", (20, 10), (10, 200, 30, 128))
        return [chart, equations.reader(equations.entry(0), "dejavusans"), ImageReader(rgba)]

    def pdf(draw):
        c = canvas.Canvas(io.BytesIO(), invariant=1)
        for k, r in enumerate(readers() * 2):
            draw(c, r, 10 + k, 20 + 3 * k, 100.5, 60.25)
        c.showPage()
        return c.getpdfdata()

    ours = pdf(draw_image)
    assert ours == pdf(lambda c, r, *box: c.drawImage(r, *box))
    assert ours.count(b"/Subtype /Image") == 3 and b"/DCTDecode" in ours
    chart = readers()[0]  # a fresh reader of a chart named above
    draw_image(canvas.Canvas(io.BytesIO()), chart, 0, 0, 10, 10)
    assert chart._data is None  # its name is remembered by the JPEG's digest: not decoded again


def test_mupdf_store_is_emptied_every_so_many_pages(capfd, monkeypatch):
    """MuPDF's resource store held every image it decoded (formulas, charts) after its
    document was closed, up to 256 MB, and a worker's memory grew with it and with malloc's
    fragments (1.3 GB after 6,000 pages); synth.mupdf.release_store empties it every
    _RELEASE_EVERY pages (after a page's last MuPDF call)."""
    import synth.mupdf
    from synth.mupdf import pymupdf
    from synth.ocr1 import Config, generate

    mupdf = pymupdf.mupdf

    def store_size() -> int:
        capfd.readouterr()
        mupdf.fz_debug_store(mupdf.FzOutput(mupdf.FzOutput.Fixed_STDOUT))
        report = capfd.readouterr().out
        return int(re.search(r"max=\d+, size=(\d+)", report).group(1))

    monkeypatch.setattr(synth.mupdf, "_RELEASE_EVERY", 3)
    monkeypatch.setattr(synth.mupdf, "_released", 0)
    cfg = Config(chart_prob=1.0, inline_math_prob=1.0)
    sizes = []
    for seed in range(4):
        generate(cfg, np.random.default_rng(seed))
        sizes.append(store_size())
    assert sizes[0] > 0 and sizes[1] > sizes[0] and sizes[2] == 0 and sizes[3] > 0, sizes
