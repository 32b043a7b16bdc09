"""Chinese text from the dictionary that ships with jieba (``jieba/dict.txt``: 349,046
words with corpus frequency and part-of-speech tag).

Words are grouped by part of speech and drawn by smoothed frequency. A sentence is one
to three clauses built from templates: subject, adverb, verb and object; "在 … 中，…";
a time word and a comma; adjective predicates ("非常 重要"); "是" with a noun phrase.
Noun phrases take "的" attributes, noun compounds and counted nouns ("3个 城市"). The
result is not meaningful Chinese, but it has Chinese word order and function words in
their places, where words drawn at random would have neither.

Every draw uses the caller's numpy Generator: the same seed gives the same text in any
process.
"""

from __future__ import annotations

import array
import bisect
import functools
import importlib.resources
from dataclasses import dataclass

import numpy as np

# Words kept: CJK ideographs only, at most 4 characters, seen at least this often in
# jieba's corpus (rarer entries are mostly names and archaic compounds).
_MIN_FREQ = 10
# Smoothing of the draw (probability ~ frequency ** 0.75): flat enough for rare characters
# to appear, while common words stay common.
_SMOOTHING = 0.75
# Word classes the templates use, and the jieba tags in each. Tags left out: morphemes and
# unknowns (g, x, zg, ng, nrt...; their entries include mojibake such as 杩 and 鍏).
_CLASSES: dict[str, tuple[str, ...]] = {
    "n": ("n", "nz"), "place": ("ns",), "org": ("nt",), "vn": ("vn",), "v": ("v",), "a": ("a", "an"),
    "ad": ("ad",), "d": ("d",), "r": ("r",), "p": ("p",), "c": ("c",), "q": ("q",), "t": ("t",), "f": ("f",),
    "idiom": ("i", "l"), "person": ("nr", "nrfg"), "attr": ("b",), "locative": ("s",),
}
_NOUN_TAGS = frozenset({"n", "nz", "vn", "nt", "ns"})
# Degree adverbs before adjective predicates, and the function words the templates write.
_DEGREE = ("很", "非常", "比较", "更加", "十分", "最")
FUNCTION_WORDS = ("的", "是", "，", "。", "！", "？") + _DEGREE


@dataclass(frozen=True, eq=False)
class WordClass:
    """Words of one class with the cumulative distribution they are drawn from."""

    words: tuple[str, ...]
    cdf: np.ndarray

    def draw(self, rng: np.random.Generator) -> str:
        """One word, by smoothed corpus frequency."""
        # bisect_right on the same floats is numpy's searchsorted(side="right"), without
        # its per-call overhead (a Chinese page draws a few hundred words).
        i = bisect.bisect_right(self._cdf, rng.random())
        return self.words[min(i, len(self.words) - 1)]

    @functools.cached_property
    def _cdf(self) -> array.array:
        return array.array("d", np.asarray(self.cdf, dtype=np.float64).tobytes())


@dataclass(frozen=True)
class Lexicon:
    """The word classes, and the nouns (two or more characters, most frequent first) that
    labels, table cells, legends and titles use."""

    classes: dict[str, WordClass]
    nouns: tuple[str, ...]

    def characters(self) -> set[str]:
        """Every character a sentence, label or title can contain (digits aside)."""
        out = set("".join(FUNCTION_WORDS)) | set("".join(self.nouns))
        for wc in self.classes.values():
            out |= set("".join(wc.words))
        return out


# Bump when _build's arrays change: the node cache then builds them again.
_BUILD_VERSION = 1


def _dict_path():
    return importlib.resources.files("jieba") / "dict.txt"


def _build() -> dict[str, np.ndarray]:
    """Parse jieba's dictionary into the lexicon's arrays (about 0.5 s; cached per node)."""
    from synth.cache import pack_strings
    from synth.mupdf import pymupdf

    text = _dict_path().read_text(encoding="utf-8")
    rows = []
    for line in text.splitlines():
        word, freq, tag = line.split(" ")
        if len(word) <= 4 and int(freq) >= _MIN_FREQ and all("\u4e00" <= c <= "\u9fff" for c in word):
            rows.append((word, int(freq), tag))
    font = pymupdf.Font("cjk")
    drawable = {c for c in {c for w, _f, _t in rows for c in w} if font.has_glyph(ord(c))}
    rows = [r for r in rows if set(r[0]) <= drawable]
    out = {}
    for name, tags in _CLASSES.items():
        members = [(w, f) for w, f, t in rows if t in tags]  # file order: the same in every process
        cdf = np.cumsum(np.asarray([f for _w, f in members], dtype=float) ** _SMOOTHING)
        out[f"{name}.words"] = pack_strings([w for w, _f in members])
        out[f"{name}.cdf"] = cdf / cdf[-1]
    nouns = sorted((r for r in rows if r[2] in _NOUN_TAGS and len(r[0]) >= 2), key=lambda r: (-r[1], r[0]))
    out["nouns"] = pack_strings([w for w, _f, _t in nouns])
    return out


