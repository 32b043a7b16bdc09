"""Hyphenated OCR 1.0 pages: words broken over a line end are read back whole."""

from __future__ import annotations

import numpy as np

from annotate import ocr1 as ann
from synth.ocr1 import Config, generate, render_pdf
from synth.ocr1.readback import read_regions
from synth.ocr1.render import open_page
from synth.rows import sample_to_row

FLOWING = ("text", "list", "image_caption", "table_caption", "footnote")


def _cfg(prob: float, **kw) -> Config:
    return Config(**{"langs": {"en": 1.0}, "image_format": "png", "hyphenate_prob": prob, "columns": {"2": 1.0},
                     "inline_math_prob": 0.0, **kw})


def _read(cfg: Config, seed: int):
    pdf, plan, drawn = render_pdf(cfg, np.random.default_rng(seed))
    regions, _ = read_regions(open_page(pdf), drawn, "en", plan.font_size)
    words = {w for r in drawn for w in (r.get("source") or "").split()}
    return regions, words


def _breaks(region, words: set[str]) -> list[tuple[str, str]]:
    """(last word of a line, first word of the next) where hyphenation broke a source word."""
    out = []
    for (a, _ba), (b, _bb) in zip(region.lines, region.lines[1:]):
        head, tail = a.split()[-1], b.split()[0]
        if head.endswith("-") and head[:-1] + tail in words:
            out.append((head, tail))
    return out


def test_hyphenated_words_are_read_back_whole():
    """Lines keep their printed pieces; the text joins them into the source's word; every
    other word of the text is a word of the source."""
    joined = 0
    for seed in range(6):
        regions, words = _read(_cfg(1.0), seed)
        for r in regions:
            if r.label not in FLOWING:
                continue
            for head, tail in _breaks(r, words):
                assert f"{head} {tail}" not in r.plain and f"{head}{tail}" not in r.plain
                assert head[:-1] + tail in r.plain.split(), (head, tail, r.plain)
                joined += 1
            tokens = r.plain.split()
            # A word broken where the region ends (the paragraph goes on in the next column)
            # stays as printed; list bullets and sub-item dashes are the list's own marks.
            strays = [t for k, t in enumerate(tokens) if t not in words and t not in ("•", "\u2013")
                      and not (k == len(tokens) - 1 and t.endswith("-")) and not t.rstrip(".").isdigit()]
            assert not strays, (seed, r.label, strays)
    assert joined >= 40


def test_pages_without_hyphenation_break_no_word():
    for seed in range(3):
        regions, words = _read(_cfg(0.0), seed)
        assert not [b for r in regions if r.label in FLOWING for b in _breaks(r, words)]


def test_hyphenated_pages_pass_check_and_say_so():
    for seed in range(2):
        s = generate(_cfg(1.0, scan_prob=0.5), np.random.default_rng(seed))
        assert s.truth["hyphenated"] is True
        assert any(ln.text.endswith("-") for ln in s.lines)  # line grounding keeps the pieces
        assert ann.check(sample_to_row(f"t/hyph/{seed}", s, ann.records(s))) == []
    zh = generate(Config(langs={"zh": 1.0}, hyphenate_prob=1.0), np.random.default_rng(0))
    assert zh.truth["hyphenated"] is False  # Chinese is not hyphenated


def test_patterns_come_from_the_node_cache_as_pyphen_parses_them(tmp_path, monkeypatch):
    """The cached patterns are pyphen's own, and a process that finds them in the node cache
    hyphenates its pages without parsing the pattern file (40 ms a process)."""
    import pyphen

    from synth.ocr1 import hyphenation

    monkeypatch.setenv("SYNTH_CACHE_DIR", str(tmp_path))
    path = pyphen.LANGUAGES[pyphen.language_fallback(hyphenation.LANG)]
    own = pyphen.HyphDict(path)
    monkeypatch.setattr(pyphen, "hdcache", {})
    hyphenation.ready.cache_clear()
    hyphenation.ready()  # builds the cached arrays
    assert vars(pyphen.hdcache[path]) == vars(own) and list(tmp_path.glob("hyphenation/*.bin"))

    # A fresh process's view: nothing parsed yet, the node cache filled.
    monkeypatch.setattr(pyphen, "hdcache", {})
    hyphenation.ready.cache_clear()

    def parse(self, path):
        raise AssertionError(f"pyphen parsed {path}")

    monkeypatch.setattr(pyphen.HyphDict, "__init__", parse)
    sample = generate(_cfg(1.0), np.random.default_rng(3))
    hd = pyphen.hdcache[path]
    assert sample.truth["hyphenated"] and hd.cache  # it hyphenated words with the cached patterns
    assert (hd.patterns, hd.maxlen) == (own.patterns, own.maxlen)
    hyphenation.ready.cache_clear()


def test_a_process_remembers_a_bounded_number_of_hyphenated_words(tmp_path, monkeypatch):
    """pyphen remembers every word it hyphenated, and a worker's memory grew with its pages;
    the patterns the node cache gives keep at most hyphenation._WORDS words, and a forgotten
    word gets the same points again."""
    import pyphen

    from synth.ocr1 import hyphenation
    from synth.text_sources import english_paragraph

    monkeypatch.setenv("SYNTH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(hyphenation, "_WORDS", 16)
    monkeypatch.setattr(pyphen, "hdcache", {})
    hyphenation.ready.cache_clear()
    hyphenation.ready()
    path = pyphen.LANGUAGES[pyphen.language_fallback(hyphenation.LANG)]
    ours, own = pyphen.hdcache[path], pyphen.HyphDict(path)
    rng = np.random.default_rng(0)
    words = list(dict.fromkeys(w.strip(".,;:()\"'") for _ in range(4) for w in english_paragraph(rng, 5).split()))
    assert len(words) > 50
    for _ in range(2):  # the second pass meets words the memo has forgotten
        assert [ours.positions(w) for w in words] == [own.positions(w) for w in words]
    assert len(ours.cache) == 16 and len(own.cache) > 50
    hyphenation.ready.cache_clear()
