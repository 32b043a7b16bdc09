"""Measure what a drawn chart lets a reader read, from the renderer's own text extents.

A chart's target may only hold what the image shows legibly. ``measure`` takes a drawn
figure (the renderer calls it through ``render.INSPECTORS``) and records every visible
text as the rotated box matplotlib lays it out in (``Text._get_layout`` with the
renderer that drew it), every legend box and every plot mark (bars, wedges, lines,
markers, area outlines) in pixels. ``find_problems`` then compares them with the chart's
truth, independently of how the renderer laid them out (shapely geometry, not the
renderer's own collision code), and names what a reader would trip on:

- ``name_missing``: a table name (series or category) printed nowhere in the image;
  ``pie_series_missing`` is the pie/donut subset (their series name must be the title);
- ``tick_overlap``: two tick labels of one axis overprint each other;
- ``value_overlap``: a value label on top of another text (value, tick, title, label);
- ``value_under_legend``: a value label under a legend;
- ``legend_over_text``: a legend over an axis title, the title or tick labels;
- ``legend_over_marks``: a legend over bars, wedges, data lines or markers;
- ``text_overlap``: any other two texts on top of each other;
- ``clipped``: a text or legend running past the figure's edge;
- ``value_over_marks``: a value label crossed by a data line or lying on another bar or
  marker than the one it sits in (a stacked segment's or a wedge's own label is fine).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from synth.charts.marks import lines_and_markers

PROBLEMS: tuple[str, ...] = (
    "name_missing", "pie_series_missing", "tick_overlap", "value_overlap", "value_under_legend",
    "legend_over_text", "legend_over_marks", "text_overlap", "clipped", "value_over_marks",
)
# Boxes may share a pixel row where anti-aliased edges meet; more than this is an overlap.
MIN_OVERLAP_PX2 = 1.0
EDGE_TOLERANCE_PX = 1.0


@dataclass
class DrawnText:
    """One visible text: what it says, its role, and its rotated box (4 corners, pixels)."""

    text: str
    role: str    # title, axis_label, tick, value, category, legend
    group: str   # tick labels: which axis; legend texts: which legend; values: gid
    quad: np.ndarray


@dataclass
class Drawn:
    """Everything a reader sees of one chart, in pixels (origin bottom left)."""

    width: float
    height: float
    texts: list[DrawnText] = field(default_factory=list)
    legends: list[np.ndarray] = field(default_factory=list)  # (x0, y0, x1, y1) per legend
    areas: list[np.ndarray] = field(default_factory=list)    # filled marks: polygons (N, 2)
    lines: list[np.ndarray] = field(default_factory=list)    # stroked marks: polylines (N, 2)
    values_made: int = 0   # value labels the chart drew or tried to draw


def text_quad(text, renderer) -> np.ndarray:
    """The 4 corners of ``text``'s rotated layout box in display pixels."""
    extent = text.get_window_extent(renderer)
    bbox, _, (corner, (w, h)) = text._get_layout(renderer)
    # _get_layout is relative to the text's anchor; the window extent says where that is.
    dx, dy = extent.x0 - bbox.x0, extent.y0 - bbox.y0
    a = math.radians(text.get_rotation())
    c, s = math.cos(a), math.sin(a)
    local = np.array([(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)])
    rot = np.array([[c, -s], [s, c]])
    return local @ rot.T + np.array(corner) + np.array([dx, dy])


def _shown(text, renderer) -> bool:
    if not text.get_visible() or not text.get_text():
        return False
    check_xy = getattr(text, "_check_xy", None)  # annotations hide when their point is clipped
    return check_xy is None or bool(check_xy(renderer))


def _add(drawn: Drawn, text, renderer, role: str, group: str) -> None:
    if _shown(text, renderer):
        drawn.texts.append(DrawnText(text.get_text(), role, group, text_quad(text, renderer)))


def _measure_legend(drawn: Drawn, legend, renderer, k: int) -> None:
    if legend is None or not legend.get_visible():
        return
    box = legend.get_window_extent(renderer)
    frame = legend.legendPatch.get_window_extent(renderer)
    drawn.legends.append(np.array([min(box.x0, frame.x0), min(box.y0, frame.y0),
                                   max(box.x1, frame.x1), max(box.y1, frame.y1)]))
    for t in legend.get_texts():
        _add(drawn, t, renderer, "legend", f"legend{k}")


def _measure_marks(drawn: Drawn, ax, renderer) -> None:
    from matplotlib.patches import Rectangle, Wedge

    for p in ax.patches:
        if not p.get_visible():
            continue
        if isinstance(p, Rectangle):
            b = p.get_window_extent(renderer)
            drawn.areas.append(np.array([(b.x0, b.y0), (b.x1, b.y0), (b.x1, b.y1), (b.x0, b.y1)]))
        elif isinstance(p, Wedge):
            for poly in p.get_transform().transform_path(p.get_path()).to_polygons():
                drawn.areas.append(np.asarray(poly))
    polylines, markers = lines_and_markers(ax)
    drawn.lines += polylines
    drawn.areas += [np.array([(x - r, y - r), (x + r, y - r), (x + r, y + r), (x - r, y + r)]) for x, y, r in markers]