@functools.lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    """The lexicon (cached per process, built once per node into ``synth.cache``),
    restricted to words whose every character PyMuPDF's CJK font can draw, so that no
    word is labelled but not rendered."""
    from synth import cache
    from synth.mupdf import pymupdf

    a = cache.load_or_build("zh-lexicon", cache.key("zh-lexicon", _BUILD_VERSION, cache.file_stamp(str(_dict_path())),
                                                    pymupdf.VersionBind, cache.source_digest(__name__)), _build)
    classes = {name: WordClass(tuple(cache.unpack_strings(a[f"{name}.words"])), a[f"{name}.cdf"]) for name in _CLASSES}
    return Lexicon(classes, tuple(cache.unpack_strings(a["nouns"])))


def _noun_phrase(rng: np.random.Generator, lex: Lexicon) -> list[str]:
    c, r = lex.classes, rng.random()
    if r < 0.3:
        return [c["n"].draw(rng)]
    if r < 0.38:
        return [c["r"].draw(rng)]
    if r < 0.46:
        return [c["person"].draw(rng)]
    if r < 0.54:
        return [c["place"].draw(rng)]
    if r < 0.58:
        return [c["org"].draw(rng)]
    if r < 0.68:
        return [c["a"].draw(rng), "的", c["n"].draw(rng)]
    if r < 0.76:
        return [c["n"].draw(rng), "的", c["n"].draw(rng)]
    if r < 0.82:
        return [c["attr"].draw(rng), c["n"].draw(rng)]
    if r < 0.86:
        return [c["locative"].draw(rng), "的", c["n"].draw(rng)]
    if r < 0.93:
        return [c["n"].draw(rng), c["n"].draw(rng)]
    return [f"{int(rng.integers(2, 100))}{c['q'].draw(rng)}", c["n"].draw(rng)]


def _verb_phrase(rng: np.random.Generator, lex: Lexicon) -> list[str]:
    c, r = lex.classes, rng.random()
    adverb = [c["d"].draw(rng)] if rng.random() < 0.3 else []
    if r < 0.45:
        return adverb + [c["v"].draw(rng)] + _noun_phrase(rng, lex)
    if r < 0.58:
        return adverb + [c["v"].draw(rng), c["vn"].draw(rng)]
    if r < 0.7:
        return [_DEGREE[int(rng.integers(len(_DEGREE)))], c["a"].draw(rng)]
    if r < 0.8:
        return ["是"] + _noun_phrase(rng, lex)
    if r < 0.9:
        return [c["ad"].draw(rng), c["v"].draw(rng)] + _noun_phrase(rng, lex)
    return [c["idiom"].draw(rng)]


def _clause(rng: np.random.Generator, lex: Lexicon) -> list[str]:
    c, r = lex.classes, rng.random()
    if r < 0.15:  # a prepositional phrase first: 在 城市 中，…
        where = [c["p"].draw(rng)] + _noun_phrase(rng, lex) + ([c["f"].draw(rng)] if rng.random() < 0.5 else [])
        return where + ["，"] + _noun_phrase(rng, lex) + _verb_phrase(rng, lex)
    if r < 0.25:  # a time word first: 目前，…
        return [c["t"].draw(rng), "，"] + _noun_phrase(rng, lex) + _verb_phrase(rng, lex)
    return _noun_phrase(rng, lex) + _verb_phrase(rng, lex)


def sentence(rng: np.random.Generator, n_words: int | None = None) -> str:
    """A sentence of clauses joined by commas (sometimes with a conjunction) until it has
    about ``n_words`` words (4-11 when not given), ending with 。 (or ！ ？)."""
    lex = lexicon()
    target = int(n_words if n_words is not None else rng.integers(4, 12))
    words = _clause(rng, lex)
    while len(words) < target:
        words += ["，"] + ([lex.classes["c"].draw(rng)] if rng.random() < 0.3 else []) + _clause(rng, lex)
    r = rng.random()
    return "".join(words) + ("。" if r < 0.9 else "！" if r < 0.95 else "？")
