"""A photographed page, SynthDoG-style: paper on a surface, seen in perspective, unevenly lit.

Steps: choose where the page's 4 corners land in a frame of the input's size (scale,
turn, per-corner perspective jitter, kept inside the frame), pre-blur the page slightly,
warp it with the exact homography, darken it by a smooth light field (gradient, vignette,
a soft shadow, paper mottling), add sensor noise, tint paper and ink, and lay it over a
procedural background that carries the same light and a soft drop shadow.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from synth.realism import ops
from synth.realism.backgrounds import background
from synth.realism.geom import homography_from_quads, pil_coefficients, translation

LOW = 4  # light field and background are drawn at 1/LOW scale and upsampled
PAGE_SCALE = (0.72, 0.95)  # page size relative to the frame before the fit
TURN_DEG = 7.0  # |in-plane rotation| bound
CORNER_JITTER = 0.06  # max perspective displacement of a corner, share of page size
MARGIN = 0.01  # the page quad stays this share of the frame inside it
BLUR_PASSES = (1, 1, 2)
SHADOW_PROB = 0.5
NOISE_SIGMA = (2.0, 7.0)
_BG_HEADROOM = 2.0  # surface intensities reach ~1.6; index 127 stands for 2.0
# Grey page value -> palette index 128..255 (the page's half of the shared palette).
_PAGE_INDEX = (128 + np.round(np.arange(256) * 127 / 255)).astype(np.uint8).tolist()


def _page_quad(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Where the page corners (TL, TR, BR, BL) land in the (w, h) frame."""
    s = float(rng.uniform(*PAGE_SCALE))
    half = np.array([[-w, -h], [w, -h], [w, h], [-w, h]], dtype=np.float64) * (s / 2.0)
    a = np.deg2rad(float(rng.uniform(-TURN_DEG, TURN_DEG)))
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    quad = half @ rot.T
    jitter = float(rng.uniform(0.0, CORNER_JITTER))
    quad += rng.uniform(-jitter, jitter, size=(4, 2)) * np.array([w * s, h * s])
    m = MARGIN * min(w, h)
    lo, hi = quad.min(axis=0), quad.max(axis=0)
    span = hi - lo
    k = min(1.0, (w - 2 * m) / span[0], (h - 2 * m) / span[1])
    quad = (quad - (lo + hi) / 2.0) * k
    slack = np.array([w - 2 * m, h - 2 * m]) - span * k
    centre = np.array([w / 2.0, h / 2.0]) + rng.uniform(-0.5, 0.5, size=2) * slack
    return quad + centre


def _light_field(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Float32 illumination in (0, 1] at low resolution: gradient, vignette, soft shadow."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = xx / max(w - 1, 1), yy / max(h - 1, 1)
    a = float(rng.uniform(0, 2 * np.pi))
    proj = (u - 0.5) * np.cos(a) + (v - 0.5) * np.sin(a)
    light = 1.0 - float(rng.uniform(0.0, 0.35)) * (proj + 0.5)
    r2 = ((u - 0.5) ** 2 + (v - 0.5) ** 2) * 2.0
    light *= 1.0 - float(rng.uniform(0.0, 0.3)) * r2
    if rng.random() < SHADOW_PROB:
        # A soft-edged shadow on one side of a wobbly line through the frame.
        px, py = rng.uniform(0.15, 0.85, size=2)
        b = float(rng.uniform(0, 2 * np.pi))
        wobble = (ops.smooth_noise(rng, shape, 3.0) - 0.5) * 0.15
        dist = (u - px) * np.cos(b) + (v - py) * np.sin(b) + wobble
        soft = float(rng.uniform(0.01, 0.08))
        depth = float(rng.uniform(0.2, 0.5))
        light *= 1.0 - depth / (1.0 + np.exp(-np.clip(dist / soft, -30, 30)))
    return light / light.max()


def _to_image(a: np.ndarray) -> Image.Image:
    """Float array in [0, 1] (or [0, 255] when 3-channel) to a uint8 PIL image."""
    if a.ndim == 2:
        return Image.fromarray(np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), "RGB")


