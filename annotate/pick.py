"""Which rows the inspection tools show: the first N after an offset, or a seeded random
sample, of the whole dataset or of one family, read without decoding the other rows."""

from __future__ import annotations

import random
from typing import Any

from annotate.dataset import list_shards, table_of

Position = tuple[int, int]  # (shard index in list_shards order, row index in the shard)


def positions_by_family(location: str, allow_incomplete: bool = False) -> dict[str, list[Position]]:
    """Every row's position, grouped by family, in shard order (reads the family column only)."""
    out: dict[str, list[Position]] = {}
    for s, ref in enumerate(list_shards(location, allow_incomplete)[0]):
        for i, fam in enumerate(table_of(ref).column("family").to_pylist()):
            out.setdefault(fam, []).append((s, i))
    return out


def choose(positions: list[Position], n: int, offset: int = 0, seed: int | None = None) -> list[Position]:
    """``n`` of ``positions``: those after the first ``offset``, or with ``seed`` a random
    sample drawn by it (the same for the same seed), in shard order."""
    if seed is not None:
        return sorted(random.Random(seed).sample(positions, min(n, len(positions))))
    return positions[offset:offset + n]


def take_rows(location: str, positions: list[Position], allow_incomplete: bool = False) -> list[dict[str, Any]]:
    """The rows at ``positions`` (in shard order), one ``take`` per shard."""
    shards = list_shards(location, allow_incomplete)[0]
    rows: list[dict[str, Any]] = []
    for s in sorted({s for s, _ in positions}):
        idx = sorted(i for t, i in positions if t == s)
        rows += table_of(shards[s]).take(idx).to_pylist()
    return rows


def pick_rows(location: str, n: int, family: str | None = None, offset: int = 0,
              seed: int | None = None, allow_incomplete: bool = False) -> list[dict[str, Any]]:
    """``n`` rows of a dataset (of ``family`` only, when given); see :func:`choose`."""
    groups = positions_by_family(location, allow_incomplete)
    where = sorted(groups.get(family, [])) if family else sorted(p for ps in groups.values() for p in ps)
    return take_rows(location, choose(where, n, offset, seed), allow_incomplete)
