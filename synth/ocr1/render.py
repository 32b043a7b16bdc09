"""Rasterise the first PDF page with PyMuPDF, optionally apply the realism looks, encode."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from synth.mupdf import pymupdf
from PIL import Image


def open_page(pdf: bytes):
    """The first page of a PDF given as bytes (the document stays referenced by the page)."""
    doc = pymupdf.open(stream=pdf, filetype="pdf")
    return doc[0]


def display_list(page):
    """The page's drawing commands, interpreted once from the PDF: the pixmap and the
    TextPage (``readback.PageText``) both run it, rather than each parsing the page."""
    return page.get_displaylist()


def rasterize(page, long_side: int, drawing=None) -> tuple[Image.Image, float]:
    """Render the page (from its ``display_list`` when given) so its longer side is
    ``long_side`` px; return (RGB image, px per pt)."""
    rect = page.rect
    scale = long_side / max(rect.width, rect.height)
    source = drawing if drawing is not None else page
    pix = source.get_pixmap(matrix=pymupdf.Matrix(scale, scale), alpha=False, colorspace=pymupdf.csRGB)
    # One copy of the pixels, straight from the pixmap's memory (``samples`` would copy
    # them into bytes first).
    return Image.frombytes("RGB", (pix.width, pix.height), pix.samples_mv), scale


def apply_realism(img: Image.Image, rng: np.random.Generator, scan: bool,
                  photo: bool) -> tuple[Image.Image, Callable[[np.ndarray], np.ndarray] | None]:
    """Apply synth.realism's scan/photo looks; (image, point mapper) or (image, None) when off.

    Raises ImportError naming the missing module when a look is asked for but
    synth.realism is not installed.
    """
    if not (scan or photo):
        return img, None
    try:
        from synth import realism
    except ImportError as exc:
        raise ImportError("ocr1: scan_prob/photo_prob > 0 need synth.realism.apply, which is missing") from exc
    return realism.apply(img, rng, scan=scan, photo=photo)


def encode(img: Image.Image, fmt: str, jpeg_quality: int = 90, png_level: int = 6) -> bytes:
    """Encode without metadata, with fixed options, so equal pixels give equal bytes."""
    buf = io.BytesIO()
    if fmt == "jpeg":
        img.save(buf, format="JPEG", quality=jpeg_quality, subsampling=2, optimize=False, progressive=False)
    elif fmt == "png":
        img.save(buf, format="PNG", compress_level=png_level, optimize=False)
    else:
        raise ValueError(f"image_format {fmt!r} is not supported; valid: 'jpeg', 'png'")
    return buf.getvalue()
