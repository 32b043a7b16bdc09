"""Tests of the ocr1 family on pages it really generates (English and Chinese)."""

from __future__ import annotations

import html
import io
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from annotate import ocr1 as ann
from annotate import prompts
from formats.bins import bins_to_box, valid_bin_box
from synth.ocr1 import Config, generate, render_pdf
from synth.rows import sample_to_row

SEEDS = {"en": (0, 1, 2, 3), "zh": (0, 1, 2)}


def _cfg(lang: str, **kw) -> Config:
    return Config(langs={lang: 1.0}, image_format="png", **kw)


@pytest.fixture(scope="module")
def pages():
    """(lang, seed, sample, row) for every test page, generated once."""
    out = []
    for lang, seeds in SEEDS.items():
        for seed in seeds:
            # Chinese pages always get a title block so both languages' titles are covered.
            s = generate(_cfg(lang, title_prob=1.0 if lang == "zh" else 0.6), np.random.default_rng(seed))
            out.append((lang, seed, s, sample_to_row(f"t/{lang}/{seed}", s, ann.records(s))))
    return out


def _gray(sample) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(sample.image)).convert("L"))


def test_pages_have_the_expected_content(pages):
    labels = Counter(r.label for _l, _s, s, _r in pages for r in s.regions)
    for must in ("text", "sub_title", "title", "table", "equation", "image", "list"):
        assert labels[must] > 0, f"no {must} region in {dict(labels)}"
    for lang, _seed, s, _row in pages:
        assert s.family == "ocr1" and s.lang == lang
        assert max(s.width, s.height) == 1024
        assert s.truth["unassigned_words"] == 0
        assert len(s.lines) >= 10 and len(s.truth["words"]) >= 10


def test_every_box_is_valid(pages):
    for _lang, _seed, s, _row in pages:
        boxes = [r.box for r in s.regions] + [ln.box for ln in s.lines] + [w[1] for w in s.truth["words"]]
        for b in boxes:
            assert valid_bin_box(b), b
            assert all(0 <= v <= 999 for v in b) and b[0] < b[2] and b[1] < b[3]


def test_words_lie_on_ink_and_margins_are_blank(pages):
    for lang, seed, s, _row in pages:
        gray = _gray(s)
        H, W = gray.shape
        for text, box in s.truth["words"]:
            x1, y1, x2, y2 = (int(round(v)) for v in bins_to_box(box, W, H))
            crop = gray[y1:y2 + 1, x1:x2 + 1]
            # Thin glyphs ("_", ".") at small sizes are anti-aliased grey, not black.
            assert crop.min() < 200, f"{lang}/{seed}: word {text!r} at {box} has no ink"
        x1, y1, x2, y2 = bins_to_box(s.truth["live_box"], W, H)
        outside = np.ones_like(gray, dtype=bool)
        outside[max(0, int(y1) - 2):int(y2) + 3, max(0, int(x1) - 2):int(x2) + 3] = False
        assert gray[outside].min() == 255, f"{lang}/{seed}: ink outside the live area"


def test_ink_belongs_to_regions(pages):
    for lang, seed, s, _row in pages:
        gray = _gray(s)
        H, W = gray.shape
        inside = np.zeros_like(gray, dtype=bool)
        for r in s.regions:
            x1, y1, x2, y2 = bins_to_box(r.box, W, H)
            inside[max(0, int(y1) - 2):int(y2) + 3, max(0, int(x1) - 2):int(x2) + 3] = True
        ink = gray < 160
        assert ink[inside].sum() / max(1, ink.sum()) > 0.995, f"{lang}/{seed}: ink outside region boxes"


def test_region_boxes_contain_their_lines(pages):
    for _lang, _seed, s, _row in pages:
        # Equation regions hold a line when numbered: the number.
        text_boxes = [r.box for r in s.regions if r.label != "image"]
        for ln in s.lines:
            assert any(b[0] <= ln.box[0] and b[1] <= ln.box[1] and ln.box[2] <= b[2] and ln.box[3] <= b[3]
                       for b in text_boxes), ln


@pytest.mark.parametrize("lang,seed,hyphenate", [("en", 1, 0.4), ("zh", 2, 0.4), ("en", 1, 1.0)])
def test_free_ocr_equals_pdf_text(lang, seed, hyphenate):
    import pymupdf

    cfg = _cfg(lang, hyphenate_prob=hyphenate)
    sample = generate(cfg, np.random.default_rng(seed))
    pdf, _plan, drawn = render_pdf(cfg, np.random.default_rng(seed))
    page = pymupdf.open(stream=pdf, filetype="pdf")[0]
    pdf_words = [w[4] for w in page.get_text("words")]
    truth_words = [w for w, _b in sample.truth["words"]]
    # The formulas drawn on the page, found as the read-back finds them (by their pixels'
    # digests), not by "\(" in the text: a code listing may print that too.
    from synth.ocr1.readback import _inline_math_tokens

    formulas = [tok[4] for tok in _inline_math_tokens(page, drawn, emphasis=False)]
    if lang == "zh" and formulas:  # a Chinese word running across a formula is cut there
        assert Counter("".join(truth_words)) == Counter("".join(pdf_words)) and len(truth_words) >= len(pdf_words)
    else:
        assert sorted(truth_words) == sorted(pdf_words)
    pdf_chars = Counter("".join(page.get_text("text").split()))
    # Inline formulas are images in the PDF; the free-OCR text writes them \( latex \).
    text = sample.text
    for token in formulas:
        text = text.replace(token, "", 1)
    got = Counter("".join(text.split()))
    if sample.truth["hyphenated"]:  # words hyphenated over a line end lose their hyphen
        assert got["-"] <= pdf_chars["-"]
        got["-"] = pdf_chars["-"]
    assert got == pdf_chars
    free = next(r for r in ann.records(sample) if r.task == prompts.TASK_FREE)
    assert free.prompt == prompts.FREE_OCR and free.target == sample.text


