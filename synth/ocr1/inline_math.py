"""Inline math: short formulas set inside paragraph lines, and how they are read back.

Formulas come from a finite pool (:func:`pick`; entry *i* is the grammar's formula
seeded from *i*, the same in every process), as display equations do. A formula is
rasterised by mathtext (``equations.rasterize``, once per node) in the page's math
fontset and placed in the paragraph with reportlab's ``<img>`` tag. The image is scaled to the
body font size, and its ink sits on the baseline as mathtext set it.

reportlab's ``<img>`` names its image by a ``src`` string, which its paragraph parser opens
as a file (``paraparser.ImageReader``). Formulas are not files: their ``src`` is
``ocr1-math:<fontset>:<hex of the LaTeX>`` (:func:`source`), which :func:`image_reader`
resolves to an ImageReader of the formula's cached PNG, made once per process; every
other ``src`` goes to reportlab's own reader, as before. (They used to be PNG files in a
private temporary directory, written once per formula and process and read, decoded and
digested again at each use: 0.5 ms a file here, about a millisecond a page.) The PDF
embeds the pixels, so its bytes are the same either way.

Read-back takes what was drawn from the PDF: PyMuPDF reports every drawn image with the
MD5 of its pixels (``page.get_image_info(hashes=True)``), and the image's box places it
among the words. The digest is named by the formulas planned *on that page* (each
paragraph's tag carries its formulas' digests, :func:`digest`): two LaTeX strings can
draw the same pixels (``\\epsilon`` and ``\\varepsilon`` in some fontsets), so a
process-wide digest table would name an image by whichever this process drew first,
and the targets would depend on the process's history.
"""

from __future__ import annotations

import functools
import io

import numpy as np
from reportlab.lib.utils import ImageReader
from reportlab.platypus import paraparser

_SCHEME = "ocr1-math:"


# The pool of inline formulas: entry i is the grammar's formula seeded from i, so it is the
# same formula in every process, and each is rasterised once per node (synth.cache).
_POOL_SEED = 0x494E4C
_MEMO = 4096  # in-process bound of the memos below (pools are finite; recipes may ask for large ones)


@functools.lru_cache(maxsize=_MEMO)
def entry(index: int) -> str:
    """Pool entry ``index``: ``equation_grammar.inline_formula`` seeded from it."""
    from synth.ocr1.equation_grammar import inline_formula

    return inline_formula(np.random.default_rng(np.random.SeedSequence([_POOL_SEED, index])))


def pick(rng: np.random.Generator, pool: int) -> str:
    """One inline formula from a pool of ``pool`` entries."""
    return entry(int(rng.integers(pool)))


def source(latex: str, fontset: str) -> str:
    """The ``<img src>`` that names a formula's image (see :func:`image_reader`)."""
    return f"{_SCHEME}{fontset}:{latex.encode('utf-8').hex()}"


@functools.lru_cache(maxsize=_MEMO)
def _formula_reader(src: str) -> ImageReader:
    from synth.ocr1 import equations

    fontset, hexed = src[len(_SCHEME):].split(":", 1)
    return ImageReader(io.BytesIO(equations.product(bytes.fromhex(hexed).decode("utf-8"), fontset)["png"].tobytes()))


def image_reader(src):
    """reportlab's ``ImageReader(src)`` for a paragraph's ``<img>``, except that a formula's
    :func:`source` gives the formula's image from memory (one reader per formula and
    process, its pixels decoded once)."""
    if isinstance(src, str) and src.startswith(_SCHEME):
        return _formula_reader(src)
    return ImageReader(src)


# The paragraph parser looks its reader up by this module-level name as it meets an <img>.
paraparser.ImageReader = image_reader


def pixel_size(latex: str, fontset: str) -> tuple[int, int]:
    """(width, height) in pixels of the formula's image: read-back digests only images of
    the sizes a page planned."""
    from synth.ocr1 import equations

    h, w = equations.product(latex, fontset)["grey"].shape
    return int(w), int(h)


def digest(latex: str, fontset: str) -> str:
    """Hex MD5 of the pixels the formula is drawn with: what PyMuPDF reports for its image."""
    from synth.ocr1 import equations

    return str(equations.product(latex, fontset)["md5"])


def markup(latex: str, fontset: str, font_size: float) -> str:
    """The reportlab ``<img>`` tag that sets ``latex`` inline at ``font_size`` points."""
    from synth.ocr1 import equations

    w, h, descent = (float(v) for v in equations.product(latex, fontset)["metrics"])
    scale = font_size / 12.0  # formulas are rasterised at 12 pt
    return (f'<img src="{source(latex, fontset)}" width="{w * scale:.2f}" height="{h * scale:.2f}" '
            f'valign="{-descent * scale:.2f}"/>')


def token(latex: str) -> str:
    """How an inline formula is written in the targets: ``\\( latex \\)``."""
    return f"\\( {latex} \\)"