def photo(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, np.ndarray]:
    """Photograph ``img`` ('L' or 'RGB') on a surface; returns (RGB image, forward matrix).

    The output has the input's size, so the long side is unchanged.
    """
    w, h = img.size
    page = img if img.mode == "L" else (img.convert("L") if ops.is_gray(img) else img)
    quad = _page_quad(rng, w, h)
    forward = homography_from_quads(np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64), quad)

    page, shift = ops.box_blur2(page, int(rng.choice(BLUR_PASSES)))
    coeffs = pil_coefficients(forward @ translation(-shift, -shift), affine=False)
    white = 255 if page.mode == "L" else (255, 255, 255)
    warped = page.transform(
        (w, h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.NEAREST, fillcolor=white
    )

    low = (max(2, -(-h // LOW)), max(2, -(-w // LOW)))
    light = _light_field(rng, low)
    mottle = 1.0 - float(rng.uniform(0.0, 0.06)) * ops.smooth_noise(rng, low, float(rng.uniform(6, 16)))
    page_light = _to_image(light * mottle).resize((w, h), Image.Resampling.BILINEAR)
    warped = Image.composite(warped, Image.new(warped.mode, (w, h), 0), page_light)
    warped = ops.add_noise(warped, ops.noise_layer(rng, (w, h), float(rng.uniform(*NOISE_SIGMA))))

    # Light colour (warm or cool) tints paper, ink and background alike.
    cast = np.array([1.0, 1.0 - rng.uniform(0, 0.04), 1.0 - rng.uniform(0, 0.1)])
    if rng.random() < 0.3:
        cast = cast[::-1]
    paper = np.array([rng.uniform(238, 255), 0, 0])
    paper[1] = paper[0] - rng.uniform(0, 8)
    paper[2] = paper[1] - rng.uniform(0, 18)
    paper *= cast
    ink = rng.uniform(10, 45) * cast

    t, colour = background(rng, low, float(LOW))
    sil = Image.new("L", (low[1], low[0]), 0)
    nudge = rng.uniform(-1.5, 1.5, size=2)
    ImageDraw.Draw(sil).polygon([tuple(p) for p in quad / LOW + nudge], fill=255)
    sil = sil.filter(ImageFilter.GaussianBlur(float(rng.uniform(1.0, 3.0))))
    t = t * light * (1.0 - float(rng.uniform(0.2, 0.5)) * np.asarray(sil, np.float32) / 255.0)
    # The surface is one grey channel (intensity x light x drop shadow) of palette indices
    # 0-127, upsampled; one palette lookup colours it, a third of the cost of RGB.
    levels = np.arange(128)[:, None] / 127.0
    surface_pal = levels * (colour * cast * _BG_HEADROOM)[None, :]
    bg = Image.fromarray(np.clip(t * (127.0 / _BG_HEADROOM) + 0.5, 0, 127).astype(np.uint8), "L")
    bg = bg.resize((w, h), Image.Resampling.BILINEAR)

    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in quad], fill=255)
    if warped.mode == "L":
        # A grey page takes indices 128-255 (its ink-to-paper ramp): page and surface are
        # merged as single-channel images and coloured by one lookup.
        page_pal = ink[None, :] + levels * (paper - ink)[None, :]
        out = Image.composite(warped.point(_PAGE_INDEX), bg, mask)
        return _colour(out, np.concatenate([surface_pal, page_pal])), forward
    ramp = np.arange(256) / 255.0
    luts = [np.clip(np.round(ink[c] + (paper[c] - ink[c]) * ramp), 0, 255).astype(np.uint8).tolist() for c in range(3)]
    return Image.composite(ops.apply_luts(warped, luts), _colour(bg, surface_pal), mask), forward


def _colour(index: Image.Image, palette: np.ndarray) -> Image.Image:
    """Colour an 'L' image of palette indices with an (n, 3) float RGB palette."""
    pal = np.clip(np.round(palette), 0, 255).astype(np.uint8)
    index.putpalette(pal.tobytes(), "RGB")  # turns the 'L' image into 'P' in place
    return index.convert("RGB")
