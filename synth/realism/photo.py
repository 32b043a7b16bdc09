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

from synth.opencv import cv2
from synth.realism import ops
from synth.realism.backgrounds import background
from synth.realism.geom import homography_from_quads, translation

LOW = 4  # light field and background are drawn at 1/LOW scale and upsampled
PAGE_SCALE = (0.72, 0.95)  # page size relative to the frame before the fit
TURN_DEG = 7.0  # |in-plane rotation| bound
CORNER_JITTER = 0.06  # max perspective displacement of a corner, share of page size
MARGIN = 0.01  # the page quad stays this share of the frame inside it
BLUR_PASSES = (1, 1, 2)
SHADOW_PROB = 0.5
NOISE_SIGMA = (2.0, 7.0)


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


def _to_u8(a: np.ndarray) -> np.ndarray:
    """A float field in [0, 1] as uint8 0-255."""
    return np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)


def photo(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Photograph a page ((h, w) grey or (h, w, 3) RGB uint8 array); returns (RGB array,
    forward matrix). The output has the input's size, so the long side is unchanged.
    """
    h, w = img.shape[:2]
    grey = ops.one_channel(img)
    page = img if grey is None else grey  # a grey page is processed as one channel
    quad = _page_quad(rng, w, h)
    forward = homography_from_quads(np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64), quad)

    page, shift = ops.box_blur2(page, int(rng.choice(BLUR_PASSES)))
    # Sample the blurred page: output -> original is inv(forward), original -> blurred adds
    # `shift`; nearest sampling is enough because the blur already smoothed it.
    warped = ops.warp(page, forward @ translation(-shift, -shift), (w, h), 255)

    low = (max(2, -(-h // LOW)), max(2, -(-w // LOW)))
    light = _light_field(rng, low)
    mottle = 1.0 - float(rng.uniform(0.0, 0.06)) * ops.smooth_noise(rng, low, float(rng.uniform(6, 16)))
    warped = ops.shade(warped, ops.upsample(_to_u8(light * mottle), (w, h)))
    warped = ops.add_noise(warped, rng, float(rng.uniform(*NOISE_SIGMA)))

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
    # The surface (intensity x light x drop shadow, coloured) is made at 1/LOW scale and
    # upsampled: a photo's background is out of focus anyway.
    surface = np.clip(t[:, :, None] * (colour * cast).astype(np.float32) + 0.5, 0, 255).astype(np.uint8)
    out = ops.upsample(surface, (w, h))

    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in quad], fill=255)
    cv2.copyTo(ops.tint(warped, ink, paper), np.asarray(mask), out)
    return out, forward
