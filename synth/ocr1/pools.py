"""Warm the node's cache with everything an ocr1 recipe draws from.

Pages draw from finite pools (display equations, inline formulas, charts) and text models
(the English word chain, the Chinese lexicon, code listings). Each product is built the
first time any process on the node needs it and kept in ``synth.cache``; :func:`warm`
builds them all ahead, so that no worker of a run pays for them (``python -m
synth.cache``, or once when a node image is built).
"""

from __future__ import annotations

from synth.ocr1.config import Config


def warm(config: Config | None = None) -> dict[str, int]:
    """Build every cached product ``config`` can draw from; returns how many of each."""
    from synth.ocr1 import code_sources, equations, figures, hyphenation, inline_math
    from synth.text_sources import english_words, wiki, zh

    cfg = config or Config()
    wiki.chain()
    zh.lexicon()
    english_words()
    code_sources.pools()
    if cfg.hyphenate_prob > 0 and cfg.langs.get("en", 0) > 0:
        hyphenation.ready()
    for fontset in equations.FONTSETS:  # pages pick the fontset matching their text face
        for i in range(cfg.equation_pool):
            equations.rasterize(equations.entry(i), fontset)
        for i in range(cfg.inline_math_pool):
            equations.rasterize(inline_math.entry(i), fontset)
    tiles = 0
    if cfg.scan_prob > 0 or cfg.photo_prob > 0:  # the looks' sensor noise
        from synth.realism import ops

        tiles = sum(ops._noise_tile(k) is not None for k in range(ops.NOISE_VARIANTS))
    charts = 0
    if cfg.chart_prob > 0:
        for lang, weight in cfg.langs.items():
            if weight > 0:
                charts += sum(figures._pooled_chart(i, lang) is not None for i in range(cfg.chart_pool))
    return {"equations": cfg.equation_pool * len(equations.FONTSETS),
            "inline_formulas": cfg.inline_math_pool * len(equations.FONTSETS), "charts": charts,
            "noise_tiles": tiles}
