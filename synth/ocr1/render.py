"""Rasterise the first PDF page with PyMuPDF, optionally apply the realism looks, encode."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable

import numpy as np
from synth.mupdf import pymupdf, unstretch_shared_fonts
from PIL import Image


def open_page(pdf: bytes):
    """The first page of a PDF given as bytes (the document stays referenced by the page)."""
    doc = pymupdf.open(stream=pdf, filetype="pdf")
    return doc[0]


def display_list(page):
    """The page's drawing commands, interpreted once from the PDF: the pixmap and the
    TextPage (``readback.PageText``) both run it, rather than each parsing the page. The
    page's fonts are loaded by then, so the shared ones are unstretched here
    (``synth.mupdf.unstretch_shared_fonts``)."""
    drawing = page.get_displaylist()
    unstretch_shared_fonts()
    return drawing


class _Pixels:
    """The pixels of a PyMuPDF pixmap as a read-only numpy array without a copy: the array
    keeps this object, and so the pixmap and its memory, alive."""

    def __init__(self, pix):
        self.pix = pix
        self.__array_interface__ = {"version": 3, "shape": (pix.height, pix.width, pix.n), "typestr": "|u1",
                                    "data": (pix.samples_ptr, True), "strides": (pix.stride, pix.n, 1)}


def rasterize(page, long_side: int, drawing=None, bgr: bool = False) -> tuple[np.ndarray, float]:
    """Render the page (from its ``display_list`` when given) so its longer side is
    ``long_side`` px; return (RGB pixels, (h, w, 3) uint8 read-only, px per pt).

    With ``bgr`` the channels come in OpenCV's order (blue, green, red), as :func:`encode`
    takes them with ``bgr``: MuPDF draws into a BGR pixmap the same values it draws into
    an RGB one (tested), so a page stored as drawn skips a channel swap (0.4 ms at 1024 px)."""
    rect = page.rect
    scale = long_side / max(rect.width, rect.height)
    source = drawing if drawing is not None else display_list(page)
    colorspace = _bgr() if bgr else pymupdf.csRGB
    pix = source.get_pixmap(matrix=pymupdf.Matrix(scale, scale), alpha=False, colorspace=colorspace)
    return np.asarray(_Pixels(pix)), scale


@functools.lru_cache(maxsize=1)
def _bgr():
    """MuPDF's device BGR colour space as a PyMuPDF Colorspace (made once)."""
    return pymupdf.Colorspace(pymupdf.mupdf.fz_device_bgr())


def apply_realism(img: np.ndarray, rng: np.random.Generator, scan: bool,
                  photo: bool) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray] | None]:
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


def encode(img: np.ndarray, fmt: str, jpeg_quality: int = 90, png_level: int = 6, bgr: bool = False) -> bytes:
    """Encode (h, w) grey or (h, w, 3) RGB pixels (BGR with ``bgr``) without metadata, with
    fixed options, so equal pixels give equal bytes.

    JPEG goes through OpenCV's libjpeg-turbo straight from the array (baseline, 4:2:0, no
    optimised tables: the same bytes as PIL's encoder with those options, without PIL's
    copy of the pixels); PNG through PIL."""
    if fmt == "jpeg":
        from synth.opencv import cv2

        pixels = img if img.ndim == 2 or bgr else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
        ok, data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality),
                                                 cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
                                                 cv2.IMWRITE_JPEG_OPTIMIZE, 0, cv2.IMWRITE_JPEG_PROGRESSIVE, 0])
        if not ok:
            raise RuntimeError(f"OpenCV could not encode a {img.shape} page as JPEG")
        return data.tobytes()
    if fmt == "png":
        if bgr and img.ndim == 3:
            img = np.ascontiguousarray(img[:, :, ::-1])
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG", compress_level=png_level, optimize=False)
        return buf.getvalue()
    raise ValueError(f"image_format {fmt!r} is not supported; valid: 'jpeg', 'png'")
