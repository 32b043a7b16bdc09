"""The Slow Perception geometry target: primitives, the perceptual ruler, format, parse, line F1.

A figure lives in its own frame: centred, y up, coordinates rounded to 2 decimals inside
-15..15. The target is a Python literal (see docs/geometry.md for the exact grammar)::

    {'Line': {'line': ['(-8.8, -1.4) -- (-4.8, -1.4) -- (-3.99, -1.4)', ...],
              'line_type': ['-', '--', ...],
              'line_endpoint': ['A: (-8.8, -1.4)', ...]},
     'Circle': {'circle_center': ['O: (0.5, -1.2)'], 'radius': [3.1]}}

Collinear segments are merged before tracing, and every segment is traced with the
perceptual ruler: its start, a gaze point every ``RULER`` units along it, then its end.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from annotate.matching import greedy_match

RULER = 4.0  # length of the perceptual ruler, figure units
DECIMALS = 2
FRAME = 15.0  # every coordinate of a target lies in [-FRAME, FRAME]
SOLID, DASHED = "-", "--"
# Exactly horizontal/vertical segments have flat bounding boxes; the metric widens every
# box to at least this thickness (figure units, ~4 px at 270 px) so IoU stays meaningful.
MIN_BOX_THICKNESS = 0.5

XY = tuple[float, float]


def rnd(v: float) -> float:
    """Round to the target's 2 decimals; -0.0 becomes 0.0 so it never prints as '-0.0'."""
    return float(round(float(v), DECIMALS)) + 0.0


def rnd_xy(p: Sequence[float]) -> XY:
    """Round a point to the target's 2 decimals."""
    return (rnd(p[0]), rnd(p[1]))


@dataclass(frozen=True)
class Segment:
    """A drawn straight segment, ``start`` before ``end`` in (x, y) order once canonical."""

    start: XY
    end: XY
    dashed: bool = False

    @property
    def length(self) -> float:
        """Euclidean length in figure units."""
        return math.hypot(self.end[0] - self.start[0], self.end[1] - self.start[1])


@dataclass(frozen=True)
class Circle:
    """An unfilled circle; ``label`` names its centre ('' when the centre is unlabelled)."""

    center: XY
    radius: float
    label: str = ""


@dataclass(frozen=True)
class Point:
    """A labelled point."""

    name: str
    xy: XY


@dataclass(frozen=True)
class Figure:
    """The primitives of one figure, in the figure frame (centred, y up)."""

    segments: tuple[Segment, ...] = ()
    circles: tuple[Circle, ...] = ()
    points: tuple[Point, ...] = ()


# ---------------------------------------------------------------------------
# Canonical segments: merging collinear pieces, orientation, the ruler.


def _oriented(p: XY, q: XY) -> tuple[XY, XY]:
    return (p, q) if p <= q else (q, p)


def _dist_to_line(p: XY, a: XY, ux: float, uy: float) -> float:
    return abs((p[0] - a[0]) * uy - (p[1] - a[1]) * ux)


def merge_segments(segments: Iterable[Segment], tol: float = 0.02) -> list[Segment]:
    """Merge collinear overlapping or touching segments; return them canonical and sorted.

    Segments are collinear when each one's endpoints lie within ``tol`` of the other's
    line. Along a common line, where a solid and a dashed piece overlap the solid one wins
    (it hides the dashes); touching pieces join only when their type is the same. The
    result's endpoints are always original endpoints, so labelled points stay exact.
    """
    segs = [s for s in segments if s.length > tol]
    n = len(segs)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    dirs = []
    for s in segs:
        L = s.length
        dirs.append(((s.end[0] - s.start[0]) / L, (s.end[1] - s.start[1]) / L))
    for i in range(n):
        for j in range(i + 1, n):
            a, b = segs[i], segs[j]
            if (
                _dist_to_line(b.start, a.start, *dirs[i]) <= tol
                and _dist_to_line(b.end, a.start, *dirs[i]) <= tol
                and _dist_to_line(a.start, b.start, *dirs[j]) <= tol
                and _dist_to_line(a.end, b.start, *dirs[j]) <= tol
            ):
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)

    out: list[Segment] = []
    for members in groups.values():
        out.extend(_merge_group([segs[i] for i in members], tol))
    out.sort(key=lambda s: (s.start, s.end, s.dashed))
    return out


