"""Do line boxes contain their glyphs? Ink of a line that crosses its box's top or bottom edge.

docs/ocr1.md promises that a line's box always contains its ink. This measures it on a
rasterised page: for each column of a box where ink crosses its top edge (a dark pixel
on the edge's first row inside and on the first row outside), the dark run is followed
up out of the box and down into it. A glyph cut by the box runs mostly inside it (an
ideograph's stroke poking one or two rows above); the descender of the line above that
reaches into this box runs mostly outside. Only the first counts: the column's overflow
is the run's length outside when the run inside is longer. The bottom edge likewise.

``bench/bench_ocr1.py --ink`` reports the share of lines that overflow per language and
font; ``tests/test_ocr1_ink.py`` holds every family to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INK = 128  # grey level below which a pixel is ink (anti-aliased edges above it are not)


@dataclass(frozen=True)
class Overflow:
    """Rows of a line's own ink above its box's top edge and below its bottom edge."""

    above: int
    below: int


def _run(dark: np.ndarray, start: int, step: int, cols: np.ndarray, limit: int) -> np.ndarray:
    """Per column in ``cols``: how many rows from ``start`` (going by ``step``) stay dark."""
    n = np.zeros(len(cols), dtype=np.int64)
    alive = np.ones(len(cols), dtype=bool)
    r = start
    for _ in range(limit):
        if not (0 <= r < dark.shape[0]):
            break
        alive &= dark[r, cols]
        if not alive.any():
            break
        n += alive
        r += step
    return n


def _rows_cols(box, h: int, w: int) -> tuple[int, int, int, int]:
    """(first column, end column, first row, last row) of the pixels a box covers; an edge
    at a fractional position covers the pixel it lies in."""
    x0, y0, x1, y1 = box
    return (max(0, int(np.floor(x0))), min(w, int(np.ceil(x1))),
            max(0, int(np.floor(y0))), min(h, int(np.ceil(y1)) - 1))


def overflow(grey: np.ndarray, box: tuple[float, float, float, float], free: np.ndarray | None = None) -> Overflow:
    """How many rows of its own ink a line box leaves out, above and below.

    ``grey`` is the page as an (H, W) uint8 array; ``box`` is (x0, y0, x1, y1) in its
    pixels. ``free`` (H, W bool), when given, marks the pixels outside every other line's
    box: ink outside this box but inside another line's is that line's (boxes of faces
    with tall cells overlap the line above), so runs outside stop there."""
    h, w = grey.shape
    c0, c1, top, bot = _rows_cols(box, h, w)
    if c1 <= c0 or bot < top:
        return Overflow(0, 0)
    dark = grey < INK
    outside_dark = dark if free is None else dark & free
    cols = np.arange(c0, c1)
    tall = bot - top + 1
    out = []
    for edge, outside, step in ((top, top - 1, -1), (bot, bot + 1, 1)):
        if not 0 <= outside < h:
            out.append(0)
            continue
        crossing = cols[dark[edge, cols] & outside_dark[outside, cols]]
        if not len(crossing):
            out.append(0)
            continue
        away = _run(outside_dark, outside, step, crossing, tall)
        inside = _run(dark, edge, -step, crossing, tall)
        own = inside > away  # the stroke lives in this line: the box cut it
        out.append(int(away[own].max()) if own.any() else 0)
    return Overflow(*out)


def page_overflows(page, boxes: list[tuple[float, float, float, float]], zoom: float = 2.0) -> list[Overflow]:
    """:func:`overflow` of boxes given in PDF points (y down) on a PyMuPDF page rendered at
    ``zoom`` pixels per point; the counts are in those pixels."""
    from synth.mupdf import pymupdf
    from synth.ocr1.render import display_list

    # Through the display list, so shared faces draw unstretched, as the engine draws them.
    pix = display_list(page).get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), colorspace=pymupdf.csGRAY, alpha=False)
    grey = np.frombuffer(pix.samples_mv, dtype=np.uint8).reshape(pix.height, pix.stride)[:, :pix.width]
    px = [tuple(v * zoom for v in b) for b in boxes]
    cover = np.zeros(grey.shape, dtype=np.int32)  # how many line boxes cover each pixel
    for b in px:
        c0, c1, top, bot = _rows_cols(b, *grey.shape)
        cover[top:bot + 1, c0:c1] += 1
    out = []
    for b in px:
        c0, c1, top, bot = _rows_cols(b, *grey.shape)
        cover[top:bot + 1, c0:c1] -= 1  # the others' boxes only
        out.append(overflow(grey, b, cover == 0))
        cover[top:bot + 1, c0:c1] += 1
    return out


def survey(config, seeds, zoom: float = 2.0) -> dict[tuple[str, str], dict[str, float]]:
    """Per (language, font family): lines measured, lines with ink above / below their box,
    and the most rows (in PDF points) left out, over the pages of ``seeds`` under
    ``config`` (an ocr1 Config; give it no sideways blocks and no margin notes: their lines
    run up or down the page, and this measures the page's top and bottom edges)."""
    from synth.ocr1 import render_pdf
    from synth.ocr1.readback import read_regions
    from synth.ocr1.render import open_page

    out: dict[tuple[str, str], dict[str, float]] = {}
    for seed in seeds:
        pdf, plan, drawn = render_pdf(config, np.random.default_rng(seed))
        page = open_page(pdf)
        regions, _ = read_regions(page, drawn, plan.lang, plan.font_size)
        boxes = [b for r in regions for _t, b in r.lines]
        st = out.setdefault((plan.lang, plan.family), {"lines": 0, "above": 0, "below": 0, "max_above_pt": 0.0,
                                                       "max_below_pt": 0.0})
        for o in page_overflows(page, boxes, zoom):
            st["lines"] += 1
            st["above"] += o.above > 0
            st["below"] += o.below > 0
            st["max_above_pt"] = max(st["max_above_pt"], o.above / zoom)
            st["max_below_pt"] = max(st["max_below_pt"], o.below / zoom)
    return out
