"""Random display equations: a small grammar over the LaTeX subset that mathtext parses.

``random_equation(rng)`` writes one relation (``lhs = rhs``, ``\\leq`` ...) built from
variables with sub/superscripts and accents, functions, fractions, roots, sums,
products, integrals, limits and bracketed groups. The LaTeX is written in one canonical
spelling (braces on every script, one space between tokens) so the target a model learns
is exactly the string that was rendered, with no equivalent spellings to guess between.
"""

from __future__ import annotations

import re

import numpy as np

_LATIN = tuple("abcdfghkmnpqrstuvwxyz") + ("A", "B", "C", "F", "G", "H", "K", "L", "M", "N", "P", "Q", "R", "S", "T",
                                            "U", "V", "W", "X", "Y", "Z")
_GREEK = (r"\alpha", r"\beta", r"\gamma", r"\delta", r"\epsilon", r"\varepsilon", r"\zeta", r"\eta", r"\theta",
          r"\kappa", r"\lambda", r"\mu", r"\nu", r"\xi", r"\pi", r"\rho", r"\sigma", r"\tau", r"\phi", r"\varphi",
          r"\chi", r"\psi", r"\omega", r"\Gamma", r"\Delta", r"\Theta", r"\Lambda", r"\Sigma", r"\Phi", r"\Psi",
          r"\Omega")
_INDEX = ("i", "j", "k", "n", "m", "t", "0", "1", "2", r"i j", r"t-1", r"n+1", r"\mu", r"\nu", "x", "y")
_POWER = ("2", "3", "n", "k", "-1", "T", "*", r"\prime", "2n", "p", "-2", r"\top")
_ACCENT = (r"\hat", r"\bar", r"\tilde", r"\vec", r"\dot", r"\mathbf", r"\mathcal", r"\mathrm")
_FUNC = (r"\sin", r"\cos", r"\tan", r"\log", r"\ln", r"\exp", r"\tanh", r"\det", r"\max", r"\min", "f", "g", "h",
         r"\mathrm{tr}", r"\mathrm{erf}")
_RELATION = ("=", "=", "=", "=", r"\leq", r"\geq", r"\neq", r"\approx", r"\equiv", "<", ">", r"\propto", r"\sim")
_BINARY = ("+", "-", "+", "-", r"\cdot", r"\times", r"\pm")
_BOUND_LO = ("0", "1", "-1", "a", r"-\infty", "i=1", "k=0", "n=1", "j=1")
_BOUND_HI = ("n", "N", "1", "b", r"\infty", "K", "T", "m")
_LIMIT_TO = ("0", r"\infty", "a", "0^{+}")
_DIFF = ("x", "t", "s", "u", r"\theta", r"\tau")


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _symbol(rng: np.random.Generator) -> str:
    """A variable: a Latin or Greek letter, maybe accented, maybe with scripts."""
    base = _pick(rng, _LATIN) if rng.random() < 0.65 else _pick(rng, _GREEK)
    if rng.random() < 0.15 and base.isalpha() and len(base) == 1:
        accent = _pick(rng, _ACCENT)
        if accent == r"\mathcal":  # mathtext's calligraphic fonts have capitals only
            base = base.upper()
        base = f"{accent}{{{base}}}"
    r = rng.random()
    if r < 0.3:
        base += f"_{{{_pick(rng, _INDEX)}}}"
    elif r < 0.45:
        base += f"^{{{_pick(rng, _POWER)}}}"
    elif r < 0.55:
        base += f"_{{{_pick(rng, _INDEX)}}}^{{{_pick(rng, _POWER)}}}"
    return base


def _number(rng: np.random.Generator) -> str:
    r = rng.random()
    if r < 0.6:
        return str(int(rng.integers(1, 10)))
    if r < 0.85:
        return str(int(rng.integers(10, 1000)))
    return f"{rng.uniform(0, 10):.{int(rng.integers(1, 4))}f}"


