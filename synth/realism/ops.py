"""Pixel operations shared by the scan and photo realism pipelines.

All of them run in PIL's C code or in numpy on small arrays: per-pixel Python loops
would cost seconds per page. Randomness comes only from the caller's numpy Generator;
the per-process noise tiles are generated from a small integer drawn from it, so a
cache hit and a cache miss give the same pixels.
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image, ImageChops

NOISE_TILE = 1536  # side of a cached noise tile; larger images tile it
NOISE_VARIANTS = 4  # distinct tiles per process (2.25 MiB each)
_NOISE_SIGMA = 24.0  # the tiles' own standard deviation, in grey levels


@functools.lru_cache(maxsize=NOISE_VARIANTS)
def _noise_tile(key: int) -> Image.Image:
    """A grey noise tile N(128, 24), a pure function of ``key``."""
    g = np.random.default_rng(np.random.SeedSequence([0x5CA9, key]))
    a = g.standard_normal((NOISE_TILE, NOISE_TILE), dtype=np.float32) * _NOISE_SIGMA + 128.0
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "L")


def noise_layer(rng: np.random.Generator, size: tuple[int, int], sigma: float) -> Image.Image:
    """An 'L' image of zero-mean noise (stored around 128) with std ``sigma`` grey levels."""
    key = int(rng.integers(NOISE_VARIANTS))
    w, h = size
    tile = _noise_tile(key)
    if w <= NOISE_TILE and h <= NOISE_TILE:
        ox, oy = int(rng.integers(NOISE_TILE - w + 1)), int(rng.integers(NOISE_TILE - h + 1))
        out = tile.crop((ox, oy, ox + w, oy + h))
    else:
        # Larger than a tile: lay tiles on a grid shifted by a random offset.
        ox, oy = (int(v) for v in rng.integers(NOISE_TILE, size=2))
        out = Image.new("L", size)
        for y in range(-oy, h, NOISE_TILE):
            for x in range(-ox, w, NOISE_TILE):
                out.paste(tile, (x, y))
    k = sigma / _NOISE_SIGMA
    lut = np.clip(np.round(128.0 + (np.arange(256) - 128.0) * k), 0, 255).astype(np.uint8)
    return out.point(lut.tolist())


def add_noise(img: Image.Image, noise: Image.Image) -> Image.Image:
    """Add a centred-at-128 'L' noise layer to an 'L' or 'RGB' image (luma noise)."""
    if img.mode == "RGB":
        noise = noise.convert("RGB")
    return ImageChops.add(img, noise, 1.0, -128)


def tone_lut(lo: float, hi: float, gamma: float) -> list[int]:
    """A 256-entry curve: 0 -> lo, 255 -> hi, bent by ``gamma`` (>1 darkens mid-tones)."""
    if not 0 <= lo < hi <= 255 or gamma <= 0:
        raise ValueError(f"tone curve needs 0 <= lo < hi <= 255 and gamma > 0, got lo={lo}, hi={hi}, gamma={gamma}")
    v = (np.arange(256) / 255.0) ** gamma
    return np.clip(np.round(lo + (hi - lo) * v), 0, 255).astype(np.uint8).tolist()


def apply_luts(img: Image.Image, luts: list[list[int]]) -> Image.Image:
    """Apply one curve per output channel; an 'L' image with 3 curves becomes 'RGB'."""
    if img.mode == "L" and len(luts) == 3:
        return Image.merge("RGB", [img.point(lut) for lut in luts])
    if img.mode == "L":
        return img.point(luts[0])
    return img.point([v for lut in luts for v in lut])


def box_blur2(img: Image.Image, passes: int) -> tuple[Image.Image, float]:
    """Blur by ``passes`` 2x2 box averages; returns the image and the content shift.

    One pass averages each pixel with its right and lower neighbour, which moves the
    content by -0.5 px on both axes; the next pass looks left/up and moves it back, so
    two passes are a centred [1, 2, 1] kernel. Edges wrap (page margins are blank).
    """
    shift = 0.0
    for k in range(passes):
        step = -1 if k % 2 == 0 else 1
        img = ImageChops.add(img, ImageChops.offset(img, step, 0), 2.0)
        img = ImageChops.add(img, ImageChops.offset(img, 0, step), 2.0)
        shift += 0.5 * step
    return img, shift


def ink_bleed(img: Image.Image, full: bool) -> Image.Image:
    """Spread dark ink by one pixel left and up (``full``) or by half that darkness."""
    d = ImageChops.darker(img, ImageChops.offset(img, -1, 0))
    d = ImageChops.darker(d, ImageChops.offset(d, 0, -1))
    return d if full else ImageChops.add(img, d, 2.0)


def jpeg_roundtrip(img: Image.Image, quality: int) -> Image.Image:
    """Encode as baseline JPEG at ``quality`` in memory and decode it (same mode back)."""
    buf = io.BytesIO()
    opts = {"quality": int(quality), "optimize": False, "progressive": False}
    if img.mode == "RGB":
        opts["subsampling"] = 2  # 4:2:0, what cameras and most scanners write
    img.save(buf, "JPEG", **opts)
    buf.seek(0)
    with Image.open(buf) as dec:
        return dec.convert(img.mode)


def speckle(img: Image.Image, rng: np.random.Generator, density: float) -> Image.Image:
    """Salt-and-pepper: ``density`` of the pixels set to near-black or near-white."""
    w, h = img.size
    n = int(density * w * h)
    if n == 0:
        return img
    a = np.array(img)
    xs = rng.integers(w, size=n)
    ys = rng.integers(h, size=n)
    dark = rng.random(n) < 0.6
    vals = np.where(dark, rng.integers(0, 70, size=n), rng.integers(200, 256, size=n)).astype(np.uint8)
    a[ys, xs] = vals[:, None] if a.ndim == 3 else vals
    return Image.fromarray(a, img.mode)


def is_gray(img: Image.Image) -> bool:
    """True for an 'L' image or an 'RGB' one whose three channels are equal."""
    if img.mode == "L":
        return True
    r, g, b = img.split()
    return ImageChops.difference(r, g).getbbox() is None and ImageChops.difference(g, b).getbbox() is None


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: float) -> np.ndarray:
    """Float32 noise in about [0, 1], smooth at ``cells`` blobs across the shape's long side."""
    h, w = shape
    n = max(h, w)
    gh = max(2, int(np.ceil(cells * h / n)) + 1)
    gw = max(2, int(np.ceil(cells * w / n)) + 1)
    grid = Image.fromarray(rng.random((gh, gw), dtype=np.float32), "F")
    return np.asarray(grid.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
