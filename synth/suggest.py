""""Did you mean ...?" for a misspelt key, option or name (difflib's close matches)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(word: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """Up to ``n`` of ``choices`` that look like ``word``, best first; case is ignored."""
    options = sorted({str(c) for c in choices})
    lowered = {c.lower(): c for c in options}
    hits = difflib.get_close_matches(str(word).lower(), list(lowered), n=n, cutoff=cutoff)
    return [lowered[h] for h in hits]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` with the closest of ``choices``, to put after the word
    in an error message; "" when nothing is close enough to suggest."""
    hits = close_matches(word, choices, n=1)
    return f" (did you mean {hits[0]!r}?)" if hits else ""
