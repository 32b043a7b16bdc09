"""A light diagonal watermark word behind the text ("DRAFT", "CONFIDENTIAL", "机密").

It is drawn first, as an image, so the page's text lies on top of it and PyMuPDF reads no
words from it: the targets stay the document's text, and a model learns to read through
the watermark rather than transcribe it (what document OCR benchmarks expect). Its grey
stays lighter than the ink threshold the tests use for text (160), so it never passes
for unannotated ink.
"""

from __future__ import annotations

import functools
import io
import math
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WORDS = {
    "en": ("DRAFT", "CONFIDENTIAL", "SAMPLE", "COPY", "PREPRINT", "INTERNAL USE ONLY", "DO NOT DISTRIBUTE"),
    "zh": ("草稿", "机密", "样稿", "内部资料", "副本", "仅供参考"),
}
_PX_PER_PT = 2.0  # above the ~1.2 px/pt a 1024 px page is rasterised at


@dataclass
class Watermark:
    """The word, its rendered image (grey on white) and where it goes (PDF points, y up)."""

    text: str
    image: Image.Image
    x: float
    y: float
    w: float
    h: float


@functools.lru_cache(maxsize=4)
def _font_bytes(lang: str) -> bytes:
    if lang == "zh":
        from synth.mupdf import pymupdf

        return bytes(pymupdf.Font("cjk").buffer)  # Droid Sans Fallback, which the pages use too
    from synth.ocr1.fonts import mpl_font_dir

    with open(os.path.join(mpl_font_dir(), "DejaVuSans-Bold.ttf"), "rb") as fh:
        return fh.read()


def make(rng: np.random.Generator, lang: str, live: tuple[float, float, float, float]) -> Watermark:
    """A watermark for a page whose live area is ``live`` (x0, y0, x1, y1 in points): one
    word of ``WORDS``, turned 25-55 degrees, in a grey of 200-230, centred near the live
    area's centre and as long as 45-75 % of its diagonal (never outside it)."""
    text = WORDS[lang][int(rng.integers(len(WORDS[lang])))]
    angle = float(rng.uniform(25, 55))
    grey = int(rng.integers(200, 231))
    x0, y0, x1, y1 = live
    lw, lh = x1 - x0, y1 - y0
    length = math.hypot(lw, lh) * float(rng.uniform(0.45, 0.75))
    probe = ImageFont.truetype(io.BytesIO(_font_bytes(lang)), 100)
    size_px = max(8, int(100 * length * _PX_PER_PT / max(1.0, probe.getlength(text))))
    font = ImageFont.truetype(io.BytesIO(_font_bytes(lang)), size_px)
    left, top, right, bottom = font.getbbox(text)
    mask = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(mask).text((2 - left, 2 - top), text, font=font, fill=255)
    mask = mask.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    mask = mask.crop(mask.getbbox())
    w, h = mask.width / _PX_PER_PT, mask.height / _PX_PER_PT
    shrink = min(1.0, 0.95 * lw / w, 0.95 * lh / h)  # a long word on a narrow page
    if shrink < 1.0:
        mask = mask.resize((max(1, round(mask.width * shrink)), max(1, round(mask.height * shrink))),
                           Image.Resampling.LANCZOS)
        w, h = w * shrink, h * shrink
    # Ink = white blended toward the grey by the glyph coverage. One grey channel: the PDF
    # holds a third of an RGB copy's bytes, and MuPDF draws from it the very pixels it drew
    # from the RGB copy (tested).
    cover = np.asarray(mask, dtype=np.float32) / 255.0
    image = Image.fromarray(np.rint(255.0 - cover * (255.0 - grey)).astype(np.uint8))
    cx = x0 + lw / 2 + float(rng.uniform(-0.1, 0.1)) * lw
    cy = y0 + lh / 2 + float(rng.uniform(-0.1, 0.1)) * lh
    x = min(max(cx - w / 2, x0), x1 - w)
    y = min(max(cy - h / 2, y0), y1 - h)
    return Watermark(text, image, x, y, w, h)
