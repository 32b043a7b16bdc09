"""Code listings on OCR 1.0 pages: the snippet pools, their colours, and the read-back."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from annotate import ocr1 as ann
from synth.ocr1 import Config, code_block, code_sources, generate, render_pdf
from synth.ocr1.readback import read_regions
from synth.ocr1.render import open_page
from synth.rows import sample_to_row


def _cfg(lang: str, **kw) -> Config:
    return Config(langs={lang: 1.0}, image_format="png", blocks={"code": 1.0, "paragraph": 0.3},
                  inner_page_prob=0.0, **kw)


def test_pools_hold_clean_dedented_listings():
    pools = code_sources.pools()
    sizes = {k: len(v) for k, v in pools.items()}
    assert sizes["python"] > 1000 and sizes["doctest"] > 50 and sizes["c"] > 500, sizes
    for kind, pool in pools.items():
        assert [s.width for s in pool] == sorted(s.width for s in pool)
        for s in pool:
            assert s.kind == kind
            assert code_sources.MIN_LINES <= len(s.lines) <= code_sources.MAX_LINES
            assert all(ln == ln.rstrip() and ln.isascii() and "\t" not in ln for ln in s.lines), s.lines
            assert s.lines[-1].strip() and any(ln and not ln.startswith(" ") for ln in s.lines), s.lines
    assert all(s.lines[0].startswith((("def ", "class ", "async def "))) for s in pools["python"])
    assert all(s.lines[0].startswith(">>> ") for s in pools["doctest"])


def test_picks_fit_the_width_and_follow_the_seed():
    kinds = Counter()
    for seed in range(60):
        width = 24 + seed
        s = code_sources.pick(np.random.default_rng(seed), width)
        again = code_sources.pick(np.random.default_rng(seed), width)
        assert s == again
        if s is None:
            continue
        kinds[s.kind] += 1
        assert s.width <= width
        if s.kind == "json":
            assert isinstance(json.loads("\n".join(s.lines)), dict)
    assert set(kinds) == set(code_sources.KINDS), kinds


def test_colours_keep_every_character_in_its_column():
    pool = code_sources.pools()["python"]
    docstrings = 0
    for s in pool[::40]:
        runs = code_block.colour_listing(s.lines, code_block.PALETTES[0])
        for line, segments in zip(s.lines, runs):
            rebuilt = ""
            for col, text, _rgb in segments:
                assert col >= len(rebuilt)
                rebuilt = rebuilt.ljust(col) + text
            assert rebuilt == line
        # The lines between a docstring's opening line and its closing one are string-coloured.
        quoted = [i for i, ln in enumerate(s.lines) if '"""' in ln]
        if quoted and s.lines[quoted[0]].count('"""') == 1 and len(quoted) > 1:
            for i in range(quoted[0] + 1, quoted[1]):
                assert all(rgb == code_block.PALETTES[0]["string"] for _c, _t, rgb in runs[i]), s.lines
                docstrings += bool(s.lines[i])
    assert docstrings > 5
    plain = code_block.colour_listing(("x = 1  # one",), None)
    assert plain == [[(0, "x = 1  # one", code_block.BLACK)]]
    # C: every character in its column too, and a comment's inner lines in the comment colour.
    comment = code_block.PALETTES[1]["comment"]
    commented = 0
    for s in code_sources.pools()["c"][::10]:
        runs = code_block.colour_listing(s.lines, code_block.PALETTES[1], "c")
        for line, segments in zip(s.lines, runs):
            rebuilt = ""
            for col, text, _rgb in segments:
                rebuilt = rebuilt.ljust(col) + text
            assert rebuilt == line
        for i, line in enumerate(s.lines):
            if line.lstrip().startswith("* ") and i and "/*" in "".join(s.lines[:i]) and "*/" not in "".join(s.lines[:i]):
                assert all(rgb == comment for _c, _t, rgb in runs[i]), s.lines
                commented += 1
    assert commented > 5


@pytest.mark.parametrize("lang,seeds", [("en", range(8)), ("zh", range(4))])
def test_listings_read_back_character_for_character(lang, seeds):
    """Every drawn listing reads back exactly as planned (indentation, inner spaces, blank
    lines), fenced in the markdown, in the free OCR text, one grounded line per non-blank
    line; the generated pages pass check()."""
    seen = Counter()
    for seed in seeds:
        pdf, plan, drawn = render_pdf(_cfg(lang), np.random.default_rng(seed))
        regions, orphans = read_regions(open_page(pdf), drawn, plan.lang, plan.font_size)
        assert orphans == 0
        planned = [r["tag"] for r in drawn if r["tag"].get("code")]
        read = [r for r in regions if r.content.startswith("```")]
        assert len(planned) == len(read) > 0
        for tag, region in zip(planned, read):
            want = "\n".join(tag["code_lines"])
            assert region.label == "text"
            assert region.plain == want
            assert region.content == f"```\n{want}\n```"
            assert [t for t, _b in region.lines] == [ln.strip() for ln in tag["code_lines"] if ln.strip()]
            seen[tag["code"]] += 1
            seen["indented"] += any(ln.startswith("  ") for ln in tag["code_lines"])
            seen["blank line"] += any(not ln for ln in tag["code_lines"])
            seen["inner spaces"] += any("  " in ln.strip() for ln in tag["code_lines"])
        s = generate(_cfg(lang), np.random.default_rng(seed))
        assert all(r.plain in s.text for r in read)
        assert ann.check(sample_to_row(f"t/code/{lang}/{seed}", s, ann.records(s))) == []
    for what in ("python", "json", "c", "indented", "blank line", "inner spaces"):
        assert seen[what] > 0, seen


def test_listings_are_set_small_only_as_far_as_they_must_be():
    for seed in range(20):
        block = code_block.make(np.random.default_rng(seed), 160.0, 10.0)
        if block is None:
            continue
        width = max(len(ln) for ln in block.tag["code_lines"])
        assert 8.0 - 1e-9 <= block.size <= 9.5
        assert width * block.advance <= 160.0 - 2 * block.pad + 1e-6
