"""pyphen's hyphenation patterns, parsed once per node instead of once per process.

reportlab hyphenates a paragraph through pyphen (``Pyphen(lang=...)`` on every wrap), and
pyphen keeps each parsed pattern file in ``pyphen.hdcache`` for the process. Parsing
``hyph_en_US.dic`` costs about 40 ms (a regular expression per line), which every worker
paid on its first hyphenated page. Here the parsed patterns are stored in ``synth.cache``
as plain arrays and put into ``pyphen.hdcache`` before reportlab asks for them; the
``HyphDict`` made from them holds the same patterns as one pyphen parses
(tests/test_ocr1_hyphenation.py), so pages are the same bytes.
"""

from __future__ import annotations

import functools

import numpy as np

LANG = "en_US"
_BUILD_VERSION = 1
_WORDS = 32_768  # words whose hyphenation points a process remembers (pyphen's own memo has no bound)


class _BoundedMemo(dict):
    """pyphen's per-word memo (``HyphDict.cache``: ``get`` and item assignment), holding at
    most ``size`` words: the oldest is forgotten when a new one comes. pyphen's own dict
    kept every word a worker ever hyphenated, growing with the pages made (about 5
    entries a page, measured); a forgotten word is worked out again, to the same points."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def __setitem__(self, word, points) -> None:
        if len(self) >= self.size and word not in self:
            del self[next(iter(self))]
        super().__setitem__(word, points)


def _build(path) -> dict[str, np.ndarray]:
    import pyphen

    from synth import cache

    hd = pyphen.HyphDict(path)
    keys = list(hd.patterns)
    starts, lengths, flat = [], [], []
    for k in keys:
        start, values = hd.patterns[k]
        if any(type(v) is not int for v in values):  # a nonstandard hyphenation (DataInt): not stored
            return {"unsupported": np.ones(1, np.uint8)}
        starts.append(start)
        lengths.append(len(values))
        flat.extend(values)
    return {"keys": cache.pack_strings(keys), "starts": np.asarray(starts, np.int32),
            "lengths": np.asarray(lengths, np.int32), "values": np.asarray(flat, np.int16)}


def _from_arrays(a: dict[str, np.ndarray]):
    """A ``pyphen.HyphDict`` holding the stored patterns, as ``HyphDict.__init__`` leaves it."""
    import pyphen

    from synth import cache

    keys = cache.unpack_strings(a["keys"])
    values = a["values"].tolist()
    patterns, at = {}, 0
    for k, start, n in zip(keys, a["starts"].tolist(), a["lengths"].tolist()):
        patterns[k] = start, tuple(values[at:at + n])
        at += n
    hd = pyphen.HyphDict.__new__(pyphen.HyphDict)
    hd.patterns, hd.cache, hd.maxlen = patterns, _BoundedMemo(_WORDS), max(map(len, patterns))
    return hd


@functools.lru_cache(maxsize=8)  # a few languages at most; pyphen.hdcache holds the patterns
def ready(lang: str = LANG) -> None:
    """Make pyphen's patterns for ``lang`` ready in this process from the node's cache
    (building the cached arrays on first use); reportlab's hyphenation then finds them."""
    import pyphen

    from synth import cache

    path = pyphen.LANGUAGES[pyphen.language_fallback(lang)]
    if path in pyphen.hdcache:
        return
    a = cache.load_or_build("hyphenation", cache.key("hyphenation", _BUILD_VERSION, lang, cache.file_stamp(path),
                                                     cache.library_versions("pyphen")),
                            lambda: _build(path), lock=False)
    if "unsupported" not in a:
        pyphen.hdcache[path] = _from_arrays(a)
