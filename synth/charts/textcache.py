"""Memoise matplotlib's text layout while a chart renders.

``Text._get_layout`` measures a string for a given font, size, alignment and rotation;
the result does not depend on where the text sits. matplotlib calls it for the same
text several times per chart (the layout pass, the axis, the legend box layout, the
draw), each time re-reading the font's metric tables. Inside ``memoised_text_layout``
the result is kept per chart, keyed by every input the method reads, so the values (and
the pixels) are exactly those of the uncached calls; the patch is removed on exit so no
other matplotlib user in the process is affected.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from matplotlib.text import Text

_ORIGINAL = Text._get_layout


def _key(text: Text, renderer) -> tuple:
    return (
        id(renderer), type(text), text._get_wrapped_text(), hash(text._fontproperties),
        text.figure.dpi,  # a SubFigure reports its root figure's dpi text.get_usetex(), text.get_parse_math(), text._linespacing,
        text._get_multialignment(), text.get_rotation(), text._horizontalalignment,
        text._verticalalignment, text.get_rotation_mode(),
    )


@contextlib.contextmanager
def memoised_text_layout() -> Iterator[None]:
    """Within the block, identical text layouts are computed once (per-chart cache)."""
    cache: dict = {}

    def layout(self: Text, renderer):
        key = _key(self, renderer)
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = _ORIGINAL(self, renderer)
        bbox, info, descent = hit
        # Callers get their own box and line list, as from an uncached call.
        return bbox.frozen(), list(info), descent

    Text._get_layout = layout
    try:
        yield
    finally:
        Text._get_layout = _ORIGINAL
