"""Random plane-geometry constructions: triangles, quadrilaterals, polygons, circles.

A construction is built in arbitrary units with a ``Builder`` (points, segments, circles);
``synth.geometry`` then centres and scales it into the figure frame. Segment/segment
intersections come from shapely; circle intersections and tangents are exact formulas
(shapely's circles are polygons). Every draw goes through the caller's numpy Generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from shapely.geometry import LineString
from shapely.geometry import Point as SPoint

# Point names, in order of use; 'O' is kept for the first centre / diagonal intersection.
LETTERS = "ABCDEFGHIJKLMNPQRSTUVWXYZ"


@dataclass
class Builder:
    """Collects a construction: labelled points, segments between them, circles."""

    rng: np.random.Generator
    dashed_main: float = 0.05  # chance that a main edge (polygon side) is dashed
    dashed_aux: float = 0.4  # chance that an auxiliary line is dashed
    xy: dict[str, np.ndarray] = field(default_factory=dict)
    segments: list[tuple[str, str, bool]] = field(default_factory=list)
    circles: list[tuple[str, float]] = field(default_factory=list)

    def name(self, prefer_o: bool = False) -> str:
        """The next free point name ('O' first when asked for and still free)."""
        if prefer_o and "O" not in self.xy:
            return "O"
        for ch in LETTERS:
            if ch not in self.xy:
                return ch
        raise ValueError("construction ran out of point names (more than 26 points)")

    def point(self, p, prefer_o: bool = False) -> str:
        """Add a labelled point at p; return its name."""
        n = self.name(prefer_o)
        self.xy[n] = np.asarray(p, dtype=float)
        return n

    def seg(self, a: str, b: str, aux: bool = False, dashed: bool | None = None) -> None:
        """Add segment ab; unless forced, its dashing is drawn (auxiliary lines more often)."""
        if dashed is None:
            dashed = bool(self.rng.random() < (self.dashed_aux if aux else self.dashed_main))
        self.segments.append((a, b, dashed))

    def circle(self, centre: str, r: float) -> None:
        """Add a circle around a named centre."""
        self.circles.append((centre, float(r)))

    def P(self, n: str) -> np.ndarray:
        """Coordinates of a named point."""
        return self.xy[n]


# ---------------------------------------------------------------------------
# Geometry helpers.


def _rot(v: np.ndarray, a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def foot(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    """Foot of the perpendicular from p to line ab, and its parameter t along a->b."""
    d = b - a
    t = float(np.dot(p - a, d) / np.dot(d, d))
    return a + t * d, t


def seg_intersection(a, b, c, d) -> np.ndarray | None:
    """Crossing point of segments ab and cd (shapely), None when they do not cross."""
    hit = LineString([tuple(a), tuple(b)]).intersection(LineString([tuple(c), tuple(d)]))
    if hit.is_empty or not isinstance(hit, SPoint):
        return None
    return np.array([hit.x, hit.y])


def circle_intersections(c1, r1, c2, r2) -> list[np.ndarray]:
    """Intersection points of two circles (0 or 2)."""
    d = float(np.linalg.norm(c2 - c1))
    if d == 0 or d >= r1 + r2 or d <= abs(r1 - r2):
        return []
    a = (r1 * r1 - r2 * r2 + d * d) / (2 * d)
    h = math.sqrt(max(0.0, r1 * r1 - a * a))
    u = (c2 - c1) / d
    m = c1 + a * u
    n = np.array([-u[1], u[0]])
    return [m + h * n, m - h * n]


def tangent_points(c, r, p) -> list[np.ndarray]:
    """The two points where tangents from external point p touch circle (c, r)."""
    v = p - c
    d = float(np.linalg.norm(v))
    a = math.acos(r / d)
    u = v / d
    return [c + r * _rot(u, a), c + r * _rot(u, -a)]


def _angles_ok(pts: list[np.ndarray], min_deg: float) -> bool:
    n = len(pts)
    for i in range(n):
        a, b, c = pts[i - 1], pts[i], pts[(i + 1) % n]
        u, v = a - b, c - b
        cosang = np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))
        if math.degrees(math.acos(max(-1.0, min(1.0, cosang)))) < min_deg:
            return False
    return True


def _orient(rng: np.random.Generator, pts: list[np.ndarray]) -> list[np.ndarray]:
    """Rotate half of the figures; the rest keep their horizontal base (common in books)."""
    if rng.random() < 0.5:
        a = float(rng.uniform(-math.pi, math.pi))
        pts = [_rot(p, a) for p in pts]
    return pts


# ---------------------------------------------------------------------------
# Triangles.


def _triangle_vertices(rng: np.random.Generator) -> list[np.ndarray]:
    while True:
        kind = rng.choice(["scalene", "isosceles", "right", "equilateral"], p=[0.55, 0.2, 0.2, 0.05])
        if kind == "equilateral":
            pts = [np.array([-5.0, 0.0]), np.array([5.0, 0.0]), np.array([0.0, 5 * math.sqrt(3)])]
        elif kind == "isosceles":
            pts = [np.array([-5.0, 0.0]), np.array([5.0, 0.0]), np.array([0.0, float(rng.uniform(3, 10))])]
        elif kind == "right":
            pts = [np.array([0.0, 0.0]), np.array([float(rng.uniform(5, 10)), 0.0]), np.array([0.0, float(rng.uniform(4, 9))])]
        else:
            pts = [np.array([0.0, 0.0]), np.array([10.0, 0.0]),
                   np.array([float(rng.uniform(-2, 12)), float(rng.uniform(3, 9))])]
        if _angles_ok(pts, 22):
            break
    # Apex first so that A sits on top as in most textbook figures.
    pts = [pts[2], pts[0], pts[1]]
    return _orient(rng, pts)


def _opposite(b: Builder, tri: list[str], v: int) -> tuple[str, str, str]:
    return tri[v], tri[(v + 1) % 3], tri[(v + 2) % 3]


def _altitude(b: Builder, tri: list[str], v: int) -> None:
    a, p, q = _opposite(b, tri, v)
    h, t = foot(b.P(a), b.P(p), b.P(q))
    hn = b.point(h)
    b.seg(a, hn, aux=True)
    if t < 0:  # obtuse: extend the side to the foot, dashed as in textbooks
        b.seg(hn, p, dashed=True)
    elif t > 1:
        b.seg(q, hn, dashed=True)


def _median(b: Builder, tri: list[str], v: int) -> str:
    a, p, q = _opposite(b, tri, v)
    m = b.point((b.P(p) + b.P(q)) / 2)
    b.seg(a, m, aux=True)
    return m


def _bisector(b: Builder, tri: list[str], v: int) -> None:
    a, p, q = _opposite(b, tri, v)
    lp, lq = np.linalg.norm(b.P(p) - b.P(a)), np.linalg.norm(b.P(q) - b.P(a))
    d = b.point(b.P(p) + (b.P(q) - b.P(p)) * lp / (lp + lq))
    b.seg(a, d, aux=True)


def _midline(b: Builder, tri: list[str], v: int) -> None:
    a, p, q = _opposite(b, tri, v)
    m1 = b.point((b.P(a) + b.P(p)) / 2)
    m2 = b.point((b.P(a) + b.P(q)) / 2)
    b.seg(m1, m2, aux=True)


def _centroid(b: Builder, tri: list[str], v: int) -> None:
    m1 = _median(b, tri, v)
    m2 = _median(b, tri, (v + 1) % 3)
    g = seg_intersection(b.P(tri[v]), b.P(m1), b.P(tri[(v + 1) % 3]), b.P(m2))
    if g is not None:
        b.point(g)


def _circumcircle(b: Builder, tri: list[str], v: int) -> None:
    a, p, q = (b.P(n) for n in tri)
    d = 2 * (a[0] * (p[1] - q[1]) + p[0] * (q[1] - a[1]) + q[0] * (a[1] - p[1]))
    ux = ((a @ a) * (p[1] - q[1]) + (p @ p) * (q[1] - a[1]) + (q @ q) * (a[1] - p[1])) / d
    uy = ((a @ a) * (q[0] - p[0]) + (p @ p) * (a[0] - q[0]) + (q @ q) * (p[0] - a[0])) / d
    o = np.array([ux, uy])
    b.circle(b.point(o, prefer_o=True), float(np.linalg.norm(a - o)))


def _incircle(b: Builder, tri: list[str], v: int) -> None:
    a, p, q = (b.P(n) for n in tri)
    la, lp, lq = np.linalg.norm(p - q), np.linalg.norm(a - q), np.linalg.norm(a - p)
    i = (la * a + lp * p + lq * q) / (la + lp + lq)
    s = (la + lp + lq) / 2
    area = abs((p[0] - a[0]) * (q[1] - a[1]) - (q[0] - a[0]) * (p[1] - a[1])) / 2
    b.circle(b.point(i, prefer_o=True), area / s)


_TRIANGLE_EXTRAS: dict[str, Callable[[Builder, list[str], int], None]] = {
    "altitude": _altitude,
    "median": _median,
    "bisector": _bisector,
    "midline": _midline,
    "centroid": _centroid,
    "circumcircle": _circumcircle,
    "incircle": _incircle,
}


def build_triangle(b: Builder) -> None:
    """A triangle with one or two of: altitude, median, bisector, midline, centroid, circles."""
    rng = b.rng
    tri = [b.point(p) for p in _triangle_vertices(rng)]
    for i in range(3):
        b.seg(tri[i], tri[(i + 1) % 3])
    names = sorted(_TRIANGLE_EXTRAS)
    k = int(rng.integers(0, 3))
    picks = rng.choice(len(names), size=k, replace=False) if k else []
    used_v: set[int] = set()
    for idx in picks:
        v = int(rng.integers(0, 3))
        if v in used_v:
            v = (v + 1) % 3
        used_v.add(v)
        _TRIANGLE_EXTRAS[names[int(idx)]](b, tri, v)


# ---------------------------------------------------------------------------
# Quadrilaterals and polygons.


def _quad_vertices(rng: np.random.Generator) -> list[np.ndarray]:
    kind = rng.choice(["square", "rectangle", "parallelogram", "rhombus", "trapezoid", "general"])
    w, h = float(rng.uniform(6, 10)), float(rng.uniform(4, 8))
    s = float(rng.uniform(1.5, 4))
    if kind == "square":
        pts = [(0, 0), (w, 0), (w, w), (0, w)]
    elif kind == "rectangle":
        pts = [(0, 0), (w, 0), (w, h), (0, h)]
    elif kind == "parallelogram":
        pts = [(0, 0), (w, 0), (w + s, h), (s, h)]
    elif kind == "rhombus":
        a = float(rng.uniform(math.radians(50), math.radians(75)))
        pts = [(0, 0), (w, 0), (w + w * math.cos(a), w * math.sin(a)), (w * math.cos(a), w * math.sin(a))]
    elif kind == "trapezoid":
        top = float(rng.uniform(0.35, 0.7)) * w
        off = float(rng.uniform(0, w - top))
        pts = [(0, 0), (w, 0), (off + top, h), (off, h)]
    else:
        while True:
            ang = np.sort(rng.uniform(0, 2 * math.pi, 4))
            rad = rng.uniform(3.5, 6, 4)
            pts = [(r * math.cos(a), r * math.sin(a)) for a, r in zip(ang, rad)]
            if _angles_ok([np.array(p) for p in pts], 40) and _convex([np.array(p) for p in pts]):
                break
    # Start at the lower-left vertex, counter-clockwise, so ABCD reads as in textbooks.
    return _orient(rng, [np.array(p, dtype=float) for p in pts])


def _convex(pts: list[np.ndarray]) -> bool:
    n = len(pts)
    signs = set()
    for i in range(n):
        a, b, c = pts[i], pts[(i + 1) % n], pts[(i + 2) % n]
        cross = (b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0])
        signs.add(cross > 0)
    return len(signs) == 1


def _polygon_edges(b: Builder, pts: list[np.ndarray]) -> list[str]:
    names = [b.point(p) for p in pts]
    for i in range(len(names)):
        b.seg(names[i], names[(i + 1) % len(names)])
    return names


def _diagonals(b: Builder, names: list[str], pairs: list[tuple[int, int]]) -> None:
    for i, j in pairs:
        b.seg(names[i], names[j], aux=True)
    if len(pairs) >= 2:
        (i, j), (k, m) = pairs[0], pairs[1]
        x = seg_intersection(b.P(names[i]), b.P(names[j]), b.P(names[k]), b.P(names[m]))
        if x is not None and min(np.linalg.norm(x - b.P(n)) for n in names) > 1.0:
            b.point(x, prefer_o=True)


def build_quadrilateral(b: Builder) -> None:
    """A special or general quadrilateral with diagonals, a height or a midpoint line."""
    rng = b.rng
    names = _polygon_edges(b, _quad_vertices(rng))
    extra = rng.choice(["none", "one_diagonal", "diagonals", "height", "midpoints"], p=[0.15, 0.2, 0.35, 0.15, 0.15])
    if extra == "one_diagonal":
        _diagonals(b, names, [(0, 2)] if rng.random() < 0.5 else [(1, 3)])
    elif extra == "diagonals":
        _diagonals(b, names, [(0, 2), (1, 3)])
    elif extra == "height":
        v = int(rng.integers(2, 4))  # from C or D down to line AB
        h, t = foot(b.P(names[v]), b.P(names[0]), b.P(names[1]))
        hn = b.point(h)
        b.seg(names[v], hn, aux=True)
        if t < 0:
            b.seg(hn, names[0], dashed=True)
        elif t > 1:
            b.seg(names[1], hn, dashed=True)
    elif extra == "midpoints":
        i = int(rng.integers(0, 4))
        m1 = b.point((b.P(names[i]) + b.P(names[(i + 1) % 4])) / 2)
        m2 = b.point((b.P(names[(i + 2) % 4]) + b.P(names[(i + 3) % 4])) / 2)
        b.seg(m1, m2, aux=True)


def build_polygon(b: Builder) -> None:
    """A convex pentagon or hexagon (regular or not) with some diagonals or its circumcircle."""
    rng = b.rng
    n = int(rng.integers(5, 7))
    regular = rng.random() < 0.5
    while True:
        base = np.arange(n) * 2 * math.pi / n + math.pi / 2
        ang = base if regular else base + rng.uniform(-0.35, 0.35, n) * 2 * math.pi / n
        rad = np.full(n, 5.0) if regular else rng.uniform(4, 6, n)
        pts = [np.array([r * math.cos(a), r * math.sin(a)]) for a, r in zip(ang, rad)]
        if _convex(pts) and _angles_ok(pts, 60):
            break
    pts = _orient(rng, pts)
    if regular and rng.random() < 0.3:
        b.circle(b.point((0.0, 0.0), prefer_o=True), 5.0)
    names = _polygon_edges(b, pts)
    k = int(rng.integers(0, 3))
    if k:
        i = int(rng.integers(0, n))
        pairs = [(i, (i + 2) % n), ((i + 1) % n, (i + 3) % n)][:k]
        _diagonals(b, names, pairs)


# ---------------------------------------------------------------------------
# Circles.


def _on_circle(c: np.ndarray, r: float, angles) -> list[np.ndarray]:
    return [c + r * np.array([math.cos(a), math.sin(a)]) for a in angles]


def _spread_angles(rng: np.random.Generator, n: int, min_gap: float) -> np.ndarray:
    while True:
        a = np.sort(rng.uniform(0, 2 * math.pi, n))
        gaps = np.diff(np.concatenate([a, a[:1] + 2 * math.pi]))
        if gaps.min() >= min_gap:
            return a


def build_circle(b: Builder) -> None:
    """A circle with an inscribed polygon, crossing chords, tangents or a second circle."""
    rng = b.rng
    r = 5.0
    c = np.zeros(2)
    o = b.point(c, prefer_o=True)
    b.circle(o, r)
    kind = rng.choice(["inscribed", "chords", "tangents", "diameter", "two_circles"], p=[0.25, 0.2, 0.2, 0.2, 0.15])
    if kind == "inscribed":
        n = int(rng.integers(3, 5))
        pts = _on_circle(c, r, _spread_angles(rng, n, 0.9))
        names = _polygon_edges(b, pts)
        if rng.random() < 0.5:
            b.seg(o, names[int(rng.integers(0, n))], aux=True)
    elif kind == "chords":
        a = _spread_angles(rng, 4, 0.7)
        names = [b.point(p) for p in _on_circle(c, r, a)]
        b.seg(names[0], names[2])
        b.seg(names[1], names[3])
        x = seg_intersection(b.P(names[0]), b.P(names[2]), b.P(names[1]), b.P(names[3]))
        if x is not None and float(np.linalg.norm(x - c)) > 1.0:
            b.point(x)
        if rng.random() < 0.5:
            b.seg(names[0], names[1], aux=True)
    elif kind == "tangents":
        d = float(rng.uniform(1.6, 2.2)) * r
        p = _rot(np.array([d, 0.0]), float(rng.uniform(-math.pi, math.pi)))
        t1, t2 = tangent_points(c, r, p)
        pn, n1 = b.point(p), b.point(t1)
        b.seg(pn, n1)
        b.seg(o, n1, aux=True)
        if rng.random() < 0.6:
            n2 = b.point(t2)
            b.seg(pn, n2)
            b.seg(o, n2, aux=True)
        if rng.random() < 0.4:
            b.seg(o, pn, aux=True)
    elif kind == "diameter":
        a = float(rng.uniform(0, math.pi))
        p, q, s = _on_circle(c, r, [a, a + math.pi, a + float(rng.uniform(0.5, math.pi - 0.5))])
        pn, qn, sn = b.point(p), b.point(q), b.point(s)
        b.seg(pn, qn)
        b.seg(pn, sn)
        b.seg(qn, sn)
    else:
        r2 = float(rng.uniform(0.6, 1.0)) * r
        c2 = _rot(np.array([float(rng.uniform(0.7, 1.3)) * r, 0.0]), float(rng.uniform(-math.pi, math.pi)))
        o2 = b.point(c2)
        b.circle(o2, r2)
        pts = circle_intersections(c, r, c2, r2)
        names = [b.point(p) for p in pts]
        if names:
            b.seg(names[0], names[1])
            if rng.random() < 0.5:
                b.seg(o, o2, aux=True)


BUILDERS: dict[str, Callable[[Builder], None]] = {
    "triangle": build_triangle,
    "quadrilateral": build_quadrilateral,
    "polygon": build_polygon,
    "circle": build_circle,
}
