"""Scan/photo realism: boxes follow the ink exactly, output is deterministic and sized right.

Pages are rendered here with PIL (black rectangles at known places and DejaVu Sans words,
whose ink boxes are measured on the clean render). The realism's random draws never depend
on pixel content, so degrading the same page without its black ink under the same seed
gives the identical background, noise and lighting: their difference is exactly where the
ink went.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from synth import realism
from synth.realism import ops as realism_ops
from synth.realism.geom import PointMap, homography_from_quads, pil_coefficients

W, H = 724, 1024
FONT = str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")
RECTS = [(80, 90, 220, 150), (400, 80, 640, 130), (300, 420, 420, 560), (90, 780, 330, 850), (480, 830, 600, 940)]
WORDS = [((90, 260), "Optical"), ((330, 270), "compression"), ((110, 650), "DeepEncoder"), ((420, 660), "tokens")]
MODES = [(True, False), (False, True), (True, True)]
SEEDS = range(6)


def _page(ink: bool, colour: bool = False, size: tuple[int, int] = (W, H)) -> Image.Image:
    """A white page with (when ``ink``) black rectangles and words; ``colour`` adds a red patch."""
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    if colour:
        d.rectangle((560, 440, 660, 520), fill=(210, 40, 40))
    if ink:
        for r in RECTS:
            d.rectangle((r[0], r[1], r[2] - 1, r[3] - 1), fill="black")
        font = ImageFont.truetype(FONT, 28)
        for pos, word in WORDS:
            d.text(pos, word, font=font, fill="black")
    return img


def _ink_boxes() -> list[tuple[float, float, float, float]]:
    """Pixel boxes (x1, y1, x2, y2, edges) of every rectangle and word, words measured on ink."""
    a = np.asarray(_page(True).convert("L")) < 128
    boxes = [tuple(float(v) for v in r) for r in RECTS]
    font = ImageFont.truetype(FONT, 28)
    d = ImageDraw.Draw(Image.new("L", (W, H)))
    for pos, word in WORDS:
        x1, y1, x2, y2 = (int(v) for v in d.textbbox(pos, word, font=font))
        ys, xs = np.nonzero(a[y1 - 2 : y2 + 2, x1 - 2 : x2 + 2])
        boxes.append((x1 - 2 + xs.min(), y1 - 2 + ys.min(), x1 - 2 + xs.max() + 1.0, y1 - 2 + ys.max() + 1.0))
    return boxes


BOXES = _ink_boxes()
CLEAN_INK = np.asarray(_page(True).convert("L")) < 128


def _ink_strength(seed: int, scan: bool, photo: bool, colour: bool = False):
    """(how much the ink darkened each output pixel, relative to the lit paper there; point map)."""
    out, fn = realism.apply(_page(True, colour), np.random.default_rng(seed), scan, photo)
    blank, fn2 = realism.apply(_page(False, colour), np.random.default_rng(seed), scan, photo)
    assert np.array_equal(fn.matrix, fn2.matrix)
    paper = np.asarray(blank.convert("L"), np.float32)
    # Dividing by the blank render's brightness cancels the uneven lighting and shadows.
    return (paper - np.asarray(out.convert("L"), np.float32)) / np.maximum(paper, 1.0), fn


def _local_mask(strength: np.ndarray, window, level: float) -> np.ndarray:
    """Ink pixels of a window: darkened by more than ``level`` of the window's full ink."""
    x1, y1, x2, y2 = window
    local = strength[y1:y2, x1:x2]
    return local > level * np.percentile(local, 99.5)


def _ideal_mask(fn: PointMap, box, window) -> np.ndarray:
    """Output pixels (inside ``window``) whose centre maps back inside ``box``."""
    wx1, wy1, wx2, wy2 = window
    ys, xs = np.mgrid[wy1:wy2, wx1:wx2]
    pts = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5, np.ones(xs.size)])
    back = np.linalg.inv(fn.matrix) @ pts
    bx, by = back[0] / back[2], back[1] / back[2]
    x1, y1, x2, y2 = box
    return ((bx >= x1) & (bx < x2) & (by >= y1) & (by < y2)).reshape(xs.shape)