def _merge_group(group: list[Segment], tol: float) -> list[Segment]:
    ref = max(group, key=lambda s: (s.length, s.start, s.end))
    o = ref.start
    ux, uy = (ref.end[0] - o[0]) / ref.length, (ref.end[1] - o[1]) / ref.length

    def t_of(p: XY) -> float:
        return (p[0] - o[0]) * ux + (p[1] - o[1]) * uy

    # Breakpoints: endpoints projected on the line, near-equal ones clustered; each keeps
    # the smallest original point of its cluster as its coordinates.
    ends = sorted((t_of(p), p) for s in group for p in (s.start, s.end))
    breaks: list[tuple[float, XY]] = []
    for t, p in ends:
        if breaks and t - breaks[-1][0] <= tol:
            if p < breaks[-1][1]:
                breaks[-1] = (breaks[-1][0], p)
            continue
        breaks.append((t, p))
    spans = [tuple(sorted((t_of(s.start), t_of(s.end)))) + (s.dashed,) for s in group]
    runs: list[list[Any]] = []  # [first break index, last break index, dashed]
    for k in range(len(breaks) - 1):
        lo, hi = breaks[k][0], breaks[k + 1][0]
        covering = [d for t0, t1, d in spans if t0 <= lo + tol and t1 >= hi - tol]
        if not covering:
            continue
        dashed = all(covering)
        if runs and runs[-1][1] == k and runs[-1][2] == dashed:
            runs[-1][1] = k + 1
        else:
            runs.append([k, k + 1, dashed])
    out = []
    for k0, k1, dashed in runs:
        a, b = _oriented(breaks[k0][1], breaks[k1][1])
        out.append(Segment(a, b, dashed))
    return out


def gaze_points(seg: Segment, ruler: float = RULER) -> list[XY]:
    """The perceptual-ruler trace of a segment: start, a point every ``ruler`` units, end.

    Gaze points are rounded to 2 decimals; one that rounds onto the end is dropped, so
    a segment no longer than the ruler keeps just its two endpoints.
    """
    (x0, y0), (x1, y1) = seg.start, seg.end
    L = seg.length
    pts = [rnd_xy(seg.start)]
    if L > 0:
        ux, uy = (x1 - x0) / L, (y1 - y0) / L
        k = 1
        while k * ruler < L:
            pts.append(rnd_xy((x0 + k * ruler * ux, y0 + k * ruler * uy)))
            k += 1
    end = rnd_xy(seg.end)
    if pts[-1] == end and len(pts) > 1:
        pts.pop()
    pts.append(end)
    return pts


# ---------------------------------------------------------------------------
# Format and parse.


def _num(v: float) -> str:
    return repr(rnd(v))


def _pt(p: Sequence[float]) -> str:
    return f"({_num(p[0])}, {_num(p[1])})"


def format_target(figure: Figure) -> str:
    """The Slow Perception target of a figure (a Python dict literal, one line).

    ``line_endpoint`` lists the labelled points that are not circle centres, by name;
    circle centres are named in ``circle_center``. ``Circle`` is omitted when there is
    no circle. Segments are emitted in the order given (canonical figures are sorted).
    """
    centres = {c.label for c in figure.circles if c.label}
    line = {
        "line": [" -- ".join(_pt(p) for p in gaze_points(s)) for s in figure.segments],
        "line_type": [DASHED if s.dashed else SOLID for s in figure.segments],
        "line_endpoint": [f"{p.name}: {_pt(p.xy)}" for p in figure.points if p.name not in centres],
    }
    target: dict[str, Any] = {"Line": line}
    if figure.circles:
        target["Circle"] = {
            "circle_center": [f"{c.label}: {_pt(c.center)}" if c.label else _pt(c.center) for c in figure.circles],
            "radius": [rnd(c.radius) for c in figure.circles],
        }
    return repr(target)


