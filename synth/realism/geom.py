"""Exact point maps for the realism pipeline: 3x3 homographies and their PIL coefficients.

Every geometric step of ``synth.realism`` is a homography ``H`` (affine ones included) that
maps a point of its input image to the point of its output image, in PIL's continuous
pixel frame: pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)`` and its centre is
``(i + 0.5, j + 0.5)``. PIL's ``Image.transform`` samples, for each output pixel centre
``p``, the input at ``M p`` with that same convention, so warping with ``M = inv(H)``
moves content exactly as ``H`` says. Steps compose by matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PointMap:
    """Callable mapping an (N, 2) array of (x, y) input pixel points to output points.

    ``matrix`` is the 3x3 forward homography (float64). Picklable, so it can travel
    with a Ray task's result if a caller wants it to.
    """

    matrix: np.ndarray

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2) float (x, y) points through the homography; returns (N, 2) float64."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        m = self.matrix
        w = pts @ m[2, :2] + m[2, 2]
        x = (pts @ m[0, :2] + m[0, 2]) / w
        y = (pts @ m[1, :2] + m[1, 2]) / w
        return np.stack([x, y], axis=1)

    def then(self, other: "PointMap") -> "PointMap":
        """The map that applies ``self`` first and ``other`` second."""
        return PointMap(other.matrix @ self.matrix)


IDENTITY = PointMap(np.eye(3))


def translation(dx: float, dy: float) -> np.ndarray:
    """3x3 matrix moving points by (dx, dy)."""
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def rotation_scale(angle_deg: float, scale: float, cx: float, cy: float) -> np.ndarray:
    """3x3 matrix rotating by ``angle_deg`` (counter-clockwise on screen) and scaling about (cx, cy)."""
    a = np.deg2rad(angle_deg)
    # Screen y points down, so a visually counter-clockwise turn has +sin in the x row.
    c, s = np.cos(a) * scale, np.sin(a) * scale
    rot = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    return translation(cx, cy) @ rot @ translation(-cx, -cy)


def homography_from_quads(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The homography mapping the 4 points ``src`` onto ``dst`` (both shaped (4, 2))."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != (4, 2) or dst.shape != (4, 2):
        raise ValueError(f"quads must be shaped (4, 2), got src {src.shape} and dst {dst.shape}")
    a = np.zeros((8, 8))
    b = np.zeros(8)
    for i, ((x, y), (u, v)) in enumerate(zip(src, dst)):
        a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y]
        a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y]
        b[2 * i], b[2 * i + 1] = u, v
    h = np.linalg.solve(a, b)
    return np.append(h, 1.0).reshape(3, 3)


def pil_coefficients(forward: np.ndarray, affine: bool) -> tuple[float, ...]:
    """Coefficients for ``Image.transform`` that realise the forward map ``forward``.

    PIL wants the output->input map; it is ``inv(forward)`` normalised so its last entry
    is 1. ``affine`` selects the 6 AFFINE coefficients (the last row must be 0, 0, 1).
    """
    inv = np.linalg.inv(forward)
    inv = inv / inv[2, 2]
    if affine:
        if abs(inv[2, 0]) > 1e-12 or abs(inv[2, 1]) > 1e-12:
            raise ValueError(f"matrix is projective, not affine: last row {inv[2].tolist()}")
        return tuple(float(v) for v in inv[:2].ravel())
    return tuple(float(v) for v in inv.ravel()[:8])


def transform_box(
    fn, box_px: tuple[float, float, float, float], size: tuple[int, int] | None = None
) -> tuple[float, float, float, float]:
    """Bounding box (x1, y1, x2, y2) of a pixel box's 4 corners mapped through ``fn``.

    ``size`` (width, height) of the output image, when given, clips the result to it.
    """
    x1, y1, x2, y2 = (float(v) for v in box_px)
    corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
    out = np.asarray(fn(corners), dtype=np.float64)
    lo, hi = out.min(axis=0), out.max(axis=0)
    bx1, by1, bx2, by2 = float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])
    if size is not None:
        w, h = size
        bx1, bx2 = min(max(bx1, 0.0), w), min(max(bx2, 0.0), w)
        by1, by2 = min(max(by1, 0.0), h), min(max(by2, 0.0), h)
    return bx1, by1, bx2, by2
