"""Pixel operations shared by the scan and photo realism pipelines, on uint8 numpy arrays.

A page is an (h, w) array (grey) or an (h, w, 3) array (RGB). Every full-frame step is one
OpenCV call (one thread, baseline kernels: ``synth.opencv`` says why); only small arrays
(the light field, the surface, drawn at 1/4 scale) are computed in numpy. Randomness
comes only from the caller's numpy Generator; the per-process noise tiles are generated
from a small integer drawn from it, so a cache hit and a cache miss give the same pixels.

Geometry follows PIL's continuous pixel frame (see ``synth.realism.geom``): pixel ``(i, j)``
covers ``[i, i+1) x [j, j+1)``. OpenCV puts pixel centres at integers, so :func:`warp`
converts a forward map into OpenCV's inverse map with half-pixel shifts on both sides.
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image

from synth.opencv import cv2
from synth.realism.geom import translation

NOISE_TILE = 1536  # side of a cached noise tile; larger images tile it
NOISE_VARIANTS = 4  # distinct tiles per process (2.25 MiB each)
_NOISE_SIGMA = 24.0  # the tiles' own standard deviation, in grey levels
_HALF = translation(0.5, 0.5)  # OpenCV pixel index -> PIL continuous frame
_UNHALF = translation(-0.5, -0.5)


def as_array(img: Image.Image) -> np.ndarray:
    """The pixels of an 'L' or 'RGB' image: (h, w) or (h, w, 3) uint8 (a copy)."""
    if img.mode not in ("L", "RGB"):
        raise ValueError(f"realism works on 'L' or 'RGB' images, got mode {img.mode!r}")
    return np.asarray(img)


def check_array(a: np.ndarray) -> np.ndarray:
    """``a`` itself when it is a page's pixels: (h, w) or (h, w, 3) uint8."""
    if a.dtype != np.uint8 or not (a.ndim == 2 or a.ndim == 3 and a.shape[2] == 3):
        raise ValueError(f"realism works on (h, w) or (h, w, 3) uint8 pixels, got {a.dtype} {a.shape}")
    return a


def to_image(a: np.ndarray) -> Image.Image:
    """An (h, w) or (h, w, 3) uint8 array as an 'L' or 'RGB' image."""
    return Image.fromarray(a, "L" if a.ndim == 2 else "RGB")


def one_channel(a: np.ndarray) -> np.ndarray | None:
    """The page as one channel when it has only grey in it: an (h, w) array itself, the
    first channel of an (h, w, 3) one whose three channels are equal; else None."""
    if a.ndim == 2:
        return a
    r, g, b = cv2.split(a)
    return r if cv2.norm(r, g, cv2.NORM_INF) == 0 and cv2.norm(g, b, cv2.NORM_INF) == 0 else None


def gray(a: np.ndarray) -> np.ndarray:
    """One channel of the page: a grey page's own, or the luma of a colour page (ITU-R 601
    weights, PIL's and OpenCV's)."""
    g = one_channel(a)
    return g if g is not None else cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)


_TILE_BUILD_VERSION = 1


def _draw_noise_tile(key: int) -> np.ndarray:
    """Draw tile ``key``: N(128, 24) grey levels, uint8, from a fixed seed."""
    g = np.random.default_rng(np.random.SeedSequence([0x5CA9, key]))
    a = g.standard_normal((NOISE_TILE, NOISE_TILE), dtype=np.float32) * _NOISE_SIGMA + 128.0
    return np.clip(a, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=NOISE_VARIANTS)
def _noise_tile(key: int) -> np.ndarray:
    """A grey noise tile N(128, 24) (uint8, read-only), a pure function of ``key``.

    Drawing one costs 25-85 ms, and a scanned or photographed run soon asks for all four:
    about 0.15 s of every worker's start. The node cache (``synth.cache``) keeps them, so
    later processes load their bytes in 2-3 ms; NumPy's version is in the key because
    its generator's stream is what the tile is."""
    from synth import cache

    k = cache.key("noise-tile", _TILE_BUILD_VERSION, key, NOISE_TILE, _NOISE_SIGMA, np.__version__)
    tile = cache.load_or_build("noise-tile", k, lambda: {"tile": _draw_noise_tile(key)}, lock=False)["tile"]
    if tile.flags.writeable:  # a fresh build; a loaded file is a read-only view already
        tile.flags.writeable = False
    return tile


