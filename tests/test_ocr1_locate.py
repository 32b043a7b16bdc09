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


def test_matches_are_whole_words_in_english_and_substrings_in_chinese():
    assert locate.matches("the", "the other theme, the end", whole_words=True) == [0, 17]
    assert locate.matches("the", "bathe the", whole_words=True) == [6]
    assert locate.matches("the", "of the-", whole_words=True) == []  # "the-" goes on over the line end
    assert locate.matches("the", "the-art", whole_words=True) == [0]
    assert locate.matches("忧", "先天下之忧而忧", whole_words=False) == [4, 6]
    assert locate.matches("之忧而", "先天下之忧而忧", whole_words=False) == [3]


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
                printed = sum(r.text.count(q.text) for r in runs)
            else:
                assert 1 <= len(q.text.split(" ")) <= 4
                printed = sum(len(locate.matches(q.text, r.text, whole_words=True)) for r in runs)
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


def test_a_bad_query_count_is_refused_by_name():
    with pytest.raises(ValueError, match=r"locate_queries=11 is invalid; expected an int in 0\.\.10"):
        Config(locate_queries=11)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_clipped_characters_from_the_display_list_are_what_the_page_gives(lang):
    """Phrase boxes read a clipped rawdict of each run; made from the page's display list
    (readback.PageText.clipped_raw_blocks) it is the rawdict PyMuPDF makes by parsing the
    page with that clip, run by run."""
    from synth.mupdf import pymupdf
    from synth.ocr1.readback import PageText
    from synth.ocr1.render import display_list

    checked = 0
    for seed in range(3):
        pdf, _plan, _drawn = render_pdf(_cfg(lang), np.random.default_rng(seed))
        page = open_page(pdf)
        text = PageText(page, display_list(page))
        for run in locate.runs(text):
            x0, y0, x1, y1 = run.rect
            rect = (x0 - 0.5, y0 - 0.5, x1 + 0.5, y1 + 0.5)
            parsed = page.get_text("rawdict", flags=pymupdf.TEXTFLAGS_TEXT, clip=pymupdf.Rect(*rect))["blocks"]
            assert text.clipped_raw_blocks(rect) == parsed, (seed, run.text)
            assert PageText(page).clipped_raw_blocks(rect) == parsed  # no display list: the page's own
            checked += 1
    assert checked > 20


def _with_stencil_mask():
    """A one-page PDF that draws an 8 x 8 RGB image and an 8 x 8 stencil mask."""
    from synth.mupdf import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=200, height=200)
    rgb, mask = doc.get_new_xref(), doc.get_new_xref()
    doc.update_object(rgb, "<< /Type /XObject /Subtype /Image /Width 8 /Height 8 /ColorSpace /DeviceRGB "
                           "/BitsPerComponent 8 >>")
    doc.update_stream(rgb, bytes(range(192)), new=True, compress=False)
    doc.update_object(mask, "<< /Type /XObject /Subtype /Image /Width 8 /Height 8 /ImageMask true "
                            "/BitsPerComponent 1 >>")
    doc.update_stream(mask, bytes([0xAA, 0x55] * 4), new=True, compress=False)
    doc.xref_set_key(page.xref, "Resources", f"<< /XObject << /A {rgb} 0 R /M {mask} 0 R >> >>")
    contents = doc.get_new_xref()
    doc.update_object(contents, "<< >>")
    doc.update_stream(contents, b"q 40 0 0 30 10 20 cm /A Do Q q 0 0 1 rg 50 0 0 50 100 100 cm /M Do Q", new=True)
    doc.xref_set_key(page.xref, "Contents", f"{contents} 0 R")
    return pymupdf.open(stream=doc.tobytes(), filetype="pdf")[0]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_images_listed_from_the_display_list_are_the_textpage_images(lang):
    """Inline formulas are found among a page's drawn images (readback.PageText.images): run
    through a device that hears only image calls, the boxes and digests are the ones a
    TextPage that keeps images gives, for every image the page draws (watermarks, charts,
    formulas); a page with a stencil mask is listed through that TextPage."""
    from synth.ocr1.readback import PageText
    from synth.ocr1.render import display_list

    cfg = _cfg(lang, watermark_prob=1.0, inline_math_prob=0.8, chart_prob=0.6)
    listed = 0
    for seed in range(4):
        pdf, _plan, _drawn = render_pdf(cfg, np.random.default_rng(seed))
        page = open_page(pdf)
        sizes = {(i["width"], i["height"]) for i in page.get_image_info()}
        text = PageText(page, display_list(page))
        assert text.images(sizes) == PageText(page).images(sizes)
        listed += len(text.images(sizes))
    assert listed >= 12
    page = _with_stencil_mask()
    text = PageText(page, display_list(page))
    assert text.images({(8, 8)}) == PageText(page).images({(8, 8)}) != []
