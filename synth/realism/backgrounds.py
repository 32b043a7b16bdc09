"""Procedural surfaces a photographed page lies on: wood, fabric, plain table, stone.

Each is a float32 intensity field at a reduced scale times one RGB colour, so the caller
can light and upsample a single grey channel and colour it with per-channel curves (a
real photo's background is out of focus anyway). Made from smooth noise, sines and
gradients; nothing is loaded from disk.
"""

from __future__ import annotations

import numpy as np

from synth.realism.ops import smooth_noise

KINDS = ("wood", "fabric", "table", "stone")


def _wood(rng: np.random.Generator, h: int, w: int, px: float) -> tuple[np.ndarray, np.ndarray]:
    """Planks of rings: sines along a direction, bent by smooth noise; ``px`` = full-res px per cell."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    vertical = rng.random() < 0.5
    across = xx if vertical else yy  # planks and rings run across this axis
    plank = float(rng.uniform(90, 220)) / px
    warp = smooth_noise(rng, (h, w), float(rng.uniform(2, 5))) * float(rng.uniform(4, 12))
    period = float(rng.uniform(12, 32)) / px
    rings = np.sin(2 * np.pi * (across + warp) / period)
    grain = smooth_noise(rng, (h, w), float(rng.uniform(20, 40)))
    t = 0.55 + 0.2 * rings + 0.25 * (grain - 0.5)
    seam = np.abs(((across / plank) % 1.0) - 0.5) > 0.485  # dark gaps between planks
    t = np.where(seam, t * 0.45, t)
    base = np.array(rng.choice([(150, 100, 60), (190, 140, 90), (110, 70, 40), (200, 170, 130)]), np.float32)
    return t * 1.3, base * float(rng.uniform(0.8, 1.15))


def _fabric(rng: np.random.Generator, h: int, w: int, px: float) -> tuple[np.ndarray, np.ndarray]:
    """A woven cloth: a fine checker of threads over broad soft folds."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = max(2.2, float(rng.uniform(8, 16)) / px)
    weave = 0.5 + 0.25 * np.sin(2 * np.pi * xx / period) * np.sin(2 * np.pi * yy / period)
    folds = smooth_noise(rng, (h, w), float(rng.uniform(2, 4)))
    t = 0.6 * weave + 0.4 + 0.35 * (folds - 0.5)
    return t, rng.uniform(40, 220, size=3).astype(np.float32)


def _table(rng: np.random.Generator, h: int, w: int, px: float) -> tuple[np.ndarray, np.ndarray]:
    """A plain surface: one colour, a broad gradient and faint mottling."""
    base = np.array(
        rng.choice([(235, 235, 232), (60, 60, 64), (30, 30, 30), (120, 130, 140), (200, 205, 190), (70, 90, 120)]),
        np.float32,
    )
    g = smooth_noise(rng, (h, w), 1.5)
    mottle = smooth_noise(rng, (h, w), float(rng.uniform(10, 30)))
    return 0.85 + 0.2 * (g - 0.5) + 0.06 * (mottle - 0.5), base


def _stone(rng: np.random.Generator, h: int, w: int, px: float) -> tuple[np.ndarray, np.ndarray]:
    """Granite-like: several octaves of noise with sparse dark flecks."""
    t = np.zeros((h, w), np.float32)
    amp = 0.5
    for cells in (4, 12, 36):
        t += amp * smooth_noise(rng, (h, w), cells)
        amp *= 0.6
    fleck = rng.random((h, w), dtype=np.float32) < 0.04
    t = np.where(fleck, t * 0.5, t) / 0.98
    base = np.array(rng.choice([(170, 165, 160), (120, 110, 105), (210, 200, 190)]), np.float32)
    return 0.45 + 0.7 * t, base


_DRAW = {"wood": _wood, "fabric": _fabric, "table": _table, "stone": _stone}


def background(rng: np.random.Generator, shape: tuple[int, int], px: float) -> tuple[np.ndarray, np.ndarray]:
    """A random surface: (float32 intensity of ``shape`` (h, w) around 1, RGB colour 0-255).

    ``px`` is how many full-resolution pixels one cell of ``shape`` stands for.
    """
    kind = KINDS[int(rng.integers(len(KINDS)))]
    t, colour = _DRAW[kind](rng, shape[0], shape[1], px)
    return t.astype(np.float32), np.asarray(colour, dtype=np.float32)
