"""Inline math: short formulas set inside paragraph lines, and how they are read back.

A formula is rasterised by mathtext (``equations.rasterize``) in the page's math fontset
and placed in the paragraph with reportlab's ``<img>`` tag. The image is scaled to the
body font size, and its ink sits on the baseline as mathtext set it. reportlab's ``<img>``
reads a file (it refuses ``data:`` URIs), so each process writes its formula PNGs into
a private temporary directory, removed when the process exits. The PDF embeds the
pixels, not the path, so the bytes do not depend on the directory.

Read-back does not trust the plan. PyMuPDF reports every drawn image with the MD5 of its
pixels (``page.get_image_info(hashes=True)``). A pixel digest names the formula that was
rasterised to those pixels (:func:`latex_for_digest`), and the image's box places it
among the words.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import shutil
import tempfile

import numpy as np

# Pixel digest -> LaTeX of every formula this process has rasterised for inline use.
_DIGESTS: dict[bytes, str] = {}
_DIRS: dict[int, str] = {}  # pid -> its temporary directory


def _directory() -> str:
    """This process's directory of formula PNGs (a forked worker makes its own)."""
    pid = os.getpid()
    if pid not in _DIRS:
        path = tempfile.mkdtemp(prefix="ocr1-math-")
        _DIRS[pid] = path
        # Only the process that made the directory removes it.
        atexit.register(lambda: os.getpid() == pid and shutil.rmtree(path, ignore_errors=True))
    return _DIRS[pid]


@functools.lru_cache(maxsize=None)
def _png(latex: str, fontset: str, pid: int) -> str:
    from synth.ocr1 import equations

    img = equations.rasterize(latex, fontset)[0]
    _DIGESTS[hashlib.md5(np.asarray(img).tobytes()).digest()] = latex
    path = os.path.join(_directory(), f"{len(os.listdir(_directory()))}.png")
    img.save(path)
    return path


def markup(latex: str, fontset: str, font_size: float) -> str:
    """The reportlab ``<img>`` tag that sets ``latex`` inline at ``font_size`` points."""
    from synth.ocr1 import equations

    _img, w, h, descent = equations.rasterize(latex, fontset)
    scale = font_size / 12.0  # formulas are rasterised at 12 pt
    path = _png(latex, fontset, os.getpid())
    return (f'<img src="{path}" width="{w * scale:.2f}" height="{h * scale:.2f}" '
            f'valign="{-descent * scale:.2f}"/>')


def latex_for_digest(digest: bytes) -> str | None:
    """The LaTeX of the inline formula whose pixels have this MD5, if this process drew it."""
    return _DIGESTS.get(bytes(digest))


def token(latex: str) -> str:
    """How an inline formula is written in the targets: ``\\( latex \\)``."""
    return f"\\( {latex} \\)"