@pytest.mark.parametrize("family", ["STSong", "DroidSansFallback"])
def test_chinese_glyphs_are_real_ink(family):
    s = generate(_cfg("zh", fonts=[family]), np.random.default_rng(5))
    assert s.truth["font"] == family
    han = [(t, b) for t, b in s.truth["words"] if re.search(r"[\u4e00-\u9fff]", t)]
    assert len(han) > 5, f"{family}: no Chinese words read back"
    gray = _gray(s)
    H, W = gray.shape
    for t, b in han:
        x1, y1, x2, y2 = (int(round(v)) for v in bins_to_box(b, W, H))
        dark = (gray[y1:y2 + 1, x1:x2 + 1] < 128).sum()
        # Ideographs are dense: several dark pixels per character even at small sizes.
        assert dark >= 3 * len(t), (t, b, dark)


def test_determinism():
    cfg = Config()
    a = generate(cfg, np.random.default_rng(7))
    b = generate(cfg, np.random.default_rng(7))
    c = generate(cfg, np.random.default_rng(8))
    assert a.image == b.image and a.image_format == "jpeg"
    assert [r.target for r in ann.records(a)] == [r.target for r in ann.records(b)]
    assert a.truth == b.truth
    assert a.image != c.image
    assert ann.check(sample_to_row("t/jpeg/7", a, ann.records(a))) == []


def test_reading_order_follows_columns():
    multi = 0
    for seed in range(12):
        s = generate(Config(columns={"2": 0.5, "3": 0.5}, long_side=512), np.random.default_rng(seed))
        multi += s.truth["columns"] > 1
        body = [r for r in s.regions if r.label not in ("header", "footer", "page_number", "footnote")]
        for prev, nxt in zip(body, body[1:]):
            if nxt.box[1] < prev.box[1] - 5:  # moved up the page: must be the next column
                assert nxt.box[0] > prev.box[0], (prev, nxt)
    assert multi >= 6


def test_markdown_parses_back_to_regions(pages):
    for _lang, _seed, s, _row in pages:
        recs = ann.records(s)
        assert [r.task for r in recs] == [prompts.TASK_GROUNDED, prompts.TASK_FREE, prompts.TASK_LINES] + \
            [prompts.TASK_LOCATE] * len(s.truth["locate"])
        parsed = ann.parse_grounded(recs[0].target)
        assert parsed == [(r.label, r.box, r.text) for r in s.regions]
        assert ann.parse_lines(recs[2].target) == [(ln.text, ln.box) for ln in s.lines]
        for label, _box, content in parsed:
            if label == "title":
                assert content.startswith("# ")
            elif label == "sub_title":
                assert content.startswith("## ")
            elif label == "list":
                assert all(re.match(r"(- |\d+\. |  - |   - )", item) for item in content.split("\n")), content
            elif label == "table":
                assert content.startswith("<table><tr><td") and content.endswith("</td></tr></table>")
            elif label == "equation":
                assert content.startswith("\\[ ") and content.endswith(" \\]")
            elif label in ("image_caption", "table_caption"):
                assert content.startswith("<center>") and content.endswith("</center>")
            elif label == "image":
                assert content == ""


@pytest.mark.parametrize("family", ["Vera", "DejaVuSans", "DejaVuSerif", "STIX", "Helvetica", "Times", "Courier",
                                    "ComputerModern"])
def test_emphasis_is_read_back_from_the_drawn_fonts(family):
    """Runs set in the bold/italic face come back as **run** / *run* in the markdown, read
    from the font flags of what PyMuPDF finds drawn, across line breaks, in every family."""
    import pymupdf
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    from synth.ocr1 import fonts
    from synth.ocr1.content import _emphasised
    from synth.ocr1.readback import _emphasis_markdown, _group_lines, word_emphasis

    faces = fonts.face_set(family)
    tokens = [f"w{i:02d}q" for i in range(80)]  # unique words, none a prefix of another
    styles = [""] * len(tokens)
    for seed in range(40):  # enough paragraphs for runs of every length and both faces
        markup = _emphasised(np.random.default_rng(seed), " ".join(tokens), faces)
        if markup.count("<font") == 2:
            break
    for face, run in re.findall(r'<font name="([^"]+)">([^<]+)</font>', markup):
        first = tokens.index(run.split(" ")[0])
        for k in range(len(run.split(" "))):
            styles[first + k] = "bold" if face == faces["bold"] else "italic"
    assert sum(map(bool, styles)) >= 2
    expected, i = [], 0
    while i < len(tokens):
        j = i
        while j < len(tokens) and styles[j] == styles[i]:
            j += 1
        mark = {"bold": "**", "italic": "*", "": ""}[styles[i]]
        expected.append(mark + " ".join(tokens[i:j]) + mark)
        i = j
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, invariant=1, leftMargin=72, rightMargin=300)  # narrow: many lines
    doc.build([Paragraph(markup, ParagraphStyle("b", fontName=faces["regular"], fontSize=10, leading=13))])
    page = pymupdf.open(stream=buf.getvalue(), filetype="pdf")[0]
    words = page.get_text("words", flags=pymupdf.TEXTFLAGS_WORDS)
    assert len({w[3] for w in words}) > 3  # the paragraph really wraps
    found = word_emphasis(page, words)
    styled = [tuple(w) + (st,) for w, st in zip(words, found)]
    assert _emphasis_markdown(_group_lines(styled), "en") == " ".join(expected)


