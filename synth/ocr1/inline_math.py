"""Inline math: short formulas set inside paragraph lines, and how they are read back.

Formulas come from a finite pool (:func:`pick`; entry *i* is the grammar's formula
seeded from *i*, the same in every process), as display equations do. A formula is
rasterised by mathtext (``equations.rasterize``, once per node) in the page's math
fontset and placed in the paragraph with reportlab's ``<img>`` tag. The image is scaled to the
body font size, and its ink sits on the baseline as mathtext set it. reportlab's ``<img>``
reads a file (it refuses ``data:`` URIs), so each process writes its formula PNGs into
a private temporary directory (``<tmp>/ocr1-math/<pid>-…``; at most one file per pool
entry and fontset), removed when the process exits, or by the next process to start if
this one was killed. The PDF embeds the
pixels, not the path, so the bytes do not depend on the directory.

Read-back takes what was drawn from the PDF: PyMuPDF reports every drawn image with the
MD5 of its pixels (``page.get_image_info(hashes=True)``), and the image's box places it
among the words. The digest is named by the formulas planned *on that page* (each
paragraph's tag carries its formulas' digests, :func:`digest`): two LaTeX strings can
draw the same pixels (``\\epsilon`` and ``\\varepsilon`` in some fontsets), so a
process-wide digest table would name an image by whichever this process drew first,
and the targets would depend on the process's history.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile

import numpy as np

_DIRS: dict[int, str] = {}  # pid -> its temporary directory


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _directory() -> str:
    """This process's directory of formula PNGs (a forked worker makes its own), under a
    shared parent ``<tmp>/ocr1-math`` as ``<pid>-<random>``."""
    pid = os.getpid()
    if pid not in _DIRS:
        parent = os.path.join(tempfile.gettempdir(), "ocr1-math")
        os.makedirs(parent, exist_ok=True)
        # Processes killed without running atexit (Ray stops its workers so) leave their
        # directories behind: remove those whose process is gone.
        for name in os.listdir(parent):
            owner = name.split("-", 1)[0]
            if owner.isdigit() and int(owner) != pid and not _alive(int(owner)):
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
        path = tempfile.mkdtemp(prefix=f"{pid}-", dir=parent)
        _DIRS[pid] = path
        # Only the process that made the directory removes it.
        atexit.register(lambda: os.getpid() == pid and shutil.rmtree(path, ignore_errors=True))
    return _DIRS[pid]


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


@functools.lru_cache(maxsize=_MEMO)
def _png(latex: str, fontset: str, pid: int) -> tuple[str, str]:
    """(path, hex MD5 of the pixels) of the formula's PNG in this process's directory
    (the PNG bytes and the digest come with the node's cached raster)."""
    from synth.ocr1 import equations

    a = equations.product(latex, fontset)
    digest = str(a["md5"])
    path = os.path.join(_directory(), f"{digest}.png")  # named by its pixels
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(a["png"].tobytes())
    return path, digest


def pixel_size(latex: str, fontset: str) -> tuple[int, int]:
    """(width, height) in pixels of the formula's image: read-back digests only images of
    the sizes a page planned."""
    from synth.ocr1 import equations

    h, w = equations.product(latex, fontset)["grey"].shape
    return int(w), int(h)


def digest(latex: str, fontset: str) -> str:
    """Hex MD5 of the pixels the formula is drawn with: what PyMuPDF reports for its image."""
    return _png(latex, fontset, os.getpid())[1]


def markup(latex: str, fontset: str, font_size: float) -> str:
    """The reportlab ``<img>`` tag that sets ``latex`` inline at ``font_size`` points."""
    from synth.ocr1 import equations

    w, h, descent = (float(v) for v in equations.product(latex, fontset)["metrics"])
    scale = font_size / 12.0  # formulas are rasterised at 12 pt
    path = _png(latex, fontset, os.getpid())[0]
    return (f'<img src="{path}" width="{w * scale:.2f}" height="{h * scale:.2f}" '
            f'valign="{-descent * scale:.2f}"/>')


def token(latex: str) -> str:
    """How an inline formula is written in the targets: ``\\( latex \\)``."""
    return f"\\( {latex} \\)"
