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
from synth.realism.photo import photo as _photo
from synth.realism.scan import scan as _scan

__all__ = ["apply", "transform_box", "PointMap", "IDENTITY"]


def apply(
    image: Image.Image, rng: np.random.Generator, scan: bool, photo: bool
) -> tuple[Image.Image, Callable[[np.ndarray], np.ndarray]]:
    """Return (degraded image, point map input->output px) for a rendered page.

    ``image`` is 'L' or 'RGB' ('RGBA'/'P' pages are flattened to RGB first). With
    ``scan`` and ``photo`` both False the same image object comes back with the identity
    map, and ``rng`` is not drawn from. The result is a pure function of the image and
    the generator's state.
    """
    if not (scan or photo):
        return image, IDENTITY
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    mapping = IDENTITY
    if scan:
        image, m = _scan(image, rng)
        mapping = mapping.then(PointMap(m))
    if photo:
        image, m = _photo(image, rng)
        mapping = mapping.then(PointMap(m))
    return image, mapping