def test_emphasised_paragraphs_in_generated_pages():
    # Unhyphenated, so a region's text is its words as printed (tests/test_ocr1_hyphenation.py).
    on = [generate(_cfg("en", emphasis_prob=1.0, hyphenate_prob=0.0), np.random.default_rng(seed)) for seed in (0, 1)]
    marked = [r.text for s in on for r in s.regions if r.label == "text" and re.search(r"\*\*\S|\*\S", r.text)]
    assert len(marked) >= 4
    for s in on:  # the stored row still verifies: targets, boxes, ink
        assert ann.check(sample_to_row("t/emph", s, ann.records(s))) == []
        # Marks are the only difference between a text region's markdown and the page's words.
        words = " ".join(t for t, _b in s.truth["words"])
        for r in s.regions:
            if r.label == "text":
                assert re.sub(r"\*{1,3}(?=\S)|(?<=\S)\*{1,3}", "", r.text) in words
    off = generate(_cfg("en", emphasis_prob=0.0, inline_math_prob=0.0, hyphenate_prob=0.0), np.random.default_rng(0))
    words = " ".join(t for t, _b in off.truth["words"])
    assert all(r.text in words for r in off.regions if r.label == "text")


def _margin_note(cfg: Config, seed: int):
    """The planned rotated margin note of a page, or None."""
    _pdf, plan, _drawn = render_pdf(cfg, np.random.default_rng(seed))
    return next((d for d in plan.decorations if d.rotation), None), plan


def test_margin_notes_are_read_along_their_rotated_line():
    """A line turned +-90 degrees in a side margin comes back as one line with its words in
    reading order, a tall narrow box inside that margin, and passes check()."""
    rotations = set()
    for lang, seeds in (("en", range(12)), ("zh", range(6))):  # about 1 note in 5 is on the right
        for seed in seeds:
            cfg = _cfg(lang, margin_note_prob=1.0)
            note, plan = _margin_note(cfg, seed)
            if note is None:  # margin too narrow for legible text
                continue
            rotations.add(note.rotation)
            s = generate(cfg, np.random.default_rng(seed))
            region = s.regions[-1]  # read last, after the footer band
            assert region.label == "header" and region.text == note.text, (lang, seed, region)
            (line,) = [ln for ln in s.lines if ln.box == region.box]
            assert line.text == note.text
            x1, y1, x2, y2 = bins_to_box(region.box, s.width, s.height)
            assert y2 - y1 > 3 * (x2 - x1), f"{lang}/{seed}: box {region.box} is not along a vertical line"
            ml, mr = plan.margins[:2]
            scale = s.width / plan.page_w
            if note.rotation == 90:
                assert x2 < ml * scale, f"{lang}/{seed}: left note {region.box} enters the body"
            else:
                assert x1 > (plan.page_w - mr) * scale, f"{lang}/{seed}: right note {region.box} enters the body"
            assert ann.check(sample_to_row(f"t/note/{lang}/{seed}", s, ann.records(s))) == []
    assert rotations == {90, -90}


def test_inner_pages_open_mid_paragraph_without_a_title():
    for lang, seed in (("en", 0), ("en", 1), ("zh", 2)):
        cfg = _cfg(lang, inner_page_prob=1.0, title_prob=1.0)
        _pdf, plan, _drawn = render_pdf(cfg, np.random.default_rng(seed))
        carried = plan.body[0]
        assert carried.tag.get("carried_over") and not plan.title_flowables
        s = generate(cfg, np.random.default_rng(seed))
        assert s.truth["inner_page"] is True
        assert "title" not in {r.label for r in s.regions}
        first = next(r for r in s.regions if r.label not in ("header", "page_number"))
        planned = "".join(html.unescape(carried.text).split())
        assert first.label == "text" and planned.startswith("".join(first.text.split())), (first.text, planned)
        first_line = next(ln for ln in s.lines if ln.box[1] == first.box[1] and ln.box[0] >= first.box[0])
        assert abs(first_line.box[0] - first.box[0]) <= 1, "a carried-over paragraph has no first-line indent"
        assert ann.check(sample_to_row(f"t/inner/{lang}/{seed}", s, ann.records(s))) == []
    off = generate(_cfg("en", inner_page_prob=0.0, title_prob=1.0), np.random.default_rng(0))
    assert off.truth["inner_page"] is False and off.regions[0].label in ("header", "page_number", "title")


def test_table_html_has_consistent_spans():
    seen_span = False
    for seed in range(40):
        s = generate(Config(blocks={"table": 1.0, "paragraph": 0.3}, image_format="png", long_side=512),
                     np.random.default_rng(seed))
        for r in s.regions:
            if r.label != "table":
                continue
            rows = re.findall(r"<tr>(.*?)</tr>", r.text)
            widths = []
            pending: dict[int, int] = {}  # row -> columns occupied by rowspans from above
            for i, row in enumerate(rows):
                width = pending.get(i, 0)
                for m in re.finditer(r'<td(?: rowspan="(\d+)")?(?: colspan="(\d+)")?>', row):
                    rs, cs = int(m.group(1) or 1), int(m.group(2) or 1)
                    seen_span |= rs > 1 or cs > 1
                    width += cs
                    for k in range(1, rs):
                        pending[i + k] = pending.get(i + k, 0) + cs
                widths.append(width)
            assert len(set(widths)) == 1, r.text  # every row covers the same number of columns
        if seen_span:
            break
    assert seen_span