def _atom(rng: np.random.Generator, depth: int, number_ok: bool = True) -> str:
    """A factor: symbol, number, function call, fraction, root, bracketed or big operator.

    ``number_ok`` is False after the first factor of a term: math mode drops spaces, so
    ``2 3`` would be drawn as 23 and ``f 6`` as f6.
    """
    r = rng.random()
    if depth <= 0 or r < 0.45:
        return _number(rng) if number_ok and rng.random() < 0.25 else _symbol(rng)
    if r < 0.57:
        return f"{_pick(rng, _FUNC)}\\left({_expr(rng, depth - 1, 2)}\\right)"
    if r < 0.7:
        return f"\\frac{{{_expr(rng, depth - 1, 2)}}}{{{_expr(rng, depth - 1, 2)}}}"
    if r < 0.77:
        root = f"[{_pick(rng, ('3', 'n'))}]" if rng.random() < 0.2 else ""
        return f"\\sqrt{root}{{{_expr(rng, depth - 1, 2)}}}"
    if r < 0.85:
        close = {"(": ")", "[": "]", "|": "|"}
        left = _pick(rng, ("(", "(", "[", "|"))
        inner = f"\\left{left}{_expr(rng, depth - 1, 3)}\\right{close[left]}"
        return inner + (f"^{{{_pick(rng, _POWER)}}}" if rng.random() < 0.4 else "")
    if r < 0.91:
        op = _pick(rng, (r"\sum", r"\sum", r"\prod"))
        return f"{op}_{{{_pick(rng, _BOUND_LO)}}}^{{{_pick(rng, _BOUND_HI)}}} {_term(rng, depth - 1)}"
    if r < 0.96:
        d = _pick(rng, _DIFF)
        return (f"\\int_{{{_pick(rng, _BOUND_LO)}}}^{{{_pick(rng, _BOUND_HI)}}} {_term(rng, depth - 1)} \\, "
                f"d{d if len(d) == 1 else ' ' + d}")
    var = _pick(rng, ("x", "n", "t", "h"))
    return f"\\lim_{{{var} \\to {_pick(rng, _LIMIT_TO)}}} {_term(rng, depth - 1)}"


def _term(rng: np.random.Generator, depth: int) -> str:
    """One to three factors multiplied by juxtaposition."""
    n = 1 + int(rng.random() < 0.35) + int(rng.random() < 0.1)
    return " ".join(_atom(rng, depth, number_ok=k == 0) for k in range(n))


def _expr(rng: np.random.Generator, depth: int, max_terms: int) -> str:
    """Terms joined by binary operators, maybe negated."""
    n = int(rng.integers(1, max_terms + 1))
    out = ("-" if rng.random() < 0.1 else "") + _term(rng, depth)
    for _ in range(n - 1):
        out += f" {_pick(rng, _BINARY)} {_term(rng, depth)}"
    return out


_COMMAND = re.compile(r"\\[a-zA-Z]+")
_LAYOUT_ONLY = re.compile(r"\\(?:left|right|frac)|[{}\s]")
# Visible glyphs allowed per equation: at 12 pt, 36 keeps the widest under ~250 pt (like
# the classic pool's 207 pt), so equations stay legible when scaled into a column.
MAX_GLYPHS = 36


def visible_length(latex: str) -> int:
    """Roughly the glyphs an equation draws: commands count one, braces and spaces none
    (its rendered width at 12 pt is about 6.5 pt per glyph; correlation 0.94)."""
    return len(_COMMAND.sub("#", _LAYOUT_ONLY.sub("", latex)))


def _candidate(rng: np.random.Generator) -> str:
    if rng.random() < 0.5:
        lhs = _symbol(rng)
    elif rng.random() < 0.5:
        lhs = f"{_pick(rng, ('f', 'g', 'h', 'F', 'L', 'P', 'E', 'J'))}\\left({_symbol(rng)}\\right)"
    else:
        lhs = _expr(rng, 1, 2)
    rhs = _expr(rng, 1 + int(rng.random() < 0.5), 2 + int(rng.random() < 0.3))
    out = f"{lhs} {_pick(rng, _RELATION)} {rhs}"
    if rng.random() < 0.08:  # a chain: a = b = c
        out += f" = {_expr(rng, 1, 2)}"
    return out


def random_equation(rng: np.random.Generator) -> str:
    """One display equation ``lhs REL rhs`` in canonical mathtext LaTeX, drawing at most
    :data:`MAX_GLYPHS` glyphs (candidates are drawn until one fits)."""
    while True:
        out = _candidate(rng)
        if visible_length(out) <= MAX_GLYPHS:
            return out


# Inline formulas stay short: a symbol, a small expression or relation, a function value.
MAX_INLINE_GLYPHS = 10


def inline_formula(rng: np.random.Generator) -> str:
    """A short formula for running text (``x_{i}``, ``n \\geq 2``, ``f\\left(x\\right)``),
    in the same canonical spelling, drawing at most :data:`MAX_INLINE_GLYPHS` glyphs."""
    while True:
        r = rng.random()
        if r < 0.45:
            out = _symbol(rng)
        elif r < 0.65:
            out = _expr(rng, 0, 2)
        elif r < 0.85:
            out = f"{_symbol(rng)} {_pick(rng, _RELATION)} {_expr(rng, 0, 1)}"
        else:
            out = f"{_pick(rng, _FUNC)}\\left({_symbol(rng)}\\right)"
        if visible_length(out) <= MAX_INLINE_GLYPHS:
            return out
