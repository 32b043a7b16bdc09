"""Text that ships with Python and PyPI packages, so nothing is downloaded at run time.

English: general-domain sentences walked on a word-trigram chain over Wikipedia articles
(``synth.text_sources.wiki``; a share ``WIKI_SHARE`` of paragraphs and sentences), and real
sentences of the Python reference manual (``pydoc_data.topics``, cleaned of
reStructuredText markup and code blocks), consecutive within a paragraph.
Chinese: words of jieba's dictionary by part of speech, put in clause templates
(``synth.text_sources.zh``); labels and titles draw its nouns. All draws go through the caller's numpy
Generator so that output is a pure function of the seed.
"""

from __future__ import annotations

import functools
import re

import numpy as np

_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_WS = re.compile(r"\s+")
_RST = re.compile(r"[*`]+|\"|\[\d+\]")


def _manual_sentences() -> list[str]:
    """Parse the Python reference manual's prose into sentences (see :func:`english_sentences`)."""
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
    return out


def _english_arrays() -> dict:
    from synth.cache import pack_strings
    from synth.text_sources import wiki

    sentences = _manual_sentences()
    seen: dict[str, None] = {}
    for s in sentences:
        for w in s.split():
            w = w.strip(".,;:()!?'")
            if w.isalpha() and 3 <= len(w) <= 12:
                seen.setdefault(w.lower(), None)
    for w in wiki.words():
        seen.setdefault(w, None)
    return {"sentences": pack_strings(sentences), "words": pack_strings(list(seen))}


@functools.lru_cache(maxsize=1)
def _english() -> dict:
    """The manual's sentences and the English word list, made once per node (``synth.cache``)."""
    import importlib.util
    import sys

    from synth import cache
    from synth.text_sources import wiki

    topics = importlib.util.find_spec("pydoc_data.topics").origin
    k = cache.key("en-text", sys.version, cache.file_stamp(topics), cache.file_stamp(wiki.model_path()),
                  cache.source_digest(__name__, "synth.text_sources.wiki"))
    return cache.load_or_build("en-text", k, _english_arrays)


@functools.lru_cache(maxsize=1)
def english_sentences() -> tuple[str, ...]:
    """Prose sentences from the Python reference manual (pydoc_data.topics)."""
    from synth.cache import unpack_strings

    return tuple(unpack_strings(_english()["sentences"]))


@functools.lru_cache(maxsize=1)
def english_words() -> tuple[str, ...]:
    """Distinct lowercase words (3-12 letters) of both English sources, for titles and labels."""
    from synth.cache import unpack_strings

    return tuple(unpack_strings(_english()["words"]))


def chinese_words() -> tuple[str, ...]:
    """Chinese nouns for labels, table cells, legends and titles (most frequent first)."""
    from synth.text_sources import zh

    return zh.lexicon().nouns


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
    from synth.text_sources import wiki

    s = wiki.sentence(rng)
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


def chinese_sentence(rng: np.random.Generator, n_words: int | None = None) -> str:
    """A Chinese sentence of about ``n_words`` words (see ``synth.text_sources.zh``)."""
    from synth.text_sources import zh

    return zh.sentence(rng, n_words)


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
