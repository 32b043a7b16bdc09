"""Code listings for OCR 1.0 pages, from what Python ships (nothing downloaded).

Four kinds, each a tuple of lines (no tabs, ASCII, trailing spaces stripped):
- ``python``: a function or class from the source of a fixed list of pure-Python standard
  library modules, its first lines (at most ``MAX_LINES``), dedented;
- ``doctest``: an interactive session (``>>>`` prompts and their output) from those
  modules' docstrings;
- ``json``: a small JSON document drawn from the rng (keys from the English word list,
  numbers, strings, booleans, null, nested objects and arrays), indented by 2 or 4;
- ``c``: a paragraph of C (declarations, macros, inline functions) from the header files
  Python installs for building extensions (``sysconfig``'s include directory).

The pools are read once per node (kept in ``synth.cache``) and sorted, so a draw is a pure
function of the rng on a given Python installation (a module the installation lacks is
skipped).
"""

from __future__ import annotations

import bisect
import functools
import importlib.util
import json
import os
import re
from dataclasses import dataclass

import numpy as np

# Pure-Python modules with plain, idiomatic code and doctests (frozen or C modules are skipped).
MODULES = ("textwrap", "heapq", "bisect", "fractions", "statistics", "shlex", "difflib", "calendar", "colorsys",
           "ipaddress", "string", "functools", "contextlib", "dataclasses", "enum", "argparse", "csv",
           "json.decoder", "json.encoder", "pprint", "random", "glob", "fnmatch", "operator", "queue", "sched",
           "secrets", "tokenize", "typing", "uuid", "zipfile", "tarfile", "gettext", "mimetypes", "base64",
           "hmac", "graphlib", "numbers", "_pydecimal", "shutil", "tempfile", "configparser", "inspect", "ast",
           "pathlib", "urllib.parse", "email.utils", "http.cookies", "datetime", "collections")
KINDS = ("python", "doctest", "json", "c")
KIND_WEIGHTS = (0.5, 0.15, 0.15, 0.2)
MIN_LINES, MAX_LINES = 3, 14
_DEF = re.compile(r"( *)(?:async def|def|class) \w")
_PRINTABLE = re.compile(r"[ -~]*")


@dataclass(frozen=True)
class Snippet:
    """A code listing: its kind (one of ``KINDS``) and its lines as printed."""

    kind: str
    lines: tuple[str, ...]

    @property
    def width(self) -> int:
        """Characters in the longest line."""
        return max(len(ln) for ln in self.lines)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _dedent(lines: list[str]) -> tuple[str, ...]:
    cut = min(_indent(ln) for ln in lines if ln.strip())
    return tuple(ln[cut:].rstrip() for ln in lines)


def _clean(lines: list[str]) -> tuple[str, ...] | None:
    """The block dedented, with blank lines at its ends dropped; None when a line is not
    printable ASCII or the block is too short."""
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) < MIN_LINES or not all(_PRINTABLE.fullmatch(ln) for ln in lines):
        return None
    return _dedent(lines)


def definitions(source: list[str]) -> list[tuple[str, ...]]:
    """Every function or class of a module's source lines: its first ``MAX_LINES`` lines."""
    out = []
    for i, line in enumerate(source):
        m = _DEF.match(line)
        if not m:
            continue
        indent, j = len(m.group(1)), i + 1
        while j < len(source) and j - i < MAX_LINES and (not source[j].strip() or _indent(source[j]) > indent):
            j += 1
        block = _clean(source[i:j])
        if block is not None:
            out.append(block)
    return out


def doctests(source: list[str]) -> list[tuple[str, ...]]:
    """Every interactive session in a module's docstrings: ``>>>`` lines, their ``...``
    continuations and their output, up to a blank line or the docstring's end."""
    out = []
    i = 0
    while i < len(source):
        if not source[i].lstrip().startswith(">>> ") or (i and source[i - 1].lstrip().startswith((">>>", "..."))):
            i += 1
            continue
        indent, j = _indent(source[i]), i
        while (j < len(source) and j - i < MAX_LINES and source[j].strip() and _indent(source[j]) >= indent
               and '"""' not in source[j] and "'''" not in source[j]):
            j += 1
        block = _clean(source[i:j])
        if block is not None and sum(ln.startswith(">>>") for ln in block) >= 1:
            out.append(block)
        i = max(j, i + 1)
    return out


_C_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


def c_paragraphs(source: list[str]) -> list[tuple[str, ...]]:
    """Every paragraph (lines between blank lines) of a C file, 3-``MAX_LINES`` lines long,
    that holds 40 characters or more of code besides its comments."""
    out, para = [], []
    for line in source + [""]:
        if line.strip():
            para.append(line)
            continue
        code = "".join(_C_COMMENT.sub("", "\n".join(para)).split())
        if len(para) <= MAX_LINES and len(code) >= 40:
            block = _clean(para)
            if block is not None:
                out.append(block)
        para = []
    return out