_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_POINT_RE = re.compile(rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*\)")
_NAMED_RE = re.compile(rf"^\s*([^:()]+?)\s*:\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*$")
_KEYS = ("line", "line_type", "line_endpoint", "circle_center", "radius")
_KEY_RE = re.compile(r"['\"](line_type|line_endpoint|line|circle_center|radius)['\"]\s*:")
_STR_RE = re.compile(r"'([^'\n]*)'|\"([^\"\n]*)\"")


class TargetError(ValueError):
    """A target that does not follow the grammar (raised by strict parsing only)."""


def _parse_point(text: str) -> XY | None:
    m = _POINT_RE.fullmatch(text.strip())
    return (float(m.group(1)), float(m.group(2))) if m else None


def _parse_named(text: str) -> tuple[str, XY] | None:
    m = _NAMED_RE.match(text)
    if m:
        return m.group(1), (float(m.group(2)), float(m.group(3)))
    p = _parse_point(text)
    return ("", p) if p is not None else None


def _fields_literal(text: str) -> dict[str, list]:
    obj = ast.literal_eval(text.strip())
    if not isinstance(obj, dict):
        raise TargetError(f"target is a {type(obj).__name__}, expected a dict with 'Line' and optional 'Circle'")
    unknown = set(obj) - {"Line", "Circle"}
    if unknown:
        raise TargetError(f"unknown top-level keys {sorted(unknown)}; valid: 'Line', 'Circle'")
    fields: dict[str, list] = {}
    for top, keys in (("Line", _KEYS[:3]), ("Circle", _KEYS[3:])):
        part = obj.get(top, {})
        if not isinstance(part, dict):
            raise TargetError(f"{top!r} is a {type(part).__name__}, expected a dict")
        for k in keys:
            v = part.get(k, [])
            if not isinstance(v, list):
                raise TargetError(f"{top}.{k} is a {type(v).__name__}, expected a list")
            fields[k] = v
    return fields


def _fields_lenient(text: str) -> dict[str, list]:
    """Salvage what a broken (e.g. truncated) target still says, key by key."""
    fields: dict[str, list] = {k: [] for k in _KEYS}
    hits = list(_KEY_RE.finditer(text))
    for i, m in enumerate(hits):
        body = text[m.end() : hits[i + 1].start() if i + 1 < len(hits) else len(text)]
        if m.group(1) == "radius":
            inner = body.split("]")[0]
            fields["radius"] = [float(x) for x in re.findall(_NUM, inner)]
        else:
            fields[m.group(1)] = [a if a else b for a, b in _STR_RE.findall(body)]
    return fields


