"""Scan-like degradation of a rendered page: skew, blur, tone, sensor noise, specks, JPEG.

The only geometry is a small rotation about the page centre, scaled down just enough that
the rotated page still fits the same frame (nothing is cut off, the size is kept), plus a
shift within the slack that leaves. ``scan`` returns that map as a 3x3 matrix so that box
corners follow the pixels exactly.
"""

from __future__ import annotations

import numpy as np

from synth.opencv import cv2
from synth.realism import ops
from synth.realism.geom import rotation_scale, translation

MAX_SKEW_DEG = 2.0  # |rotation| bound
SKEW_PROB = 0.85  # share of scans that are skewed at all
GRAY_SCAN_PROB = 0.5  # colour pages scanned in greyscale (and processed 3x cheaper)
BLUR_PASSES = (0, 1, 1, 2)  # drawn uniformly: 2x2 box passes (2 = a [1,2,1] kernel)
BLEED_PROB = 0.2
NOISE_PROB = 0.8
NOISE_SIGMA = (2.0, 9.0)  # grey levels
SPECKLE_PROB = 0.3
SPECKLE_DENSITY = (5e-5, 6e-4)  # share of pixels
JPEG_PROB = 0.7
JPEG_QUALITY = (30, 90)
DARK_LID_PROB = 0.15  # the uncovered scanner bed shows black instead of the white lid


def _skew(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """The rotate-and-fit matrix: a small turn, scaled to fit (w, h), shifted in the slack."""
    angle = float(rng.uniform(-MAX_SKEW_DEG, MAX_SKEW_DEG))
    a = np.deg2rad(abs(angle))
    c, s = np.cos(a), np.sin(a)
    fit = min(w / (w * c + h * s), h / (w * s + h * c))
    scale = fit * float(rng.uniform(0.97, 1.0))
    bw, bh = scale * (w * c + h * s), scale * (w * s + h * c)
    dx = float(rng.uniform(-0.5, 0.5)) * (w - bw)
    dy = float(rng.uniform(-0.5, 0.5)) * (h - bh)
    return translation(dx, dy) @ rotation_scale(angle, scale, w / 2.0, h / 2.0)


def scan(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Degrade a page ((h, w) grey or (h, w, 3) RGB uint8 array) like a flatbed scan;
    returns (array of the input's shape, forward matrix)."""
    h, w = img.shape[:2]
    gray_scan = rng.random() < GRAY_SCAN_PROB
    if gray_scan:
        work = ops.gray(img)
    else:
        grey = ops.one_channel(img)
        work = img if grey is None else grey

    if rng.random() < BLEED_PROB:
        work = ops.ink_bleed(work, full=bool(rng.random() < 0.5))
    passes = int(rng.choice(BLUR_PASSES))
    work, shift = ops.box_blur2(work, passes)
    # The blur moved content by `shift`; forward maps below start from the original page.
    forward = translation(shift, shift)

    if rng.random() < SKEW_PROB:
        skew = _skew(rng, w, h)
        dark = rng.random() < DARK_LID_PROB
        lid = int(rng.integers(10, 60)) if dark else int(rng.integers(225, 256))
        # Sample the blurred image: output -> original is inv(skew), original -> blurred
        # adds `shift`; nearest sampling is enough because the blur already smoothed it.
        work = ops.warp(work, skew @ translation(-shift, -shift), (w, h), lid, affine=True)
        forward = skew

    lo = float(rng.uniform(0.0, 50.0))
    hi = float(rng.uniform(215.0, 255.0))
    work = cv2.LUT(work, ops.tone_lut(lo, hi, float(rng.uniform(0.7, 1.5))))

    if rng.random() < NOISE_PROB:
        work = ops.add_noise(work, rng, float(rng.uniform(*NOISE_SIGMA)))
    if rng.random() < SPECKLE_PROB:
        work = ops.speckle(work, rng, float(rng.uniform(*SPECKLE_DENSITY)))

    if rng.random() < JPEG_PROB:
        # A grey scan is saved as a grey JPEG (as scanners do), at half the cost of colour.
        work = ops.jpeg_roundtrip(work, int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))
    if work.ndim != img.ndim:
        work = cv2.cvtColor(work, cv2.COLOR_GRAY2RGB)
    return work, forward
