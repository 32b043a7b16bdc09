"""Text sources: the Chinese lexicon's characters render and read back; draws are seeded."""

from __future__ import annotations

import io

import numpy as np
import pytest

from synth import text_sources as ts


def test_chinese_prose_covers_thousands_of_characters():
    rng = np.random.default_rng(0)
    text = ts.chinese_paragraph(rng, 2000)
    han = {c for c in text if "\u4e00" <= c <= "\u9fff"}
    # Faker's 346-word list, used before, had 384 characters; real text needs thousands.
    assert len(han) > 2500, len(han)
    counts = {c: text.count(c) for c in "的是在国中"}
    assert min(counts.values()) > 20, counts  # common characters stay common
    nouns = ts.words(np.random.default_rng(1), "zh", 200)
    assert len(set(nouns)) > 190 and all(len(w) >= 2 for w in nouns)


def test_chinese_sentences_follow_the_clause_templates():
    """Function words sit where the templates put them: "的" between an attribute and a
    noun (never first), clauses joined by commas, one final stop."""
    rng = np.random.default_rng(5)
    sents = [ts.chinese_sentence(rng) for _ in range(400)]
    assert all(s[-1] in "。！？" and not any(ch in "。！？" for ch in s[:-1]) for s in sents)
    assert not any(s.startswith(("的", "，")) or "，，" in s or "的，" in s for s in sents)
    assert sum("的" in s for s in sents) > 100 and sum("，" in s for s in sents) > 100
    assert sum(s.count("是") for s in sents) > 30


def test_chinese_draws_are_a_function_of_the_seed():
    a = [ts.chinese_sentence(np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1]
    assert ts.chinese_sentence(np.random.default_rng(8)) != a[0]


@pytest.mark.parametrize("family", ["STSong", "DroidSansFallback"])
def test_every_lexicon_character_is_drawn_and_read_back(family):
    """A character the generators can write must be drawn with ink and extracted as itself
    by PyMuPDF in both Chinese families, or labels would name glyphs that are not there."""
    import pymupdf
    from reportlab.pdfgen import canvas

    from synth.ocr1 import fonts

    from synth.text_sources import zh as text_zh

    chars = sorted(c for c in text_zh.lexicon().characters() if "\u4e00" <= c <= "\u9fff")
    face = fonts.face_set(family)["regular"]
    per_row, rows, step, size = 40, 40, 28, 20
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(per_row * step + 40, rows * step + 40), invariant=1)
    chunks = [chars[i:i + per_row * rows] for i in range(0, len(chars), per_row * rows)]
    for chunk in chunks:
        c.setFont(face, size)
        for k, ch in enumerate(chunk):
            c.drawString(20 + (k % per_row) * step, rows * step + 20 - (k // per_row) * step, ch)
        c.showPage()
    c.save()
    doc = pymupdf.open(stream=buf.getvalue(), filetype="pdf")
    bad = []
    for page, chunk in zip(doc, chunks):
        pix = page.get_pixmap(dpi=72, colorspace=pymupdf.csGRAY)
        gray = np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.width)
        read = {}  # grid cell -> the character PyMuPDF extracted there
        for block in page.get_text("rawdict")["blocks"]:
            for line in block.get("lines", ()):
                for span in line["spans"]:
                    for char in span["chars"]:
                        ox, oy = char["origin"]
                        read[(round((ox - 20) / step), round((oy - 20) / step))] = char["c"]
        for k, ch in enumerate(chunk):
            col, row = k % per_row, k // per_row
            x, base = 20 + col * step, 20 + row * step  # y down
            ink = (gray[base - size:base + 5, x:x + size + 2] < 128).sum()
            got = read.get((col, row), "")
            if got != ch or ink < 5:
                bad.append((ch, got, int(ink)))
    assert len(chars) > 5000 and not bad, f"{family}: {len(bad)} of {len(chars)} characters fail: {bad[:10]}"


def test_wikipedia_chain_sentences_are_printable_sentences():
    from synth.text_sources import wiki as text_wiki

    rng = np.random.default_rng(3)
    sents = [text_wiki.sentence(rng) for _ in range(600)]
    assert all(sents)
    for s in sents:
        words = s.split(" ")
        assert 6 <= len(words) <= 40 and s[0].isupper() and s[-1] in ".!?", s
        assert s.isascii() and max(map(len, words)) <= 20, s
        # It ends at its first sentence end: no full stop after a lowercase word inside.
        assert not any(text_wiki._ends_sentence(w) for w in words[:-1]), s
    vocab = {w.strip(".,;:()!?'").lower() for s in sents for w in s.split()}
    assert len(vocab) > 3000  # all 1,300 sentences of the Python manual have 2,200 words
    again = [text_wiki.sentence(np.random.default_rng(3)) for _ in range(2)]
    assert again == [sents[0], sents[0]]


def test_english_paragraphs_mix_both_sources():
    manual = set(ts.english_sentences())
    rng = np.random.default_rng(0)
    paras = [ts.english_paragraph(rng, 1) for _ in range(400)]
    from_manual = sum(p in manual for p in paras) / len(paras)
    assert abs(from_manual - (1 - ts.WIKI_SHARE)) < 0.07, from_manual
