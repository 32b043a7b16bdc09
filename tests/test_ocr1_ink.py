"""Line boxes contain their glyphs, in every face (issue 17, item 4).

Before the Chinese faces declared the ascent their ideographs reach (``fonts.CJK_ASCENT``),
PyMuPDF's glyph-cell boxes cut the tops off 21 % (Droid Sans Fallback) and 39 %
(STSong-Light) of Chinese lines, up to 1 pt (``bench/bench_ocr1.py --ink 20``).
"""

from __future__ import annotations

import numpy as np
import pytest

from synth.ocr1 import Config
from synth.ocr1.config import BLOCK_KINDS
from synth.ocr1.fonts import CJK_FAMILIES, LATIN_FAMILIES
from synth.ocr1.inkcheck import overflow, survey


def test_overflow_counts_a_cut_glyph_but_not_the_line_above():
    """A stroke that runs mostly inside the box and pokes 2 rows above it is counted; a
    descender of the line above that reaches 1 row into the box is not."""
    grey = np.full((40, 30), 255, dtype=np.uint8)
    grey[8:20, 5:7] = 0  # this line's stem: rows 8-19, the box starts at row 10
    grey[2:11, 20:22] = 0  # the line above's descender: rows 2-10, one row into the box
    got = overflow(grey, (0.0, 10.0, 30.0, 22.0))
    assert (got.above, got.below) == (2, 0)
    assert overflow(grey, (0.0, 8.0, 30.0, 22.0)).above == 0  # a box that holds the stem


@pytest.mark.parametrize("family", CJK_FAMILIES + LATIN_FAMILIES)
def test_line_boxes_hold_their_ink(family):
    """Every upright line of two pages set in ``family``: no row of its ink above or below
    its box (page rendered at 2 px per point, so half a point would show)."""
    lang = "zh" if family in CJK_FAMILIES else "en"
    blocks = {k: v for k, v in Config().blocks.items() if k in BLOCK_KINDS and not k.startswith("sideways")}
    cfg = Config(langs={lang: 1.0}, fonts=[family], blocks=blocks, margin_note_prob=0.0)
    (key, st), = survey(cfg, range(2)).items()
    assert key == (lang, family) and st["lines"] >= 20
    assert (st["above"], st["below"]) == (0, 0), st
