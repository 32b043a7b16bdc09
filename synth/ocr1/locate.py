"""Text-location queries on a rendered page (the reference model's "rec" task): a phrase
printed on the page and the box of every place it is printed.

Both come from the PDF's text (its spans, then the characters of the runs that hold the
phrase), not from the plan. A phrase is 1-4 whole words of an upright line in English, or
2-8 consecutive ideographs in Chinese. Every occurrence is found: in English as whole words (no letter or digit right
before or after it), in Chinese as a substring. A phrase printed more than
``MAX_OCCURRENCES`` times, or across a gap (table cells, columns), is not asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from synth.mupdf import pymupdf

# The page's ideographs are those its Chinese text draws (content's test), and a box is
# the read-back's union of character boxes.
from synth.ocr1.content import _ideograph
from synth.ocr1.readback import _union, page_text

MAX_OCCURRENCES = 5
# Consecutive characters farther apart than this share of the line height are in
# different cells or columns: a phrase never spans such a gap.
_GAP = 0.8


@dataclass
class Query:
    """A phrase and the box of each place it is printed (PDF points, y down)."""

    text: str
    boxes: list[tuple[float, float, float, float]]


@dataclass
class Run:
    """Characters printed in a row without a wide gap: their text and the row's box."""

    text: str
    rect: tuple[float, float, float, float]


def runs(page) -> list[Run]:
    """The page's upright runs of text, from its spans (``get_text("dict")``): each line cut
    where two spans are farther apart than ``_GAP`` line heights. ``page`` is a PyMuPDF
    page or its ``readback.PageText``."""
    out: list[Run] = []
    for block in page_text(page).blocks:
        for line in block.get("lines", ()):
            if tuple(line["dir"]) != (1.0, 0.0):
                continue
            text, rect = "", None
            for span in line["spans"]:
                bb = span["bbox"]
                if rect is not None and bb[0] - rect[2] > _GAP * (bb[3] - bb[1]):
                    out.append(Run(text, rect))
                    text, rect = "", None
                text += span["text"]
                rect = tuple(bb) if rect is None else (min(rect[0], bb[0]), min(rect[1], bb[1]),
                                                       max(rect[2], bb[2]), max(rect[3], bb[3]))
            if rect is not None:
                out.append(Run(text, rect))
    return [r for r in out if r.text.strip()]


def _char_boxes(page, run: Run) -> list[tuple[float, float, float, float]] | None:
    """One box per character of ``run.text``, from the characters PyMuPDF reads inside the
    run's box (``rawdict`` of a TextPage clipped there: the whole page's rawdict costs three
    times as much, and only the runs that hold an asked phrase are read); None when they do
    not spell the run."""
    x0, y0, x1, y1 = run.rect
    chars = [(ch["c"], ch["bbox"])
             for block in page_text(page).clipped_raw_blocks((x0 - 0.5, y0 - 0.5, x1 + 0.5, y1 + 0.5))
             for line in block.get("lines", ()) if tuple(line["dir"]) == (1.0, 0.0)
             for span in line["spans"] for ch in span["chars"]
             if x0 - 0.5 <= (ch["bbox"][0] + ch["bbox"][2]) / 2 <= x1 + 0.5
             and y0 - 0.5 <= (ch["bbox"][1] + ch["bbox"][3]) / 2 <= y1 + 0.5]
    at = "".join(c for c, _b in chars).find(run.text)
    return None if at < 0 else [tuple(b) for _c, b in chars[at:at + len(run.text)]]


def _phrase_en(rng: np.random.Generator, text: str) -> str | None:
    words = text.split(" ")
    start = int(rng.integers(len(words)))
    k = int(rng.choice(4, p=[0.15, 0.35, 0.3, 0.2])) + 1
    span = words[start:start + k]
    # Double spaces (around an inline formula) or a lone mark make no phrase.
    if len(span) < k or not all(span):
        return None
    phrase = " ".join(span).strip(".,;:()[]\"'")
    return phrase if any(ch.isalnum() for ch in phrase) else None


def _phrase_zh(rng: np.random.Generator, text: str) -> str | None:
    spans, cur = [], ""
    for ch in text + " ":
        if _ideograph(ch):
            cur += ch
        else:
            if len(cur) >= 2:
                spans.append(cur)
            cur = ""
    if not spans:
        return None
    run = spans[int(rng.integers(len(spans)))]
    k = int(rng.integers(2, min(8, len(run)) + 1))
    start = int(rng.integers(len(run) - k + 1))
    return run[start:start + k]


def matches(phrase: str, text: str, whole_words: bool) -> list[int]:
    """Where ``phrase`` starts in ``text``: anywhere (Chinese), or as whole words, not
    touching a letter or digit, nor a hyphen that ends the text (a word hyphenated over the
    line end goes on)."""
    out = []
    at = text.find(phrase)
    while at >= 0:
        end = at + len(phrase)
        if not whole_words or ((at == 0 or not text[at - 1].isalnum())
                               and (end == len(text) or not text[end].isalnum()) and text[end:] != "-"):
            out.append(at)
        at = text.find(phrase, at + 1)
    return out


def occurrences(page, phrase: str, page_runs: list[Run],
                whole_words: bool) -> list[tuple[float, float, float, float]] | None:
    """The box of every place ``phrase`` is printed within one run, in page order (the
    union of its characters' boxes); None when a run's characters cannot be read."""
    boxes = []
    for run in page_runs:
        starts = matches(phrase, run.text, whole_words)
        if not starts:
            continue
        char_boxes = _char_boxes(page, run)
        if char_boxes is None:
            return None
        for at in starts:
            boxes.append(_union(char_boxes[at:at + len(phrase)]))
    return boxes


def _in_text(phrase: str, text: str, whole_words: bool) -> bool:
    if not whole_words:
        return phrase in text
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None


def queries(page, lang: str, rng: np.random.Generator, n: int, text: str, tries: int = 4) -> list[Query]:
    """Up to ``n`` distinct phrases of the page with their boxes; a draw that gives no phrase,
    one that is not in the page's ``text`` as it is read (a piece of a word hyphenated over
    a line end is not), or one printed more than ``MAX_OCCURRENCES`` times, is drawn again,
    up to ``tries`` times a phrase. ``page`` is a PyMuPDF page or its ``readback.PageText``."""
    page = page_text(page)
    page_runs = runs(page)
    if lang == "zh":
        candidates = [r.text for r in page_runs if sum(_ideograph(c) for c in r.text) >= 2]
    else:
        candidates = [r.text for r in page_runs if any(c.isalpha() for c in r.text)]
    whole = lang != "zh"
    out: list[Query] = []
    for _ in range(n * tries):
        if len(out) == n or not candidates:
            break
        line = candidates[int(rng.integers(len(candidates)))]
        phrase = _phrase_zh(rng, line) if lang == "zh" else _phrase_en(rng, line)
        if phrase is None or any(q.text == phrase for q in out) or not _in_text(phrase, text, whole):
            continue
        # Counted from the text first: boxes are only read for phrases that will be asked.
        if 1 <= sum(len(matches(phrase, r.text, whole)) for r in page_runs) <= MAX_OCCURRENCES:
            boxes = occurrences(page, phrase, page_runs, whole)
            if boxes:
                out.append(Query(phrase, boxes))
    return out