def add_noise(a: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Add zero-mean luma noise of std ``sigma`` grey levels to a grey or RGB page: a crop
    of a cached tile at an offset drawn from ``rng``, scaled as it is added (one pass)."""
    key = int(rng.integers(NOISE_VARIANTS))
    h, w = a.shape[:2]
    tile = _noise_tile(key)
    if w <= NOISE_TILE and h <= NOISE_TILE:
        ox, oy = int(rng.integers(NOISE_TILE - w + 1)), int(rng.integers(NOISE_TILE - h + 1))
        noise = tile[oy:oy + h, ox:ox + w]
    else:
        # Larger than a tile: lay tiles on a grid shifted by a random offset.
        ox, oy = (int(v) for v in rng.integers(NOISE_TILE, size=2))
        reps = (-(-(h + oy) // NOISE_TILE), -(-(w + ox) // NOISE_TILE))
        noise = np.tile(tile, reps)[oy:oy + h, ox:ox + w]
    if a.ndim == 3:
        noise = cv2.merge([noise, noise, noise])
    k = sigma / _NOISE_SIGMA
    return cv2.addWeighted(a, 1.0, noise, k, -128.0 * k)  # a + k (noise - 128), rounded once


def tone_lut(lo: float, hi: float, gamma: float) -> np.ndarray:
    """A 256-entry uint8 curve: 0 -> lo, 255 -> hi, bent by ``gamma`` (>1 darkens mid-tones)."""
    if not 0 <= lo < hi <= 255 or gamma <= 0:
        raise ValueError(f"tone curve needs 0 <= lo < hi <= 255 and gamma > 0, got lo={lo}, hi={hi}, gamma={gamma}")
    v = (np.arange(256) / 255.0) ** gamma
    return np.clip(np.round(lo + (hi - lo) * v), 0, 255).astype(np.uint8)


def tint(a: np.ndarray, ink: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """An RGB page from a grey or RGB one, each channel ramped linearly: 0 -> ``ink[c]``,
    255 -> ``paper[c]``."""
    ink, paper = np.asarray(ink, np.float64), np.asarray(paper, np.float64)
    slope = (paper - ink) / 255.0
    if a.ndim == 2:  # three curves of one channel, interleaved (cheaper than widening first)
        ramp = np.arange(256.0)
        return cv2.merge([cv2.LUT(a, np.clip(np.round(ink[c] + slope[c] * ramp), 0, 255).astype(np.uint8))
                          for c in range(3)])
    return cv2.transform(a, np.concatenate([np.diag(slope), ink[:, None]], axis=1))  # one affine map per channel


def box_blur2(a: np.ndarray, passes: int) -> tuple[np.ndarray, float]:
    """Blur by ``passes`` 2x2 box averages; returns the array and the content shift.

    One pass averages each pixel with its right and lower neighbours, which moves the
    content by -0.5 px on both axes; the next pass looks left/up and moves it back, so two
    passes are a centred [1, 2, 1] kernel (run as one 3x3 filter). The last row and column
    repeat at the edges (page margins are blank).
    """
    for _ in range(passes // 2):
        a = cv2.GaussianBlur(a, (3, 3), 0, borderType=cv2.BORDER_REPLICATE)  # [1 2 1]/4 both ways
    if passes % 2:
        a = cv2.blur(a, (2, 2), anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
        return a, -0.5
    return a, 0.0


def warp(a: np.ndarray, forward: np.ndarray, size: tuple[int, int], fill, affine: bool = False) -> np.ndarray:
    """Warp ``a`` so content moves as the 3x3 ``forward`` (PIL frame) says; nearest samples,
    ``fill`` where no input lands; ``size`` = (w, h) of the output."""
    m = _UNHALF @ np.linalg.inv(forward) @ _HALF  # output index -> input index
    flags = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    fill = (fill,) * 3 if np.isscalar(fill) else tuple(fill)
    if affine:
        return cv2.warpAffine(a, m[:2] / m[2, 2], size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    return cv2.warpPerspective(a, m / m[2, 2], size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=fill)


def upsample(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a small field to ``size`` = (w, h) (pixel centres aligned)."""
    return cv2.resize(a, size, interpolation=cv2.INTER_LINEAR)


def shade(a: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Darken a grey or RGB page by an (h, w) uint8 light field (255 = unchanged)."""
    if a.ndim == 3:
        light = cv2.merge([light, light, light])
    return cv2.multiply(a, light, scale=1.0 / 255.0)


def ink_bleed(a: np.ndarray, full: bool) -> np.ndarray:
    """Spread dark ink by one pixel left and up (``full``) or by half that darkness."""
    d = cv2.erode(a, np.ones((2, 2), np.uint8), anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    return d if full else cv2.addWeighted(a, 0.5, d, 0.5, 0.0)


def jpeg_roundtrip(a: np.ndarray, quality: int) -> np.ndarray:
    """Encode as baseline JPEG at ``quality`` in memory and decode it (same shape back)."""
    buf = io.BytesIO()
    opts = {"quality": int(quality), "optimize": False, "progressive": False}
    if a.ndim == 3:
        opts["subsampling"] = 2  # 4:2:0, what cameras and most scanners write
    to_image(a).save(buf, "JPEG", **opts)
    buf.seek(0)
    with Image.open(buf) as dec:
        return np.asarray(dec.convert("L" if a.ndim == 2 else "RGB"))


def speckle(a: np.ndarray, rng: np.random.Generator, density: float) -> np.ndarray:
    """Salt-and-pepper: ``density`` of the pixels set to near-black or near-white."""
    h, w = a.shape[:2]
    n = int(density * w * h)
    if n == 0:
        return a
    a = a.copy()
    xs = rng.integers(w, size=n)
    ys = rng.integers(h, size=n)
    dark = rng.random(n) < 0.6
    vals = np.where(dark, rng.integers(0, 70, size=n), rng.integers(200, 256, size=n)).astype(np.uint8)
    a[ys, xs] = vals[:, None] if a.ndim == 3 else vals
    return a


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: float) -> np.ndarray:
    """Float32 noise in about [0, 1], smooth at ``cells`` blobs across the shape's long side."""
    h, w = shape
    n = max(h, w)
    gh = max(2, int(np.ceil(cells * h / n)) + 1)
    gw = max(2, int(np.ceil(cells * w / n)) + 1)
    grid = Image.fromarray(rng.random((gh, gw), dtype=np.float32), "F")
    return np.asarray(grid.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
