"""Checks shared by the families' Config validators."""

from __future__ import annotations

import dataclasses
from typing import Any


def bad_probability(cfg: Any, also: tuple[str, ...] = ()) -> str | None:
    """The first probability field of a Config dataclass outside [0, 1], or None.

    Probability fields are every field named ``*_prob`` (so a new option is checked without
    being listed anywhere) plus the names in ``also``.
    """
    names = [f.name for f in dataclasses.fields(cfg) if f.name.endswith("_prob")] + list(also)
    return next((n for n in names if not 0.0 <= getattr(cfg, n) <= 1.0), None)
