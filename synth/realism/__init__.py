"""Scan and photo realism for rendered pages, with the exact map of every box.

``apply(image, rng, scan, photo)`` degrades a clean page and returns the new image with
a callable that maps (N, 2) pixel points of the input to pixel points of the output; map
a box's 4 corners through it and take their bounding box (``transform_box`` does both).
Scan runs before photo when both are asked for (a scanned print, then photographed).
The output keeps the input's size, so the long side (the 1024 px budget) is unchanged;
a scan keeps the input's mode, a photo is always RGB.

See docs/realism.md for what each mode does and the transform contract.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from synth.realism.geom import IDENTITY, PointMap, transform_box
from synth.realism.ops import as_array, check_array, to_image
from synth.realism.photo import photo as _photo
from synth.realism.scan import scan as _scan

__all__ = ["apply", "transform_box", "PointMap", "IDENTITY"]


def apply(
    image: Image.Image | np.ndarray, rng: np.random.Generator, scan: bool, photo: bool
) -> tuple[Image.Image | np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Return (degraded image, point map input->output px) for a rendered page.

    ``image`` is a PIL image, 'L' or 'RGB' ('RGBA'/'P' pages are flattened to RGB first),
    or its pixels, an (h, w) or (h, w, 3) uint8 array; the result is of the same kind.
    With ``scan`` and ``photo`` both False the same object comes back with the identity
    map, and ``rng`` is not drawn from. The result is a pure function of the pixels and
    the generator's state; the input is never modified.
    """
    if not (scan or photo):
        return image, IDENTITY
    if isinstance(image, np.ndarray):
        pixels = check_array(image)
    else:
        pixels = as_array(image if image.mode in ("L", "RGB") else image.convert("RGB"))
    mapping = IDENTITY
    if scan:
        pixels, m = _scan(pixels, rng)
        mapping = mapping.then(PointMap(m))
    if photo:
        pixels, m = _photo(pixels, rng)
        mapping = mapping.then(PointMap(m))
    return (pixels if isinstance(image, np.ndarray) else to_image(pixels)), mapping