def parse_target(text: str, strict: bool = False) -> Figure:
    """Parse a target back into a Figure (segments, circles, labelled points).

    Reads the literal with ``ast.literal_eval``. With ``strict=False`` (for model
    outputs) a broken literal is salvaged key by key and malformed items are skipped;
    with ``strict=True`` any deviation from the grammar raises ``TargetError``.
    A line's segment runs from its first to its last point; gaze points are not kept.
    """
    try:
        fields = _fields_literal(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        if strict:
            raise TargetError(f"target is not a valid literal: {e}") from None
        fields = _fields_lenient(text)

    def bad(msg: str) -> None:
        if strict:
            raise TargetError(msg)

    lines, types = fields["line"], fields["line_type"]
    if len(types) != len(lines):
        bad(f"{len(lines)} lines but {len(types)} line types")
    segments = []
    for i, ln in enumerate(lines):
        pts = [_parse_point(p) for p in str(ln).split("--")] if isinstance(ln, str) else [None]
        if len(pts) < 2 or any(p is None for p in pts):
            bad(f"line {i} {ln!r} is not '(x, y) -- (x, y) ...'")
            continue
        t = types[i] if i < len(types) else SOLID
        if t not in (SOLID, DASHED):
            bad(f"line_type {i} is {t!r}; valid: '-' or '--'")
        segments.append(Segment(pts[0], pts[-1], t == DASHED))

    points = []
    for item in fields["line_endpoint"]:
        named = _parse_named(item) if isinstance(item, str) else None
        if named is None or not named[0]:
            bad(f"line_endpoint {item!r} is not 'NAME: (x, y)'")
            continue
        points.append(Point(named[0], named[1]))

    centres, radii = fields["circle_center"], fields["radius"]
    if len(centres) != len(radii):
        bad(f"{len(centres)} circle centres but {len(radii)} radii")
    circles = []
    for item, r in zip(centres, radii):
        named = _parse_named(item) if isinstance(item, str) else None
        if named is None or not isinstance(r, (int, float)) or isinstance(r, bool) or r <= 0:
            bad(f"circle {item!r} with radius {r!r} is not 'NAME: (x, y)' with a positive radius")
            continue
        circles.append(Circle(named[1], float(r), named[0]))
        if named[0]:
            points.append(Point(named[0], named[1]))
    points.sort(key=lambda p: p.name)
    return Figure(tuple(segments), tuple(circles), tuple(points))


# ---------------------------------------------------------------------------
# Structured truth <-> Figure.


def figure_to_truth(figure: Figure) -> dict[str, Any]:
    """JSON-ready primitives of a figure (the geometry part of Sample.truth)."""
    return {
        "segments": [{"start": list(s.start), "end": list(s.end), "dashed": s.dashed} for s in figure.segments],
        "circles": [{"center": list(c.center), "radius": c.radius, "label": c.label} for c in figure.circles],
        "points": [{"name": p.name, "xy": list(p.xy)} for p in figure.points],
    }


def figure_from_truth(truth: dict[str, Any]) -> Figure:
    """The Figure stored in a sample's truth (extra keys are ignored)."""
    return Figure(
        tuple(Segment(tuple(s["start"]), tuple(s["end"]), bool(s["dashed"])) for s in truth.get("segments", [])),
        tuple(Circle(tuple(c["center"]), float(c["radius"]), c.get("label", "")) for c in truth.get("circles", [])),
        tuple(Point(p["name"], tuple(p["xy"])) for p in truth.get("points", [])),
    )


def figures_match(a: Figure, b: Figure, tol: float = 0.011) -> list[str]:
    """Differences between two figures, coordinates compared within ``tol``; empty if equal."""
    problems = []

    def close(p: Sequence[float], q: Sequence[float]) -> bool:
        return abs(p[0] - q[0]) <= tol and abs(p[1] - q[1]) <= tol

    def seg_eq(s: Segment, t: Segment) -> bool:
        same = close(s.start, t.start) and close(s.end, t.end)
        flip = close(s.start, t.end) and close(s.end, t.start)
        return (same or flip) and s.dashed == t.dashed

    for name, xs, ys, eq in (
        ("segment", a.segments, b.segments, seg_eq),
        ("circle", a.circles, b.circles,
         lambda c, d: close(c.center, d.center) and abs(c.radius - d.radius) <= tol and c.label == d.label),
        ("point", a.points, b.points, lambda p, q: p.name == q.name and close(p.xy, q.xy)),
    ):
        left = list(ys)
        for x in xs:
            hit = next((i for i, y in enumerate(left) if eq(x, y)), None)
            if hit is None:
                problems.append(f"{name} {x} has no counterpart")
            else:
                left.pop(hit)
        problems.extend(f"{name} {y} is missing" for y in left)
    return problems


# ---------------------------------------------------------------------------
# The metric.


def _box(s: Segment, min_thick: float) -> tuple[float, float, float, float]:
    x1, x2 = sorted((s.start[0], s.end[0]))
    y1, y2 = sorted((s.start[1], s.end[1]))
    if x2 - x1 < min_thick:
        c = (x1 + x2) / 2
        x1, x2 = c - min_thick / 2, c + min_thick / 2
    if y2 - y1 < min_thick:
        c = (y1 + y2) / 2
        y1, y2 = c - min_thick / 2, c + min_thick / 2
    return x1, y1, x2, y2


def _prf(pred_boxes: list, truth_boxes: list, ious: Sequence[float]) -> dict[float, dict[str, float]]:
    """Greedy box-IoU matching at each threshold: precision, recall and F1."""
    out: dict[float, dict[str, float]] = {}
    for thr in ious:
        tp = len(greedy_match(pred_boxes, truth_boxes, thr))
        if not pred_boxes and not truth_boxes:
            p = r = f = 1.0
        else:
            p = tp / len(pred_boxes) if pred_boxes else 0.0
            r = tp / len(truth_boxes) if truth_boxes else 0.0
            f = 2 * p * r / (p + r) if p + r else 0.0
        out[float(thr)] = {"precision": p, "recall": r, "f1": f}
    return out


def _figure(x: str | Figure) -> Figure:
    return parse_target(x) if isinstance(x, str) else x


def line_f1(
    pred: str | Figure,
    truth: str | Figure,
    ious: Sequence[float] = (0.75, 0.9),
    min_thickness: float = MIN_BOX_THICKNESS,
) -> dict[float, dict[str, float]]:
    """Slow Perception line precision/recall/F1 at each IoU threshold.

    Lines are compared by the IoU of their bounding boxes and matched greedily, highest
    IoU first, each line used at most once. A box thinner than ``min_thickness`` (figure
    units) on an axis is widened to it around its centre, so that exactly horizontal or
    vertical segments get a meaningful IoU instead of 0. Line type is scored by
    :func:`geometry_scores`. Strings are parsed leniently. Two empty figures score 1.0.
    """
    p_fig, t_fig = _figure(pred), _figure(truth)
    return _prf([_box(s, min_thickness) for s in p_fig.segments],
                [_box(s, min_thickness) for s in t_fig.segments], ious)


def _circle_box(c: Circle) -> tuple[float, float, float, float]:
    x, y = c.center
    return x - c.radius, y - c.radius, x + c.radius, y + c.radius


def circle_f1(pred: str | Figure, truth: str | Figure,
              ious: Sequence[float] = (0.75, 0.9)) -> dict[float, dict[str, float]]:
    """Circle precision/recall/F1, scored like lines: each circle becomes its bounding
    square, matched greedily by IoU (a centre 10 % of the radius off, or a radius 10 %
    off, still passes 0.75). Centre labels are not scored. Two circle-free figures score 1.0."""
    return _prf([_circle_box(c) for c in _figure(pred).circles],
                [_circle_box(c) for c in _figure(truth).circles], ious)


def geometry_scores(pred: str | Figure, truth: str | Figure,
                    ious: Sequence[float] = (0.75, 0.9)) -> dict[str, Any]:
    """Everything a geometry prediction is scored on: ``lines`` (:func:`line_f1`), ``circles``
    (:func:`circle_f1`), and ``line_type_accuracy``, the share of lines matched at the
    lowest threshold whose type (solid or dashed) agrees; with no matched line it is 1.0 only
    when neither figure has a line, else 0 (an empty answer earns nothing)."""
    p_fig, t_fig = _figure(pred), _figure(truth)
    pb = [_box(s, MIN_BOX_THICKNESS) for s in p_fig.segments]
    tb = [_box(s, MIN_BOX_THICKNESS) for s in t_fig.segments]
    pairs = greedy_match(pb, tb, min(ious))
    same = [p_fig.segments[i].dashed == t_fig.segments[j].dashed for i, j, _iou in pairs]
    return {"lines": _prf(pb, tb, ious), "circles": circle_f1(p_fig, t_fig, ious),
            "line_type_accuracy": sum(same) / len(same) if same else float(not pb and not tb)}