def test_check_passes_and_catches_tampering(pages):
    for _lang, _seed, _s, row in pages:
        assert ann.check(row) == []
    _lang, _seed, s, row = pages[0]
    gray = _gray(s)
    H, W = gray.shape
    # Move one word's box to a blank strip of the top margin.
    live = s.truth["live_box"]
    bad = dict(row)
    truth = dict(s.truth)
    words = [list(w) for w in truth["words"]]
    words[3] = [words[3][0], [10, 0, 60, max(1, live[1] - 2)]]
    truth["words"] = words
    import json

    bad["truth"] = json.dumps(truth)
    assert any("lies on no ink" in p for p in ann.check(bad))
    # A region box that disagrees with the grounded target.
    bad2 = dict(row)
    regions = [dict(r) for r in row["regions"]]
    x1, y1, x2, y2 = regions[0]["box"]
    regions[0]["box"] = [x1, y1, min(999, x2 + 5), y2]
    bad2["regions"] = regions
    assert any("grounded target disagrees" in p for p in ann.check(bad2))
    bad3 = dict(row, regions=[dict(r, label="paragraph") if i == 0 else r for i, r in enumerate(row["regions"])])
    assert any("unknown label" in p for p in ann.check(bad3))


def test_overlay_draws_boxes(pages):
    _lang, _seed, s, row = pages[0]
    img = ann.overlay(row)
    assert img.size == (s.width, s.height)
    before = np.asarray(Image.open(io.BytesIO(s.image)).convert("RGB")).astype(int)
    after = np.asarray(img).astype(int)
    assert (np.abs(after - before).sum(axis=2) > 0).mean() > 0.005