def _mapped_ink_box(fn, box) -> np.ndarray:
    """Bounding box of the clean page's ink pixels inside ``box``, every pixel corner mapped."""
    x1, y1, x2, y2 = (int(v) for v in box)
    ys, xs = np.nonzero(CLEAN_INK[y1:y2, x1:x2])
    xs, ys = xs + x1, ys + y1
    corners = np.concatenate([np.stack([xs + dx, ys + dy], axis=1) for dx in (0, 1) for dy in (0, 1)])
    m = fn(corners.astype(float))
    return np.concatenate([m.min(axis=0), m.max(axis=0)])


@pytest.mark.parametrize("scan,photo", MODES)
def test_boxes_cover_their_ink_tightly(scan: bool, photo: bool) -> None:
    for seed in SEEDS:
        strength, fn = _ink_strength(seed, scan, photo)
        for box in BOXES:
            tb = np.array(realism.transform_box(fn, box))
            # A neighbourhood well beyond the box but short of the next box.
            win = (int(tb[0]) - 14, int(tb[1]) - 14, int(np.ceil(tb[2])) + 14, int(np.ceil(tb[3])) + 14)
            ys, xs = np.nonzero(_local_mask(strength, win, 0.3))
            assert xs.size > 0, f"seed {seed}: no ink found for box {box}"
            seen = np.array([win[0] + xs.min(), win[1] + ys.min(), win[0] + xs.max() + 1, win[1] + ys.max() + 1], float)
            where = f"seed {seed} mode {scan, photo} box {box}: ink {seen.tolist()} vs box {tb.tolist()}"
            # The mapped box holds all the ink (blur and bleed may add a pixel) ...
            assert seen[0] >= tb[0] - 2 and seen[1] >= tb[1] - 2, where
            assert seen[2] <= tb[2] + 2 and seen[3] <= tb[3] + 2, where
            # ... and the ink sits where its own mapped pixels say, within a few px.
            assert np.abs(seen - _mapped_ink_box(fn, box)).max() <= 2.5, where


@pytest.mark.parametrize("scan,photo", MODES)
def test_rectangle_pixels_land_where_the_map_says(scan: bool, photo: bool) -> None:
    offsets = []
    for seed in SEEDS:
        strength, fn = _ink_strength(seed, scan, photo)
        for box in BOXES[: len(RECTS)]:
            tb = realism.transform_box(fn, box)
            win = (int(tb[0]) - 6, int(tb[1]) - 6, int(np.ceil(tb[2])) + 6, int(np.ceil(tb[3])) + 6)
            seen = _local_mask(strength, win, 0.5)
            ideal = _ideal_mask(fn, box, win)
            iou = (seen & ideal).sum() / (seen | ideal).sum()
            assert iou > 0.9, f"seed {seed} mode {scan, photo} box {box}: IoU {iou:.3f}"
            offsets.append(np.argwhere(seen).mean(axis=0) - np.argwhere(ideal).mean(axis=0))
    offsets = np.array(offsets)
    # Noise flips single edge pixels, so one rectangle may be off by a fraction of a pixel,
    # but a half-pixel convention slip would move all of them the same way.
    assert np.abs(offsets).max() < 1.0, offsets
    assert np.abs(offsets.mean(axis=0)).max() < 0.15, offsets.mean(axis=0)


def test_colour_page_photo_keeps_boxes() -> None:
    for seed in SEEDS[:3]:
        strength, fn = _ink_strength(seed, False, True, colour=True)
        for box in BOXES[: len(RECTS)]:
            x1, y1, x2, y2 = (int(round(v)) for v in realism.transform_box(fn, box))
            assert strength[y1:y2, x1:x2].mean() > 0.5


