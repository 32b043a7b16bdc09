"""Figures placed in pages: a chart from the chart family when it is installed, else a
text-free vector drawing (bars, lines, dots, pie) made with reportlab.graphics.

Figures carry no PDF text on purpose: whatever text a chart shows is pixels, so every
word PyMuPDF reads back belongs to a text-bearing region.
"""

from __future__ import annotations

import functools
import io

import numpy as np
from reportlab.graphics.shapes import Circle, Drawing, Line, PolyLine, Rect, Wedge
from reportlab.lib import colors

_PALETTE = (
    colors.HexColor("#1f77b4"), colors.HexColor("#ff7f0e"), colors.HexColor("#2ca02c"),
    colors.HexColor("#d62728"), colors.HexColor("#9467bd"), colors.HexColor("#555555"),
)


_POOL_PX = 640  # width of pooled charts: above the ~1.2 px/pt of a 1024 px A4 page


# Bump when _chart_arrays's output changes: the node cache then draws the charts again.
_BUILD_VERSION = 1


def _chart_arrays(index: int, lang: str) -> dict[str, np.ndarray]:
    from PIL import Image

    from synth.charts import figure_png

    rng = np.random.default_rng([0x0C41, index, 1 if lang == "zh" else 0])
    aspect = float(rng.uniform(0.5, 0.75))
    png, _truth = figure_png(rng, _POOL_PX, int(_POOL_PX * aspect), lang)
    img = Image.open(io.BytesIO(png)).convert("RGB")
    buf = io.BytesIO()
    # JPEG passes through reportlab untouched (DCTDecode): no per-page zlib of raw pixels.
    img.save(buf, format="JPEG", quality=92, subsampling=0, optimize=False)
    return {"jpeg": np.frombuffer(buf.getvalue(), dtype=np.uint8), "aspect": np.asarray(img.height / img.width)}


@functools.lru_cache(maxsize=1024)
def _pooled_chart(index: int, lang: str) -> tuple[bytes, float] | None:
    """Chart ``index`` of the pool: (JPEG bytes, height/width), or None without charts.

    Each entry is a pure function of (index, lang): its own Generator is seeded from them,
    so a page that draws pool index i gets the same chart in every process. A chart costs
    30-200 ms to draw, so it is drawn once per node and kept in ``synth.cache`` (keyed by
    the chart family's source and the versions of the libraries that draw it).
    """
    import importlib.util

    if importlib.util.find_spec("synth.charts") is None:
        return None
    from synth import cache

    k = cache.key("ocr1-chart", _BUILD_VERSION, index, lang, _POOL_PX,
                  cache.library_versions("matplotlib", "numpy", "pillow", "pymupdf"),
                  cache.source_digest("synth.charts", __name__))
    a = cache.load_or_build("ocr1-chart", k, lambda: _chart_arrays(index, lang), lock=False)
    return a["jpeg"].tobytes(), float(a["aspect"])


def chart(rng: np.random.Generator, pool: int, lang: str):
    """A pooled chart as (reportlab ImageReader, height/width), or None when synth.charts is missing.

    Charts cost tens of milliseconds to draw, so pages reuse a pool of ``pool`` charts per
    language, each drawn once per node (see :func:`_pooled_chart`).
    """
    entry = _pooled_chart(int(rng.integers(pool)), lang)
    if entry is None:
        return None
    from reportlab.lib.utils import ImageReader

    return ImageReader(io.BytesIO(entry[0])), entry[1]


def warm_pool(pool: int, langs=("en", "zh")) -> None:
    """Draw every pooled chart now (benchmarks call this to measure the steady state)."""
    for lang in langs:
        for i in range(pool):
            _pooled_chart(i, lang)


def drawing(rng: np.random.Generator, w: float, h: float) -> Drawing:
    """A text-free plot-like vector figure of size w x h points."""
    d = Drawing(w, h)
    kind = int(rng.integers(4))
    pad = 0.08 * min(w, h)
    x0, y0, x1, y1 = pad, pad, w - pad, h - pad
    axis = colors.black
    if kind != 3:  # axes for the cartesian kinds
        d.add(Line(x0, y0, x1, y0, strokeColor=axis, strokeWidth=0.8))
        d.add(Line(x0, y0, x0, y1, strokeColor=axis, strokeWidth=0.8))
    if kind == 0:  # bars
        n = int(rng.integers(3, 9))
        bw = (x1 - x0) / (n * 1.5 + 0.5)
        for i in range(n):
            bh = float(rng.uniform(0.1, 1.0)) * (y1 - y0)
            col = _PALETTE[int(rng.integers(len(_PALETTE)))] if i == 0 else d.contents[-1].fillColor
            d.add(Rect(x0 + bw * (0.5 + 1.5 * i), y0, bw, bh, fillColor=col, strokeColor=None))
    elif kind == 1:  # lines
        for s in range(int(rng.integers(1, 4))):
            n = int(rng.integers(5, 15))
            xs = np.linspace(x0 + 2, x1, n)
            ys = y0 + (y1 - y0) * np.clip(np.cumsum(rng.normal(0, 0.15, n)) + 0.5, 0.02, 1.0)
            pts = [float(v) for xy in zip(xs, ys) for v in xy]
            d.add(PolyLine(pts, strokeColor=_PALETTE[s], strokeWidth=1.2))
    elif kind == 2:  # scatter
        col = _PALETTE[int(rng.integers(len(_PALETTE)))]
        for _ in range(int(rng.integers(15, 60))):
            d.add(Circle(float(rng.uniform(x0 + 3, x1 - 3)), float(rng.uniform(y0 + 3, y1 - 3)), 1.6,
                         fillColor=col, strokeColor=None))
    else:  # pie
        fr = rng.dirichlet(np.ones(int(rng.integers(3, 7))))
        cx, cy, r = w / 2, h / 2, 0.42 * min(w, h)
        start = 90.0
        for i, f in enumerate(fr):
            ext = float(f) * 360.0
            d.add(Wedge(cx, cy, r, start, start + ext, fillColor=_PALETTE[i % len(_PALETTE)],
                        strokeColor=colors.white, strokeWidth=0.8))
            start += ext
    return d
