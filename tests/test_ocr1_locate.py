"""Text-location records of OCR 1.0 pages: phrases read from the PDF and boxed where printed."""

from __future__ import annotations

import numpy as np
import pytest

from annotate import ocr1 as ann
from annotate import prompts
from synth.ocr1 import Config, generate, locate, render_pdf
from synth.ocr1.render import open_page
from synth.rows import sample_to_row


def _cfg(lang: str, **kw) -> Config:
    return Config(**{"langs": {lang: 1.0}, "image_format": "png", "locate_queries": 3, **kw})


def test_occurrences_are_whole_words_in_english_and_substrings_in_chinese():
    def run(text: str, x0: float = 0.0, y0: float = 0.0):
        return text, [(x0 + 5.0 * i, y0, x0 + 5.0 * i + 5.0, y0 + 10.0) for i in range(len(text))]

    runs = [run("the other theme, the end"), run("bathe the", y0=20.0), run("先天下之忧而忧", y0=40.0),
            run("of the-", y0=60.0)]  # "the-": a word hyphenated over the line end, not "the"
    boxes = locate.occurrences("the", runs, whole_words=True)
    assert boxes == [(0.0, 0.0, 15.0, 10.0), (85.0, 0.0, 100.0, 10.0), (30.0, 20.0, 45.0, 30.0)]
    assert locate.occurrences("忧", runs, whole_words=False) == [(20.0, 40.0, 25.0, 50.0), (30.0, 40.0, 35.0, 50.0)]
    assert locate.occurrences("之忧而", runs, whole_words=False) == [(15.0, 40.0, 30.0, 50.0)]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_box_holds_its_phrase_and_every_printing_is_boxed(lang):
    asked = 0
    for seed in range(4):
        pdf, plan, _drawn = render_pdf(_cfg(lang), np.random.default_rng(seed))
        page = open_page(pdf)
        text = generate(_cfg(lang), np.random.default_rng(seed)).text
        queries = locate.queries(page, lang, np.random.default_rng(100 + seed), 3, text)
        assert queries
        runs = locate.runs(page)
        for q in queries:
            assert 1 <= len(q.boxes) <= locate.MAX_OCCURRENCES
            if lang == "zh":
                assert 2 <= len(q.text) <= 8 and all(locate._ideograph(c) for c in q.text)
                printed = sum(t.count(q.text) for t, _b in runs)
            else:
                assert 1 <= len(q.text.split(" ")) <= 4
                printed = len(locate.occurrences(q.text, runs, whole_words=True))
            assert len(q.boxes) == printed
            for box in q.boxes:  # the PDF's own text inside the box is the phrase
                got = page.get_textbox(box)
                squash = (lambda t: "".join(t.split())) if lang == "zh" else (lambda t: " ".join(t.split()))
                assert squash(q.text) in squash(got), (q.text, got)
            asked += 1
    assert asked >= 8


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_generated_pages_carry_checked_location_records(lang):
    for seed in range(2):
        s = generate(_cfg(lang, scan_prob=0.5), np.random.default_rng(seed))
        recs = ann.records(s)
        loc = [r for r in recs if r.task == prompts.TASK_LOCATE]
        assert len(loc) == len(s.truth["locate"]) >= 1
        for r, q in zip(loc, s.truth["locate"]):
            assert r.prompt == f"<image>\nLocate <|ref|>{q['text']}<|/ref|> in the image."
            assert r.target == prompts.det(q["text"], q["boxes"])
        row = sample_to_row(f"t/loc/{lang}/{seed}", s, recs)
        assert ann.check(row) == []
        # A located phrase moved onto blank paper, or a record that disagrees, is caught.
        bad = dict(row, records=[dict(r) for r in row["records"]])
        bad["records"][-1]["target"] = prompts.det(s.truth["locate"][-1]["text"], [[0, 0, 3, 3]])
        assert any("text-location records disagree" in p for p in ann.check(bad))


def test_queries_leave_the_image_and_other_records_alone():
    a = generate(_cfg("en", locate_queries=0, scan_prob=1.0), np.random.default_rng(5))
    b = generate(_cfg("en", locate_queries=2, scan_prob=1.0), np.random.default_rng(5))
    assert a.image == b.image and a.text == b.text and a.truth["locate"] == []
    assert [r.target for r in ann.records(a)] == [r.target for r in ann.records(b)][:3]
    assert len(ann.records(b)) == 3 + len(b.truth["locate"])
