"""Numbered display equations on OCR 1.0 pages: the number is read back from the PDF."""

from __future__ import annotations

import re

import numpy as np
import pytest

from annotate import ocr1 as ann
from formats.bins import box_to_bins
from synth.ocr1 import Config, generate, render_pdf
from synth.ocr1.flowables import TEquation
from synth.rows import sample_to_row


def _cfg(lang: str, prob: float) -> Config:
    return Config(langs={lang: 1.0}, image_format="png", blocks={"equation": 1.0, "paragraph": 0.5},
                  columns={"1": 1.0}, equation_number_prob=prob, inner_page_prob=0.0, wide_float_prob=0.0)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_equation_numbers_are_read_back_as_tags(lang):
    """Every drawn number comes back as ``\\tag{n}`` on its own equation, in order; the box
    takes the number in; free OCR and line grounding carry it as printed; check() passes."""
    tagged = 0
    for seed in range(3):
        cfg = _cfg(lang, 1.0)
        _pdf, plan, drawn = render_pdf(cfg, np.random.default_rng(seed))
        planned = [(f.tag["latex"], f.number) for f in plan.body if isinstance(f, TEquation)]
        drawn_latex = [r["tag"]["latex"] for r in drawn if r["tag"]["label"] == "equation"]
        s = generate(cfg, np.random.default_rng(seed))
        eqs = [r for r in s.regions if r.label == "equation"]
        assert len(eqs) == len(drawn_latex) > 0
        # One column: reading order is plan order; the page keeps the first len(eqs).
        for region, (latex, number) in zip(eqs, planned):
            assert number and re.fullmatch(r"\((\d+\.)?\d+\)", number)
            assert region.text == f"\\[ {latex} \\tag{{{number[1:-1]}}} \\]"
            assert any(ln.text == number for ln in s.lines)
            assert f"\n\n{number}\n\n" in f"\n\n{s.text}\n\n"
            tagged += 1
        nums = [int(re.search(r"\\tag\{(?:\d+\.)?(\d+)\}", r.text).group(1)) for r in eqs]
        assert nums == list(range(nums[0], nums[0] + len(nums)))
        # The region box reaches right to the number, at the column's edge.
        _ml, mr, _mt, _mb = plan.margins
        right = box_to_bins((0, 0, plan.page_w - mr, 1), plan.page_w, plan.page_h)[2]
        assert all(abs(r.box[2] - right) <= 2 for r in eqs), ([r.box for r in eqs], right)
        assert ann.check(sample_to_row(f"t/eqn/{lang}/{seed}", s, ann.records(s))) == []
    assert tagged >= 3


def test_unnumbered_equations_keep_their_image_box():
    s = generate(_cfg("en", 0.0), np.random.default_rng(0))
    eqs = [r for r in s.regions if r.label == "equation"]
    assert eqs and all("\\tag" not in r.text for r in eqs)
    _pdf, plan, _drawn = render_pdf(_cfg("en", 0.0), np.random.default_rng(0))
    # Centred images: the box is narrower than the column and centred in it.
    _ml, mr, _mt, _mb = plan.margins
    right = box_to_bins((0, 0, plan.page_w - mr, 1), plan.page_w, plan.page_h)[2]
    assert all(r.box[2] < right - 5 for r in eqs)