@pytest.mark.parametrize("scan,photo", MODES)
def test_same_seed_same_bytes_and_cache_does_not_matter(scan: bool, photo: bool) -> None:
    page = _page(True, colour=True)
    a, fa = realism.apply(page, np.random.default_rng(11), scan, photo)
    realism_ops._noise_tile.cache_clear()  # a fresh worker process must produce the same pixels
    b, fb = realism.apply(page, np.random.default_rng(11), scan, photo)
    c, _ = realism.apply(page, np.random.default_rng(12), scan, photo)
    assert a.tobytes() == b.tobytes() and a.mode == b.mode
    assert np.array_equal(fa(np.array([[10.0, 20.0]])), fb(np.array([[10.0, 20.0]])))
    assert a.tobytes() != c.tobytes()


def test_identity_when_no_mode_is_asked() -> None:
    page = _page(True)
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    out, fn = realism.apply(page, rng, False, False)
    assert out is page
    pts = np.array([[0.0, 0.0], [123.5, 456.25], [W, H]])
    assert np.array_equal(fn(pts), pts)
    assert rng.bit_generator.state == state
    assert realism.transform_box(fn, (1, 2, 3, 4)) == (1.0, 2.0, 3.0, 4.0)


@pytest.mark.parametrize("size", [(724, 1024), (1024, 724), (1280, 905), (1600, 1100), (300, 200), (9, 7)])
@pytest.mark.parametrize("scan,photo", MODES)
def test_size_mode_and_page_stays_in_frame(size: tuple[int, int], scan: bool, photo: bool) -> None:
    for mode in ("L", "RGB"):
        page = _page(False, size=size).convert(mode)
        before = page.tobytes()
        out, fn = realism.apply(page, np.random.default_rng(5), scan, photo)
        assert out.size == size and max(out.size) == max(size)
        assert out.mode == ("RGB" if photo else mode)
        assert page.tobytes() == before  # the input is not modified in place
        x1, y1, x2, y2 = realism.transform_box(fn, (0, 0, size[0], size[1]))
        assert x1 >= 0 and y1 >= 0 and x2 <= size[0] and y2 <= size[1]


def test_photo_shows_a_background_around_the_page() -> None:
    # Across seeds the frame's corner pixels are surface, not paper: they vary in colour.
    corners = []
    for seed in range(8):
        out, fn = realism.apply(_page(False), np.random.default_rng(seed), False, True)
        x1, y1, x2, y2 = realism.transform_box(fn, (0, 0, W, H))
        assert (x2 - x1) * (y2 - y1) < 0.95 * W * H
        corners.append(np.asarray(out)[2, 2].astype(int))
    assert np.ptp(np.array(corners), axis=0).max() > 30


def test_scan_changes_pixels_but_not_size() -> None:
    page = _page(True)
    changed = 0
    for seed in range(4):
        out, _ = realism.apply(page, np.random.default_rng(seed), True, False)
        changed += int(out.tobytes() != page.tobytes())
    assert changed == 4


def test_homography_helpers_are_exact() -> None:
    src = np.array([[0, 0], [100, 0], [100, 50], [0, 50]], float)
    dst = np.array([[10, 5], [120, 12], [115, 70], [8, 60]], float)
    m = homography_from_quads(src, dst)
    assert np.allclose(PointMap(m)(src), dst, atol=1e-9)
    coeffs = pil_coefficients(m, affine=False)
    a, b, c, d, e, f, g, h = coeffs
    u, v = dst[2]
    w = g * u + h * v + 1
    assert np.allclose([(a * u + b * v + c) / w, (d * u + e * v + f) / w], src[2])
    with pytest.raises(ValueError, match="affine"):
        pil_coefficients(m, affine=True)
    shift = PointMap(np.array([[1, 0, 5], [0, 1, -2], [0, 0, 1]], float))
    assert np.allclose(shift.then(PointMap(m))(src[:1]), PointMap(m)(np.array([[5.0, -2.0]])))
    assert realism.transform_box(shift, (0, 0, 10, 10), size=(12, 7)) == (5.0, 0.0, 12.0, 7.0)
