"""Text-location queries on a rendered page (the reference model's "rec" task): a phrase
printed on the page and the box of every place it is printed.

Both come from the PDF's characters (``page.get_text("rawdict")``), not from the plan. A
phrase is 1-4 whole words of an upright line in English, or 2-8 consecutive ideographs in
Chinese. Every occurrence is found: in English as whole words (no letter or digit right
before or after it), in Chinese as a substring. A phrase printed more than
``MAX_OCCURRENCES`` times, or across a gap (table cells, columns), is not asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pymupdf

MAX_OCCURRENCES = 5
# Consecutive characters farther apart than this share of the line height are in
# different cells or columns: a phrase never spans such a gap.
_GAP = 0.8


@dataclass
class Query:
    """A phrase and the box of each place it is printed (PDF points, y down)."""

    text: str
    boxes: list[tuple[float, float, float, float]]


def _ideograph(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


def runs(page) -> list[tuple[str, list[tuple[float, float, float, float]]]]:
    """The page's upright runs of characters: (text, one box per character), each line cut
    where two characters are farther apart than ``_GAP`` line heights."""
    out = []
    for block in page.get_text("rawdict", flags=pymupdf.TEXTFLAGS_TEXT)["blocks"]:
        for line in block.get("lines", ()):
            if tuple(line["dir"]) != (1.0, 0.0):
                continue
            text, boxes, prev = "", [], None
            for span in line["spans"]:
                for ch in span["chars"]:
                    bb = tuple(float(v) for v in ch["bbox"])
                    if prev is not None and bb[0] - prev[2] > _GAP * (bb[3] - bb[1]):
                        out.append((text, boxes))
                        text, boxes = "", []
                    text, prev = text + ch["c"], bb
                    boxes.append(bb)
            out.append((text, boxes))
    return [(t, b) for t, b in out if t.strip()]


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


def occurrences(phrase: str, page_runs, whole_words: bool) -> list[tuple[float, float, float, float]]:
    """The box of every place ``phrase`` is printed within one run, in page order. Whole
    words end before a letter, a digit, or a hyphen that ends the run (a word hyphenated
    over the line end goes on)."""
    boxes = []
    for text, char_boxes in page_runs:
        at = text.find(phrase)
        while at >= 0:
            end = at + len(phrase)
            bounded = not whole_words or ((at == 0 or not text[at - 1].isalnum())
                                          and (end == len(text) or not text[end].isalnum())
                                          and text[end:] != "-")
            if bounded:
                a = np.asarray(char_boxes[at:end], dtype=float)
                boxes.append((float(a[:, 0].min()), float(a[:, 1].min()), float(a[:, 2].max()), float(a[:, 3].max())))
            at = text.find(phrase, at + 1)
    return boxes


def _in_text(phrase: str, text: str, whole_words: bool) -> bool:
    if not whole_words:
        return phrase in text
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None


def queries(page, lang: str, rng: np.random.Generator, n: int, text: str, tries: int = 4) -> list[Query]:
    """Up to ``n`` distinct phrases of the page with their boxes; a draw that gives no phrase,
    one that is not in the page's ``text`` as it is read (a piece of a word hyphenated over
    a line end is not), or one printed more than ``MAX_OCCURRENCES`` times, is drawn again,
    up to ``tries`` times a phrase."""
    page_runs = runs(page)
    if lang == "zh":
        candidates = [r for r in page_runs if sum(_ideograph(c) for c in r[0]) >= 2]
    else:
        candidates = [r for r in page_runs if any(c.isalpha() for c in r[0])]
    out: list[Query] = []
    for _ in range(n * tries):
        if len(out) == n or not candidates:
            break
        line = candidates[int(rng.integers(len(candidates)))][0]
        phrase = _phrase_zh(rng, line) if lang == "zh" else _phrase_en(rng, line)
        if phrase is None or any(q.text == phrase for q in out) or not _in_text(phrase, text, lang != "zh"):
            continue
        boxes = occurrences(phrase, page_runs, whole_words=lang != "zh")
        if 1 <= len(boxes) <= MAX_OCCURRENCES:
            out.append(Query(phrase, boxes))
    return out