def test_realism_boxes_follow_the_warp():
    cfg = Config(scan_prob=1.0, photo_prob=1.0, long_side=768)
    s = generate(cfg, np.random.default_rng(3))
    assert s.truth["realism"] == {"scan": True, "photo": True}
    row = sample_to_row("t/real/3", s, ann.records(s))
    assert all(valid_bin_box(r["box"]) for r in row["regions"])
    problems = ann.check(row)
    # Photographed pages may blur a few tiny words below the contrast threshold; the
    # vast majority must still sit on ink.
    off = sum(1 for p in problems if "no ink" in p)
    assert off <= 1, problems


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="image_format"):
        generate({"image_format": "gif"}, np.random.default_rng(0))
    with pytest.raises(ValueError, match="columns"):
        generate({"columns": {"4": 1.0}}, np.random.default_rng(0))
    with pytest.raises(ValueError, match="fonts"):
        generate({"langs": {"zh": 1.0}, "fonts": ["Times"]}, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown keys"):
        generate({"colour": True}, np.random.default_rng(0))


def test_equation_pool_renders_what_its_latex_says():
    """Every entry of the default pool parses in mathtext and leaves ink; grammar entries are
    the same in every process (seeded by index), distinct, and within the glyph budget."""
    from synth.ocr1 import equations
    from synth.ocr1.equation_grammar import MAX_GLYPHS, visible_length

    pool = Config().equation_pool
    latex = [equations.entry(i) for i in range(pool)]
    assert latex[:len(equations.POOL)] == list(equations.POOL)
    generated = latex[len(equations.POOL):]
    assert len(set(generated)) == len(generated) and all(visible_length(e) <= MAX_GLYPHS for e in generated)
    kinds = {k for e in generated for k in (r"\frac", r"\sqrt", r"\sum", r"\int", r"\lim", r"\left|", "_{", "^{")
             if k in e}
    assert len(kinds) == 8, kinds
    for e in latex:
        img, w, h = equations.render(e)
        assert w > 5 and h > 3 and np.asarray(img.convert("L")).min() < 100, e
    for fontset in equations.FONTSETS[1:]:  # the others on every 8th entry (all pass; slow)
        for e in latex[::8]:
            img, w, h = equations.render(e, fontset)
            assert w > 5 and h > 3 and np.asarray(img.convert("L")).min() < 100, (fontset, e)
    # Each fontset really draws its own glyphs.
    looks = {equations.render(r"g\left(b_{2}\right) = \alpha", f)[0].tobytes() for f in equations.FONTSETS}
    assert len(looks) == len(equations.FONTSETS)
    equations.entry.cache_clear()
    assert [equations.entry(i) for i in range(pool)] == latex
    # Pages draw from the whole pool: an equation region's LaTeX is a pool entry.
    s = generate(_cfg("en", blocks={"equation": 1.0, "paragraph": 1.0}, equation_pool=pool), np.random.default_rng(4))
    eqs = [r.text for r in s.regions if r.label == "equation"]
    assert eqs and all(re.sub(r" \\tag\{[\d.]+\}$", "", e[3:-3]) in latex for e in eqs)


def test_wide_floats_span_the_columns_above_the_body():
    """A multi-column page's wide figure or table is wider than a column, lies above every
    body column's text and comes before it in reading order; check() still passes."""
    seen = set()
    for seed in range(12):
        cfg = _cfg("en" if seed % 2 else "zh", wide_float_prob=1.0, columns={"2": 1.0, "3": 1.0}, title_prob=0.5)
        _pdf, plan, _drawn = render_pdf(cfg, np.random.default_rng(seed))
        planned = [f.tag["label"] for f in plan.title_flowables if getattr(f, "tag", {}).get("label") in ("image", "table")]
        if plan.columns < 2 or not planned:  # narrow pages drop columns; a table may not fit
            continue
        s = generate(cfg, np.random.default_rng(seed))
        scale = 999 / plan.page_w
        col_w = (plan.page_w - plan.margins[0] - plan.margins[1] - (plan.columns - 1) * plan.gutter) / plan.columns
        labels = [r.label for r in s.regions]
        i = next(k for k, r in enumerate(s.regions) if r.label in ("image", "table"))
        wide = s.regions[i]
        assert wide.label == planned[0]
        assert wide.box[2] - wide.box[0] > col_w * scale + 2, (seed, wide.box, col_w * scale)
        seen.add(wide.label)
        caption = {"image": "image_caption", "table": "table_caption"}[wide.label]
        assert caption in labels[max(0, i - 1):i + 2], labels  # the caption is beside it
        body = [r for r in s.regions[i + 2:] if r.label in ("text", "sub_title", "list")]
        assert body and all(r.box[1] >= wide.box[3] for r in body), (seed, wide.box)
        assert ann.check(sample_to_row(f"t/wide/{seed}", s, ann.records(s))) == []
    assert seen == {"image", "table"}


def test_phrase_cells_read_back_whole_across_their_line_break():
    """Header and row-label cells holding phrases, some broken over two lines, come back in
    the table HTML as the phrase, its lines joined as the language joins words."""
    from synth.ocr1.flowables import TTable

    broken = 0
    for lang, seed in (("en", 0), ("en", 1), ("zh", 2), ("zh", 3)):
        cfg = _cfg(lang, blocks={"table": 1.0, "paragraph": 0.2}, table_phrase_prob=1.0)
        _pdf, plan, _drawn = render_pdf(cfg, np.random.default_rng(seed))
        planned = [t for t in plan.title_flowables + plan.body if isinstance(t, TTable)]  # in drawing order
        s = generate(cfg, np.random.default_rng(seed))
        tables = [r.text for r in s.regions if r.label == "table"]
        assert planned and len(tables) >= 1
        sep = "" if lang == "zh" else " "
        for t, html_table in zip(planned, tables):  # tables are drawn in plan order
            got = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", html_table)]
            want = [c.replace("\n", sep) for row in t._cellvalues for c in row if c]
            assert [c for c in got if c] == want, (lang, seed)
            broken += sum("\n" in c for row in t._cellvalues for c in row)
        assert ann.check(sample_to_row(f"t/phrase/{lang}/{seed}", s, ann.records(s))) == []
    assert broken >= 3


def _planned_list_markdown(flow, lang: str) -> list[str]:
    """The markdown lines a planned (possibly nested) TList should read back as."""
    from reportlab.platypus import ListFlowable, Paragraph

    out = []
    for i, item in enumerate(flow._flowables):
        parts = item._flowables
        lead = f"{i + 1}. " if flow.tag["numbered"] else "- "
        # A bold lead term is planned as <font name="...">term</font>: markdown's **term**.
        out.append(lead + html.unescape(re.sub(r'<font name="[^"]+">(.*?)</font>', r"**\1**", parts[0].text)))
        for sub in (p for p in parts[1:] if isinstance(p, ListFlowable)):
            for sub_item in sub._flowables:
                para = sub_item._flowables[0]
                assert isinstance(para, Paragraph)
                out.append(" " * len(lead) + "- " + html.unescape(para.text))
    return out


def test_nested_and_definition_lists_read_back_with_their_structure():
    from synth.ocr1.content import make_plan
    from synth.ocr1.flowables import TList

    nested = bold = 0
    for lang, seed, emph in (("en", 0, 0.0), ("en", 1, 1.0), ("en", 2, 0.5), ("zh", 3, 1.0), ("zh", 4, 0.0)):
        cfg = _cfg(lang, blocks={"list": 1.0, "paragraph": 0.3}, nested_list_prob=1.0, emphasis_prob=emph)
        plan = make_plan(cfg, np.random.default_rng(seed))  # unbuilt: building consumes _flowables
        planned = [f for f in plan.body if isinstance(f, TList)]
        if not planned:  # e.g. a landscape page with three columns: no list fits a column
            continue
        s = generate(cfg, np.random.default_rng(seed))
        lists = [r.text for r in s.regions if r.label == "list"]
        assert lists
        squash = (lambda t: "".join(t.split())) if lang == "zh" else (lambda t: " ".join(t.split()))
        for flow, md in zip(planned, lists):  # lists are never split, so they come in plan order
            want = _planned_list_markdown(flow, lang)
            got = md.split("\n")
            assert len(got) == len(want), (lang, seed, md, want)
            for g, w in zip(got, want):
                indent = len(w) - len(w.lstrip(" "))
                assert g[:indent] == w[:indent] and squash(g) == squash(w), (lang, seed, g, w)
            nested += sum(line.startswith(" ") for line in got)
            bold += sum("**" in line for line in got)
        assert ann.check(sample_to_row(f"t/nested/{lang}/{seed}", s, ann.records(s))) == []
    assert nested >= 10 and bold >= 6  # definition-style items: a bold term read back from the font


def _sideways_page(cfg: Config, seed: int, label: str):
    """(planned TRotated blocks, the sample, its ``label`` regions, their captions) of a page
    whose body is mostly sideways blocks."""
    from synth.ocr1.content import make_plan
    from synth.ocr1.flowables import TRotated

    plan = make_plan(cfg, np.random.default_rng(seed))  # unbuilt: the blocks keep their flowables
    planned = [f for f in plan.body if isinstance(f, TRotated)]
    s = generate(cfg, np.random.default_rng(seed))
    return (planned, s, [r for r in s.regions if r.label == label],
            [r for r in s.regions if r.label == f"{label}_caption"])


def _caption_reads_as_planned(read: str, planned_markup: str, lang: str) -> bool:
    """A ``<center>…</center>`` caption against its planned paragraph markup (a bold label
    planned as ``<font name=…>`` reads back as ``**…**``), whitespace aside."""
    squash = "".join if lang == "zh" else " ".join
    want = re.sub(r'<font name="[^"]+">(.*?)</font>', r"**\1**", planned_markup)
    return squash(read[len("<center>"):-len("</center>")].split()) == squash(html.unescape(want).split())


def test_sideways_tables_read_back_cell_by_cell():
    """A table turned 90 degrees comes back with the planned cell texts (lines grouped
    upward), its caption read upward too, and vertical word boxes; check() passes."""
    done = 0
    for lang, seed in (("en", 0), ("en", 1), ("zh", 2), ("zh", 3)):
        cfg = _cfg(lang, blocks={"sideways_table": 1.0, "paragraph": 0.3}, table_phrase_prob=0.5, wide_float_prob=0.0)
        planned, s, tables, captions = _sideways_page(cfg, seed, "table")
        assert planned and tables, (lang, seed)
        sep = "" if lang == "zh" else " "
        for block, region, caption in zip(planned, tables, captions):
            cap, table = block.flowables
            want = [c.replace("\n", sep) for row in table._cellvalues for c in row if c]
            got = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", region.text) if c]
            assert got == want, (lang, seed)
            assert _caption_reads_as_planned(caption.text, cap.text, lang), (lang, seed, caption.text)
            done += 1
        words = [b for t, b in s.truth["words"] if len(t) >= 3]
        x1, y1, x2, y2 = tables[0].box
        inside = [bins_to_box(b, s.width, s.height) for b in words
                  if x1 <= b[0] and b[2] <= x2 and y1 <= b[1] and b[3] <= y2]
        assert inside and all(b[3] - b[1] > b[2] - b[0] for b in inside), (lang, seed)  # in pixels
        assert ann.check(sample_to_row(f"t/sideways/{lang}/{seed}", s, ann.records(s))) == []
    assert done >= 4


def test_sideways_figures_turn_with_their_captions():
    """A landscape figure turned 90 degrees: its region is the rotated drawing (taller than
    wide on the page), its caption is read upward as planned and sits to its right; check()
    passes."""
    done = 0
    for lang, seed in (("en", 2), ("en", 3), ("zh", 4)):
        cfg = _cfg(lang, blocks={"sideways_figure": 1.0, "paragraph": 0.3}, wide_float_prob=0.0, chart_prob=0.5)
        planned, s, images, captions = _sideways_page(cfg, seed, "image")
        assert planned and images and len(images) == len(captions), (lang, seed)
        for block, image, caption in zip(planned, images, captions):
            fig, cap = block.flowables
            assert fig.tag["rotation"] == cap.tag["rotation"] == 90
            x1, y1, x2, y2 = image.box
            assert y2 - y1 > x2 - x1, (lang, seed, image.box)  # turned: its width runs down the page
            cx1, cy1, cx2, cy2 = caption.box
            assert cy2 - cy1 > 3 * (cx2 - cx1) and cx1 >= x2 - 2, (lang, seed, caption.box)
            assert _caption_reads_as_planned(caption.text, cap.text, lang), (lang, seed, caption.text)
            done += 1
        assert ann.check(sample_to_row(f"t/sideways-figure/{lang}/{seed}", s, ann.records(s))) == []
    assert done >= 3


@pytest.mark.parametrize("lang,seed", [("en", 1), ("zh", 2)])
def test_a_watermark_changes_pixels_but_no_target(lang, seed):
    """A watermark lies behind the text as a light image: the same page with and without
    it has the same regions, lines, words and free OCR; it only lightly greys pixels, inside
    the margins."""
    from synth.ocr1 import watermark

    plain = generate(_cfg(lang, watermark_prob=0.0), np.random.default_rng(seed))
    marked = generate(_cfg(lang, watermark_prob=1.0), np.random.default_rng(seed))
    assert plain.truth["watermark"] is None and marked.truth["watermark"] in watermark.WORDS[lang]
    assert marked.regions == plain.regions and marked.lines == plain.lines and marked.text == plain.text
    assert marked.truth["words"] == plain.truth["words"]
    a, b = _gray(plain).astype(int), _gray(marked).astype(int)
    changed = b != a
    assert changed.sum() > 2000  # a large word
    assert b[changed & (a == 255)].min() >= 195  # on paper it is a light grey, never ink
    H, W = a.shape
    x1, y1, x2, y2 = bins_to_box(marked.truth["live_box"], W, H)
    ys, xs = np.nonzero(changed)
    assert xs.min() >= x1 - 2 and xs.max() <= x2 + 2 and ys.min() >= y1 - 2 and ys.max() <= y2 + 2


@pytest.mark.parametrize("lang,seed", [("en", 1), ("zh", 2), ("en", 5)])
def test_a_grey_watermark_draws_the_pixels_of_its_rgb_copy(lang, seed, monkeypatch):
    """The watermark is stored in the PDF as one grey channel, a third of the bytes of the
    RGB image it used to be; MuPDF draws the page's pixels exactly as from the RGB copy."""
    from synth.ocr1 import watermark

    cfg = _cfg(lang, watermark_prob=1.0)
    grey = generate(cfg, np.random.default_rng(seed))
    make = watermark.make

    def rgb(*args, **kwargs):
        wm = make(*args, **kwargs)
        assert wm.image.mode == "L"
        wm.image = wm.image.convert("RGB")
        return wm

    monkeypatch.setattr(watermark, "make", rgb)
    as_rgb = generate(cfg, np.random.default_rng(seed))
    assert grey.truth["watermark"] is not None
    assert np.array_equal(_gray(grey), _gray(as_rgb)) and grey.image == as_rgb.image


def test_computer_modern_pages_avoid_characters_its_ot1_slots_misdraw():
    """Computer Modern draws < > _ { } | " \\ ~ ^ ` as other glyphs (TeX's OT1 layout), so
    its pages never contain them, while pages in other families still do."""
    from synth.ocr1 import fonts

    bad = set(fonts.UNDRAWABLE["ComputerModern"])
    cm_text, other_text = "", ""
    for seed in range(6):
        s = generate(_cfg("en", fonts=["ComputerModern"], emphasis_prob=1.0), np.random.default_rng(seed))
        assert s.truth["font"] == "ComputerModern"
        cm_text += " ".join(t for t, _b in s.truth["words"])
        assert ann.check(sample_to_row(f"t/cm/{seed}", s, ann.records(s))) == []
        assert any("**" in r.text or re.search(r"(?<!\*)\*\S", r.text) for r in s.regions if r.label == "text")
        other = generate(_cfg("en", fonts=["DejaVuSerif"]), np.random.default_rng(seed))
        other_text += " ".join(t for t, _b in other.truth["words"])
    assert len(cm_text) > 10_000 and not set(cm_text) & bad
    assert set(other_text) & bad  # the filter is what keeps them out


def test_accent_coloured_headings_are_ink_and_read_back():
    """Titles and headings in an accent colour: the pixels under them are coloured, the
    words still read back, and check() (which looks for ink under every word) passes."""
    for seed in range(3):
        s = generate(_cfg("en", accent_prob=1.0, title_prob=1.0, inner_page_prob=0.0,
                          blocks={"heading": 1.0, "paragraph": 1.0}), np.random.default_rng(seed))
        rgb = np.asarray(Image.open(io.BytesIO(s.image)).convert("RGB")).astype(int)
        for region in (r for r in s.regions if r.label in ("title", "sub_title")):
            x1, y1, x2, y2 = (int(round(v)) for v in bins_to_box(region.box, s.width, s.height))
            crop = rgb[y1:y2 + 1, x1:x2 + 1].reshape(-1, 3)
            ink = crop[crop.sum(axis=1) < 450]
            # Coloured ink: the channels of the darkest pixels differ clearly.
            assert len(ink) and np.median(ink.max(axis=1) - ink.min(axis=1)) > 30, (seed, region.text)
        assert ann.check(sample_to_row(f"t/accent/{seed}", s, ann.records(s))) == []


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_inline_formulas_are_read_back_in_place_from_their_pixels(lang):
    """Every formula set in a line comes back as \\( latex \\) at its place among the words
    (between two ideographs in Chinese, where PyMuPDF's word runs across the image), named
    by the digest of the pixels PyMuPDF finds drawn; none is lost or invented."""
    import pymupdf

    from synth.ocr1 import inline_math

    def squash(t: str) -> str:
        return "".join(t.split())

    total = 0
    for seed in range(4):
        cfg = _cfg(lang, inline_math_prob=1.0, emphasis_prob=0.0, columns={"1": 1.0}, inner_page_prob=0.0)
        pdf, plan, _drawn = render_pdf(cfg, np.random.default_rng(seed))
        paras = [p for p in plan.body if getattr(p, "tag", {}).get("inline_math")]
        planned = [f for p in paras for f in p.tag["inline_math"]]
        # Each planned paragraph as its markdown should read: the <img> tags replaced, in order,
        # by the formulas' tokens.
        want = []
        for p in paras:
            latex = iter(p.tag["inline_math"])
            want.append(squash(html.unescape(re.sub(r"<img [^>]*/>", lambda _m: inline_math.token(next(latex)), p.text))))
        s = generate(cfg, np.random.default_rng(seed))
        read = [m for r in s.regions if r.label == "text" for m in re.findall(r"\\\( (.*?) \\\)", r.text)]
        # One column, so reading order is plan order; the page end may cut the last ones.
        assert read and read == planned[:len(read)], (seed, read, planned)
        page = pymupdf.open(stream=pdf, filetype="pdf")[0]
        digests = {d for p in paras for d in p.tag["inline_digests"]}
        drawn = [i for i in page.get_image_info(hashes=True) if bytes(i["digest"]).hex() in digests]
        assert len(drawn) == len(read)
        for r in s.regions:  # each formula between the very characters it was set between
            if "\\(" in r.text:
                assert any(squash(r.text) in w for w in want), (seed, r.text)
        free = s.text.count("\\( ")
        assert free == len(read)  # free OCR carries them too
        assert ann.check(sample_to_row(f"t/inline/{lang}/{seed}", s, ann.records(s))) == []
        total += len(read)
    assert total >= 8


def test_inline_formulas_drawn_alike_are_named_by_their_page():
    """\\epsilon and \\varepsilon draw the same pixels outside Computer Modern. Which one a
    target says comes from the page that planned it, not from what its process drew
    before (a process-wide digest table made targets depend on the process's history).
    Seed 22 plans the pool's ``h - h_{j} \\epsilon`` (found by search); its twin is the same
    formula with \\varepsilon, drawn by this process in between."""
    from synth.ocr1 import fonts, inline_math

    cfg = _cfg("en", inline_math_prob=1.0, emphasis_prob=0.0, columns={"1": 1.0}, inner_page_prob=0.0)
    first = generate(cfg, np.random.default_rng(22))
    _pdf, plan, _drawn = render_pdf(cfg, np.random.default_rng(22))
    fontset = fonts.MATH_FONTSET.get(plan.family, "dejavusans")
    planned = r"h - h_{j} \epsilon"
    twin = planned.replace(r"\epsilon", r"\varepsilon")
    assert planned in [f for p in plan.body for f in getattr(p, "tag", {}).get("inline_math", [])]
    assert inline_math.digest(planned, fontset) == inline_math.digest(twin, fontset)
    inline_math.markup(twin, fontset, 10.0)  # the twin, drawn by this process after
    again = generate(cfg, np.random.default_rng(22))
    assert inline_math.token(planned) in first.text and again.text == first.text


def test_reference_lists_read_back_entry_by_entry():
    """A reference list: a heading, then one text region per entry, numbered in order,
    each exactly the planned entry (hanging indent and all); check() passes."""
    from synth.ocr1.content import make_plan

    for lang, seed in (("en", 0), ("zh", 1)):
        cfg = _cfg(lang, blocks={"references": 1.0, "paragraph": 0.2}, columns={"1": 1.0}, inner_page_prob=0.0,
                   wide_float_prob=0.0)
        plan = make_plan(cfg, np.random.default_rng(seed))
        planned = [html.unescape(p.text) for p in plan.body if getattr(p, "tag", {}).get("reference")]
        s = generate(cfg, np.random.default_rng(seed))
        read = [r.text for r in s.regions if r.label == "text" and re.match(r"\[\d+\]", r.text)]
        assert len(read) >= 3
        squash = (lambda t: "".join(t.split())) if lang == "zh" else (lambda t: " ".join(t.split()))
        # One column: reading order is plan order, and the page end may cut the last entry.
        for got, want in zip(read, planned):
            assert squash(got) == squash(want) or squash(want).startswith(squash(got)), (got, want)
        numbers = [int(re.match(r"\[(\d+)\]", t).group(1)) for t in read]
        assert numbers == [int(re.match(r"\[(\d+)\]", t).group(1)) for t in planned][:len(numbers)]
        titles = [r.text for r in s.regions if r.label == "sub_title"]
        assert any(t in ("## References", "## Bibliography", "## 参考文献") for t in titles)
        assert ann.check(sample_to_row(f"t/refs/{lang}/{seed}", s, ann.records(s))) == []


def test_caption_labels_set_in_bold_are_marked_from_the_drawn_font():
    cfg = dict(blocks={"table": 1.0, "figure": 1.0, "paragraph": 0.3}, inner_page_prob=0.0)
    for seed in (0, 1):
        s = generate(_cfg("en", emphasis_prob=1.0, **cfg), np.random.default_rng(seed))
        caps = [r.text for r in s.regions if r.label in ("table_caption", "image_caption")]
        assert caps and all(re.fullmatch(r"<center>\*\*(Table|Figure) \d+:\*\* [^*]+</center>", c) for c in caps), caps
        assert ann.check(sample_to_row(f"t/cap/{seed}", s, ann.records(s))) == []
        plain = generate(_cfg("en", emphasis_prob=0.0, **cfg), np.random.default_rng(seed))
        assert all("*" not in r.text for r in plain.regions if r.label.endswith("caption"))


def test_inline_formulas_are_drawn_from_memory_and_other_images_from_their_files(tmp_path):
    """A formula's <img> names it (inline_math.source), not a file: a process sets pages
    full of formulas without writing or reading one (its temporary directory stays empty),
    the PDF holds the pixels and not the name, and an <img> of a real file still draws
    that file through reportlab's own reader."""
    import os
    import subprocess
    import sys

    from reportlab.platypus import Paragraph
    from reportlab.lib.styles import getSampleStyleSheet

    from synth.ocr1 import inline_math

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    code = ("import numpy as np; from synth.ocr1 import Config, render_pdf; "
            "pdfs = [render_pdf(Config(inline_math_prob=1.0), np.random.default_rng(s))[0] for s in range(3)]; "
            "print(sum(p.count(b'/Subtype /Image') for p in pdfs), any(b'ocr1-math' in p for p in pdfs))")
    env = {**os.environ, "TMPDIR": str(scratch)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout.split()
    assert int(out[0]) >= 3 and out[1] == "False"
    assert list(scratch.iterdir()) == []

    src = inline_math.source("x_{i}", "cm")
    assert src.startswith("ocr1-math:cm:") and inline_math.image_reader(src) is inline_math.image_reader(src)
    png = tmp_path / "dot.png"
    from PIL import Image

    Image.new("RGB", (3, 2), (200, 10, 10)).save(png)
    para = Paragraph(f'a <img src="{png}" width="6" height="4"/> b', getSampleStyleSheet()["Normal"])
    assert [f.cbDefn.image.getSize() for f in para.frags if hasattr(f, "cbDefn")] == [(3, 2)]


def test_check_accepts_small_words_in_a_photos_shadow():
    """The README's split example (manifests/mixture_demo.yaml, --split train=4 --split
    test=1) made this photographed and scanned page, whose 9 pt words in a shadow read 20-29
    grey levels against paper at 90-106: verify called the sound dataset FAILED (41 boxes
    'on no ink'). Boxes moved off their words are still caught."""
    import json

    from synth.recipe import load_recipe, row_families
    from synth.worker import make_row

    from tests.conftest import REPO

    recipe = load_recipe(REPO / "manifests" / "mixture_demo.yaml")
    assert row_families(recipe, 4)[20] == "ocr1"
    row = make_row(recipe, 4, 20, "ocr1")
    truth = json.loads(row["truth"])
    assert truth["realism"] == {"scan": True, "photo": True}
    assert ann.check(row) == []
    # Every word's box moved 20 bins down, off its line (onto the next line's words as often
    # as not): dozens now lie on no ink, and verify flags the row.
    moved = [[w, [b[0], b[1] + 20, b[2], b[3] + 20]] for w, b in truth["words"] if b[3] + 20 <= 999]
    problems = ann.check(dict(row, truth=json.dumps({**truth, "words": moved})))
    more = next(int(p.split(": ")[1].split()[0]) for p in problems if "more boxes lie on no ink" in p)
    assert more + 5 >= 40, (more, len(moved))
