"""Coordinates in 1000 bins (0-999), relative to the original stored image.

``x_bin = round(999 * x / width)`` and back ``x = x_bin / 999 * width`` (the reference
decoder's own inverse). See docs/formats.md for a worked example.
"""

from __future__ import annotations

from collections.abc import Sequence

BINS = 1000
MAX_BIN = BINS - 1


def to_bin(value: float, size: float) -> int:
    """Map a pixel coordinate in [0, size] to its bin in 0..999 (clamped)."""
    if size <= 0:
        raise ValueError(f"image size must be positive, got {size!r}")
    b = int(round(MAX_BIN * float(value) / float(size)))
    return min(MAX_BIN, max(0, b))


def from_bin(b: int, size: float) -> float:
    """Map a bin in 0..999 back to a pixel coordinate, the reference decoder's inverse."""
    return b / MAX_BIN * float(size)


def box_to_bins(box: Sequence[float], width: float, height: float) -> tuple[int, int, int, int]:
    """Bin a pixel box (x1, y1, x2, y2); a degenerate result is widened to one bin.

    After binning x1 < x2 and y1 < y2 always hold, as DESIGN.md §2 requires.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 < x1:
        x1, x2 = x2, x1
    if y2 < y1:
        y1, y2 = y2, y1
    bx1, by1 = to_bin(x1, width), to_bin(y1, height)
    bx2, by2 = to_bin(x2, width), to_bin(y2, height)
    if bx2 <= bx1:
        bx1, bx2 = (bx1, bx1 + 1) if bx1 < MAX_BIN else (bx1 - 1, bx1)
    if by2 <= by1:
        by1, by2 = (by1, by1 + 1) if by1 < MAX_BIN else (by1 - 1, by1)
    return bx1, by1, bx2, by2


def bins_to_box(box: Sequence[int], width: float, height: float) -> tuple[float, float, float, float]:
    """Map a bin box back to pixel coordinates of an image of the given size."""
    x1, y1, x2, y2 = box
    return from_bin(x1, width), from_bin(y1, height), from_bin(x2, width), from_bin(y2, height)


def valid_bin_box(box: Sequence[int]) -> bool:
    """True when box is 4 ints in 0..999 with x1 < x2 and y1 < y2."""
    if len(box) != 4:
        return False
    x1, y1, x2, y2 = box
    return all(0 <= int(v) <= MAX_BIN for v in box) and x1 < x2 and y1 < y2


def boxes_to_bins(boxes, width: float, height: float):
    """:func:`box_to_bins` of every row of an (N, 4) array of pixel boxes, in one numpy
    pass (the same rounding: half to even, as Python's ``round``); an (N, 4) int array."""
    import numpy as np

    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width!r} x {height!r}")
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x = np.sort(b[:, [0, 2]], axis=1)
    y = np.sort(b[:, [1, 3]], axis=1)
    bx = np.clip(np.rint(MAX_BIN * x / float(width)), 0, MAX_BIN).astype(np.int64)
    by = np.clip(np.rint(MAX_BIN * y / float(height)), 0, MAX_BIN).astype(np.int64)
    for lo_hi in (bx, by):  # a degenerate box is widened to one bin, away from the last bin
        flat = lo_hi[:, 1] <= lo_hi[:, 0]
        top = flat & (lo_hi[:, 0] >= MAX_BIN)
        lo_hi[flat & ~top, 1] = lo_hi[flat & ~top, 0] + 1
        lo_hi[top, 0], lo_hi[top, 1] = MAX_BIN - 1, MAX_BIN
    return np.stack([bx[:, 0], by[:, 0], bx[:, 1], by[:, 1]], axis=1)
