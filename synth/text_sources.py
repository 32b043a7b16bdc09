"""Text that ships with Python and PyPI packages, so nothing is downloaded at run time.

English: the prose of ``pydoc_data.topics`` (the Python reference manual's topics),
cleaned of reStructuredText markup and code blocks, split into sentences.
Chinese: Faker's ``zh_CN`` lorem word list (346 common words) and its name, address and
company providers. All draws go through the caller's numpy Generator so that output is
a pure function of the seed.
"""

from __future__ import annotations

import functools
import re

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
    """Distinct alphabetic words of the English corpus (for titles and labels)."""
    seen: dict[str, None] = {}
    for s in english_sentences():
        for w in s.split():
            w = w.strip(".,;:()!?'")
            if w.isalpha() and 3 <= len(w) <= 12:
                seen.setdefault(w.lower(), None)
    return tuple(seen)


@functools.lru_cache(maxsize=1)
def chinese_words() -> tuple[str, ...]:
    """Faker's zh_CN lorem word list."""
    from faker.providers.lorem.zh_CN import Provider

    return tuple(Provider.word_list)


def _pick(rng: np.random.Generator, seq) -> str:
    return seq[int(rng.integers(len(seq)))]


def english_paragraph(rng: np.random.Generator, n_sentences: int) -> str:
    """A paragraph of consecutive real sentences starting at a random place."""
    sents = english_sentences()
    start = int(rng.integers(len(sents)))
    return " ".join(sents[(start + i) % len(sents)] for i in range(max(1, n_sentences)))


def chinese_sentence(rng: np.random.Generator, n_words: int | None = None) -> str:
    """A Chinese pseudo-sentence of common words ending with a full stop."""
    words = chinese_words()
    n = int(n_words if n_words is not None else rng.integers(4, 12))
    punct = "，" if n > 7 else ""
    body = [_pick(rng, words) for _ in range(n)]
    if punct:
        body.insert(n // 2, punct)
    return "".join(body) + "。"


def chinese_paragraph(rng: np.random.Generator, n_sentences: int) -> str:
    """A Chinese paragraph of ``n_sentences`` pseudo-sentences."""
    return "".join(chinese_sentence(rng) for _ in range(max(1, n_sentences)))


def paragraph(rng: np.random.Generator, lang: str, n_sentences: int) -> str:
    """A paragraph in ``lang`` ("en" or "zh")."""
    if lang == "zh":
        return chinese_paragraph(rng, n_sentences)
    if lang == "en":
        return english_paragraph(rng, n_sentences)
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