def _headers() -> list[str]:
    """The C headers of the running Python's include directory, in a fixed order."""
    import sysconfig

    root = sysconfig.get_paths().get("include") or ""
    if not os.path.isdir(root):
        return []
    return sorted(os.path.join(d, f) for d, _dirs, files in os.walk(root) for f in files if f.endswith(".h"))


# Bump when _build's arrays change: the node cache then reads the sources again.
_BUILD_VERSION = 1


def _build() -> dict[str, np.ndarray]:
    """Every snippet of the python, doctest and c pools, as arrays (see :func:`pools`)."""
    from synth.cache import pack_strings

    found: dict[str, set[tuple[str, ...]]] = {"python": set(), "doctest": set(), "c": set()}
    for name in MODULES:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        if not origin or not origin.endswith(".py"):
            continue
        with open(origin, encoding="utf-8") as f:
            source = f.read().expandtabs(4).splitlines()
        found["python"].update(definitions(source))
        found["doctest"].update(doctests(source))
    for path in _headers():
        with open(path, encoding="utf-8", errors="replace") as f:
            found["c"].update(c_paragraphs(f.read().expandtabs(4).splitlines()))
    out = {}
    for kind, blocks in found.items():
        ordered = sorted(blocks, key=lambda b: (max(len(ln) for ln in b), b))
        out[f"{kind}.lines"] = pack_strings([ln for b in ordered for ln in b])
        out[f"{kind}.counts"] = np.asarray([len(b) for b in ordered], dtype=np.int32)
    return out


@functools.lru_cache(maxsize=1)
def pools() -> dict[str, tuple[Snippet, ...]]:
    """The python, doctest and c pools, each sorted by width (then by text) for bisecting.
    The c pool is empty where Python was installed without its headers. Read from the
    sources once per node (about 0.5 s) and kept in ``synth.cache``."""
    import sys
    import sysconfig

    from synth import cache

    k = cache.key("ocr1-code", _BUILD_VERSION, sys.version, sys.prefix, sysconfig.get_paths().get("include"),
                  cache.source_digest(__name__))
    a = cache.load_or_build("ocr1-code", k, _build)
    out = {}
    for kind in ("python", "doctest", "c"):
        lines, at = cache.unpack_strings(a[f"{kind}.lines"]), 0
        snippets = []
        for n in a[f"{kind}.counts"].tolist():
            snippets.append(Snippet(kind, tuple(lines[at:at + n])))
            at += n
        out[kind] = tuple(snippets)
    return out


def _key(rng: np.random.Generator, n_words: int) -> str:
    from synth import text_sources as ts

    return "_".join(ts.words(rng, "en", n_words))


def _json_value(rng: np.random.Generator, depth: int):
    r = rng.random()
    if depth < 2 and r < 0.15:
        return {_key(rng, int(rng.integers(1, 3))): _json_value(rng, depth + 1) for _ in range(int(rng.integers(1, 4)))}
    if depth < 2 and r < 0.25:
        return [int(v) for v in rng.integers(0, 1000, size=int(rng.integers(1, 4)))]
    if r < 0.45:
        return int(rng.integers(0, 100_000))
    if r < 0.6:
        return round(float(rng.uniform(-100, 100)), int(rng.integers(1, 4)))
    if r < 0.85:
        from synth import text_sources as ts

        return " ".join(ts.words(rng, "en", int(rng.integers(1, 4))))
    if r < 0.95:
        return bool(rng.random() < 0.5)
    return None


def json_snippet(rng: np.random.Generator, max_width: int) -> Snippet | None:
    """A JSON object of 2-6 keys, indented by 2 or 4, within ``max_width`` characters and
    ``MAX_LINES`` lines; None when three draws do not fit."""
    for _attempt in range(3):
        obj = {_key(rng, int(rng.integers(1, 3))): _json_value(rng, 1) for _ in range(int(rng.integers(2, 7)))}
        lines = tuple(json.dumps(obj, indent=int(rng.choice([2, 4]))).splitlines())
        if len(lines) <= MAX_LINES and max(len(ln) for ln in lines) <= max_width:
            return Snippet("json", lines)
    return None


def pick(rng: np.random.Generator, max_width: int) -> Snippet | None:
    """A listing of a kind drawn by ``KIND_WEIGHTS`` whose lines are at most ``max_width``
    characters; None when the drawn kind has none that narrow."""
    kind = KINDS[int(rng.choice(len(KINDS), p=KIND_WEIGHTS))]
    if kind == "json":
        return json_snippet(rng, max_width)
    n = bisect.bisect_right(_widths(kind), max_width)
    return pools()[kind][int(rng.integers(n))] if n else None


@functools.lru_cache(maxsize=len(KINDS))
def _widths(kind: str) -> tuple[int, ...]:
    return tuple(s.width for s in pools()[kind])
