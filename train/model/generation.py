"""Greedy decoding helpers: the n-gram repeat blocker."""

from __future__ import annotations

import torch


class NgramBlocker:
    """Bans any token that would complete an n-gram already present in the row (HF's rule).

    History is the row's real prompt tokens plus what was generated; the table maps each
    (n-1)-gram to the tokens seen after it, so one step costs O(n) per row.
    """

    def __init__(self, n: int, histories: list[list[int]]):
        self.n = n
        self.hist = [list(h) for h in histories]
        self.seen: list[dict[tuple[int, ...], set[int]]] = [{} for _ in histories]
        if n > 0:
            for row, h in enumerate(self.hist):
                for i in range(len(h) - n + 1):
                    self.seen[row].setdefault(tuple(h[i:i + n - 1]), set()).add(h[i + n - 1])

    def banned(self, row: int) -> list[int]:
        """Tokens row ``row`` may not emit next."""
        if self.n <= 0 or len(self.hist[row]) < self.n - 1:
            return []
        key = tuple(self.hist[row][len(self.hist[row]) - self.n + 1:]) if self.n > 1 else ()
        return sorted(self.seen[row].get(key, ()))

    def push(self, row: int, token: int) -> None:
        """Append ``token`` to row ``row``'s history."""
        h = self.hist[row]
        h.append(token)
        if self.n > 0 and len(h) >= self.n:
            self.seen[row].setdefault(tuple(h[len(h) - self.n:-1]), set()).add(token)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        """Set banned tokens' logits [B, V] to -inf (in place) and return them."""
        for row in range(logits.shape[0]):
            ban = self.banned(row)
            if ban:
                logits[row, ban] = float("-inf")
        return logits
