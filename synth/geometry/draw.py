"""Drawing a geometry Figure in the Slow Perception style, and placing its point labels.

Both the generator and ``annotate.geometry.render_target`` draw through ``draw_figure``,
so a target drawn back with the stored transform and style reproduces the stored image.
Drawing is PIL on a supersampled canvas (box-filtered down), which is faster than
matplotlib and byte-stable. Label placement is a deterministic function of the figure,
the style and the scale (no randomness), so a target alone is enough to redraw labels.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import asdict, dataclass

from PIL import Image, ImageDraw, ImageFont
from shapely import prepared
from shapely.geometry import LineString, box
from shapely.geometry import Point as SPoint
from shapely.ops import unary_union

from formats.slow_perception import FRAME, Figure

XY = tuple[float, float]
CENTRE_DOT = 1.4  # px radius of the dot marking a circle's centre when points have no dots


@dataclass(frozen=True)
class Style:
    """How a figure is drawn (pixel sizes are those of the stored image)."""

    line_width: float = 1.2  # px
    font_px: int = 14
    italic: bool = False
    dot_radius: float = 0.0  # px; 0 draws no dots at labelled points
    dash_on: float = 5.0  # px
    dash_off: float = 3.5  # px
    supersample: int = 3

    def to_dict(self) -> dict:
        """JSON-ready fields (stored in truth['style'])."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Style":
        """Rebuild a style from truth['style'] (unknown keys ignored)."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass(frozen=True)
class Transform:
    """Figure units -> image pixels: ``px = origin_x + scale*x``, ``py = origin_y - scale*y``."""

    scale: float
    origin: XY

    def to_px(self, p: XY) -> XY:
        """Pixel position of a figure point."""
        return (self.origin[0] + self.scale * p[0], self.origin[1] - self.scale * p[1])


@functools.lru_cache(maxsize=8)
def _font_path(italic: bool) -> str:
    import matplotlib  # only for the location of its bundled STIX fonts

    name = "STIXGeneralItalic.ttf" if italic else "STIXGeneral.ttf"
    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name)


@functools.lru_cache(maxsize=64)
def font(px: int, italic: bool) -> ImageFont.FreeTypeFont:
    """The Times-like STIX font shipped with matplotlib, at a pixel size (cached)."""
    return ImageFont.truetype(_font_path(italic), px)


def _label_size(name: str, style: Style) -> tuple[float, float]:
    """Ink size (w, h) in stored-image pixels of a label drawn centred (anchor 'mm')."""
    k = style.supersample
    x1, y1, x2, y2 = font(style.font_px * k, style.italic).getbbox(name, anchor="mm")
    return (x2 - x1) / k, (y2 - y1) / k


def place_labels(figure: Figure, style: Style, scale: float) -> dict[str, XY]:
    """Centre of each point label, in figure units, kept off lines, circles and other labels.

    Candidates are 16 directions around the point, tried in order of closeness to the
    direction away from the figure's centre; the first label box that clears the buffered
    lines, circles and labels already placed is taken (then a ring farther out; else the
    least-overlapping candidate). Deterministic: a target alone reproduces the layout.
    """
    pad = (style.line_width / 2 + 1.5) / scale
    obstacles = [LineString([s.start, s.end]).buffer(pad, quad_segs=2) for s in figure.segments]
    obstacles += [SPoint(c.center).buffer(c.radius, quad_segs=16).exterior.buffer(pad, quad_segs=2) for c in figure.circles]
    obstacles += [SPoint(xy).buffer((r + 1) / scale, quad_segs=2) for xy, r in _dots(figure, style)]
    blocked = unary_union(obstacles) if obstacles else None
    blocked_p = prepared.prep(blocked) if blocked is not None else None

    cx = sum(p.xy[0] for p in figure.points) / max(1, len(figure.points))
    cy = sum(p.xy[1] for p in figure.points) / max(1, len(figure.points))
    gap = (max(style.dot_radius, style.line_width) + 2.0) / scale
    placed: dict[str, XY] = {}
    boxes = []
    for p in figure.points:
        w, h = (v / scale for v in _label_size(p.name, style))
        dx, dy = p.xy[0] - cx, p.xy[1] - cy
        pref = math.atan2(dy, dx) if math.hypot(dx, dy) > 0.3 else math.atan2(-1.0, -1.0)
        angles = sorted((2 * math.pi * i / 16 for i in range(16)),
                        key=lambda a: (abs(math.remainder(a - pref, 2 * math.pi)), a))
        best, best_cost = None, math.inf
        for ring in (1.0, 1.8):
            for a in angles:
                ux, uy = math.cos(a), math.sin(a)
                reach = gap * ring + abs(ux) * w / 2 + abs(uy) * h / 2
                c = (p.xy[0] + ux * reach, p.xy[1] + uy * reach)
                b = box(c[0] - w / 2, c[1] - h / 2, c[0] + w / 2, c[1] + h / 2)
                inside = abs(c[0]) + w / 2 <= FRAME and abs(c[1]) + h / 2 <= FRAME
                hits_line = blocked_p is not None and blocked_p.intersects(b)
                hits_label = any(b.intersects(o) for o in boxes)
                if inside and not hits_line and not hits_label:
                    best, best_cost = (c, b), 0.0
                    break
                cost = (blocked.intersection(b).area if hits_line else 0.0) + sum(b.intersection(o).area for o in boxes)
                cost += 0.0 if inside else 1e6
                if cost < best_cost:
                    best, best_cost = (c, b), cost
            if best_cost == 0.0:
                break
        placed[p.name] = best[0]
        boxes.append(best[1])
    return placed


def label_box_px(name: str, center: XY, style: Style, tf: Transform) -> tuple[float, float, float, float]:
    """Pixel box (x1, y1, x2, y2) of a label whose centre is ``center`` (figure units)."""
    w, h = _label_size(name, style)
    px, py = tf.to_px(center)
    return (px - w / 2, py - h / 2, px + w / 2, py + h / 2)


def content_bbox(figure: Figure, labels: dict[str, XY], style: Style, scale: float) -> tuple[float, float, float, float]:
    """Bounding box, in figure units, of everything drawn (lines, circles, labels)."""
    xs, ys = [], []
    for s in figure.segments:
        xs += [s.start[0], s.end[0]]
        ys += [s.start[1], s.end[1]]
    for c in figure.circles:
        xs += [c.center[0] - c.radius, c.center[0] + c.radius]
        ys += [c.center[1] - c.radius, c.center[1] + c.radius]
    for p in figure.points:
        xs.append(p.xy[0])
        ys.append(p.xy[1])
    for name, c in labels.items():
        w, h = (v / scale for v in _label_size(name, style))
        xs += [c[0] - w / 2, c[0] + w / 2]
        ys += [c[1] - h / 2, c[1] + h / 2]
    if not xs:
        return (0.0, 0.0, 0.0, 0.0)
    return (min(xs), min(ys), max(xs), max(ys))


def _dots(figure: Figure, style: Style) -> list[tuple[XY, float]]:
    """Dots to draw (centre, radius px): every labelled point when the style asks for dots,
    else circle centres only (a centre off every line would otherwise show nothing)."""
    if style.dot_radius > 0:
        return [(p.xy, style.dot_radius) for p in figure.points]
    return [(c.center, CENTRE_DOT) for c in figure.circles]


def _dashes(p: XY, q: XY, on: float, off: float):
    L = math.hypot(q[0] - p[0], q[1] - p[1])
    if L == 0:
        return
    ux, uy = (q[0] - p[0]) / L, (q[1] - p[1]) / L
    t = 0.0
    while t < L:
        e = min(L, t + on)
        yield (p[0] + ux * t, p[1] + uy * t), (p[0] + ux * e, p[1] + uy * e)
        t = e + off


def draw_figure(
    figure: Figure,
    size: tuple[int, int],
    tf: Transform,
    style: Style,
    labels: dict[str, XY] | None = None,
    ink: int = 0,
) -> Image.Image:
    """Draw a figure as a white 'L' image: thin lines (dashed where marked), unfilled
    circles, optional dots and the point labels (placed with ``place_labels`` if not given).
    """
    k = style.supersample
    W, H = size
    img = Image.new("L", (W * k, H * k), 255)
    d = ImageDraw.Draw(img)
    lw = max(1, round(style.line_width * k))

    def px(p: XY) -> XY:
        x, y = tf.to_px(p)
        return (x * k, y * k)

    for s in figure.segments:
        a, b = px(s.start), px(s.end)
        if s.dashed:
            for u, v in _dashes(a, b, style.dash_on * k, style.dash_off * k):
                d.line([u, v], fill=ink, width=lw)
        else:
            d.line([a, b], fill=ink, width=lw)
    for c in figure.circles:
        x, y = px(c.center)
        r = c.radius * tf.scale * k + lw / 2  # PIL draws the outline inward from the box
        d.ellipse([x - r, y - r, x + r, y + r], outline=ink, width=lw)
    for xy, r in _dots(figure, style):
        x, y = px(xy)
        d.ellipse([x - r * k, y - r * k, x + r * k, y + r * k], fill=ink)
    if labels is None:
        labels = place_labels(figure, style, tf.scale)
    f = font(style.font_px * k, style.italic)
    for name, c in labels.items():
        d.text(px(c), name, font=f, fill=ink, anchor="mm")
    return img.reduce(k) if k > 1 else img