def measure(fig, renderer, axes) -> Drawn:
    """Record the visible texts, legends and marks of a drawn chart."""
    drawn = Drawn(float(fig.bbox.width), float(fig.bbox.height))
    for k, ax in enumerate(axes):
        for title in (ax.title, ax._left_title, ax._right_title):
            _add(drawn, title, renderer, "title", "")
        for axis in (ax.xaxis, ax.yaxis):
            if not axis.get_visible():
                continue
            _add(drawn, axis.label, renderer, "axis_label", "")
            for tick in axis._update_ticks():
                _add(drawn, tick.label1, renderer, "tick", f"{k}{axis.axis_name}1")
                _add(drawn, tick.label2, renderer, "tick", f"{k}{axis.axis_name}2")
        for t in ax.texts:
            gid = t.get_gid() or ""
            drawn.values_made += gid.startswith("value") and bool(t.get_text())
            role = "value" if gid.startswith("value") else "category" if gid == "category" else "other"
            _add(drawn, t, renderer, role, gid)
        _measure_legend(drawn, ax.get_legend(), renderer, k)
        _measure_marks(drawn, ax, renderer)
    for k, legend in enumerate(fig.legends):
        _measure_legend(drawn, legend, renderer, len(axes) + k)
    return drawn


@contextlib.contextmanager
def recording() -> Iterator[list[Drawn]]:
    """Within the block, every chart the renderer draws is measured into the list yielded."""
    from synth.charts import render

    out: list[Drawn] = []

    def inspect(fig, renderer, axes) -> None:
        out.append(measure(fig, renderer, axes))

    render.INSPECTORS.append(inspect)
    try:
        yield out
    finally:
        render.INSPECTORS.remove(inspect)


# ---- what a reader trips on ----------------------------------------------------------------

def _names_printed(texts: list[DrawnText]) -> set[str]:
    out = set()
    for t in texts:
        for s in (t.text, t.text.replace("\n", " "), t.text.replace("\n", "")):
            out.add(s)
            if t.role == "axis_label":
                # "Revenue ($k)" / "收入（万）" names the series "Revenue" / "收入".
                for sep in (" (", "（"):
                    if sep in s and s.endswith((")", "）")):
                        out.add(s[: s.rindex(sep)])
    return out


def _polygon(quad):
    from shapely.geometry import Polygon

    return Polygon(quad)


def _box(b):
    from shapely.geometry import box

    return box(*b)


def _clipped(quad: np.ndarray, w: float, h: float) -> bool:
    e = EDGE_TOLERANCE_PX
    return bool(quad[:, 0].min() < -e or quad[:, 1].min() < -e or quad[:, 0].max() > w + e or quad[:, 1].max() > h + e)


def _label(t: DrawnText) -> str:
    return f"{t.role} {t.text!r}"


def find_problems(drawn: Drawn, truth: dict[str, Any]) -> dict[str, list[str]]:
    """Every legibility problem of a drawn chart, by kind (see the module docstring)."""
    from shapely.geometry import LineString

    out: dict[str, list[str]] = {k: [] for k in PROBLEMS}
    printed = _names_printed(drawn.texts)
    for name in truth["series"]:
        if name not in printed:
            out["name_missing"].append(f"series {name!r}")
            if truth["kind"] in ("pie", "donut"):
                out["pie_series_missing"].append(f"series {name!r}")
    for name in truth["categories"]:
        if name not in printed:
            out["name_missing"].append(f"category {name!r}")

    texts = drawn.texts
    polys = [_polygon(t.quad) for t in texts]
    legends = [_box(b) for b in drawn.legends]
    for i, t in enumerate(texts):
        if _clipped(t.quad, drawn.width, drawn.height):
            out["clipped"].append(_label(t))
        for j in range(i + 1, len(texts)):
            u = texts[j]
            if not polys[i].intersects(polys[j]) or polys[i].intersection(polys[j]).area <= MIN_OVERLAP_PX2:
                continue
            if t.role == "legend" and u.role == "legend" and t.group == u.group:
                continue
            pair = f"{_label(t)} / {_label(u)}"
            if t.role == "tick" and u.role == "tick" and t.group == u.group:
                out["tick_overlap"].append(pair)
            elif "value" in (t.role, u.role) and "legend" not in (t.role, u.role):
                out["value_overlap"].append(pair)
            elif "legend" not in (t.role, u.role):
                out["text_overlap"].append(pair)
    for k, (b, lg) in enumerate(zip(drawn.legends, legends)):
        if _clipped(np.array([(b[0], b[1]), (b[2], b[3])]), drawn.width, drawn.height):
            out["clipped"].append(f"legend {k}")
        for t, p in zip(texts, polys):
            if t.role == "legend" or not lg.intersects(p) or lg.intersection(p).area <= MIN_OVERLAP_PX2:
                continue
            key = "value_under_legend" if t.role == "value" else "legend_over_text"
            out[key].append(f"legend {k} / {_label(t)}")
        hits = sum(1 for a in drawn.areas if lg.intersection(_polygon(a)).area > MIN_OVERLAP_PX2)
        hits += sum(1 for line in drawn.lines if LineString(line).intersects(lg))
        if hits:
            out["legend_over_marks"].append(f"legend {k} over {hits} marks")
    _value_marks(drawn, texts, polys, out["value_over_marks"])
    return out


def _value_marks(drawn: Drawn, texts: list[DrawnText], polys: list, out: list[str]) -> None:
    from shapely.geometry import LineString

    areas = [_polygon(a) for a in drawn.areas]
    lines = [LineString(line) for line in drawn.lines]
    for t, p in zip(texts, polys):
        if t.role != "value":
            continue
        centre = p.centroid
        hits = sum(1 for a in areas if not a.contains(centre) and a.intersection(p).area > 4 * MIN_OVERLAP_PX2)
        hits += sum(1 for line in lines if line.intersects(p))
        if hits:
            out.append(f"{_label(t)} over {hits} marks")
