"""Keep every text of a chart legible: nothing a reader needs overprints or hides.

Runs after ``synth.charts.layout`` has placed the axes, so every text's box is known in
pixels from the renderer's own layout (``Text._get_layout``, memoised per chart):

``fit_texts``
    A title wider than the figure is broken into two lines, then set smaller. Category
    tick labels that would overprint their neighbours are wrapped ("Q1 2020" and
    "2005第一季度" on two lines), turned 45°, then 90°, then set smaller; value-axis
    numbers that overprint get fewer ticks. Nothing is set below ``min_font_px``. The
    caller places the axes again after a change, until nothing changes.
``place_legend``
    A legend inside the axes takes the first corner or edge spot that covers no bar,
    marker, data line, area outline or value label; ``False`` when there is none (the
    caller then moves it outside the axes).
``place_values``
    Each value label takes the first of its candidate spots (above, below, beside its
    point; at or inside its bar's end; inside its stacked segment) that lies inside the
    figure and clear of every other text, legend and plot mark. A label with no such
    spot is not drawn, and the chart's truth says which values are printed.

All boxes are axis-aligned pixel boxes (x0, y0, x1, y1); rotated tick labels are only
compared with their neighbours, in the text's own frame.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synth.charts.marks import lines_and_markers

# Smallest text size (pixels per em) a fitting pass may set: the generator's own smallest
# tick labels (8.1 pt at ~70 dpi) are about this size.
MIN_FONT_PX = 8.0
# Smallest fraction of its style size a text may shrink to.
MIN_FONT_SCALE = 0.7
# Clearance between two texts along a line of text (em) and across lines (px).
GAP_EM = 0.25
GAP_PX = 1.0
# Inside-legend spots, in the order tried (matplotlib location codes).
LEGEND_SPOTS = (1, 2, 4, 3, 9, 8, 7, 6)  # upper right/left, lower right/left, upper/lower/right/left centre


@dataclass
class ValueLabel:
    """One printed value and where it may go.

    ``spots`` are (dx, dy, ha, va, colour, inside[, xy]) offsets in points from the
    anchor ``xy`` (data coordinates of ``text``'s axes; a spot may name its own anchor);
    ``inside`` spots must lie within the label's own bar or segment ``own`` (a
    Rectangle) and may cover it. A label with no spots stays where it is, if clear.
    """

    text: Any
    series: int
    category: int
    spots: list[tuple[float, float, str, str, str | None, bool]] = field(default_factory=list)
    own: Any = None


@dataclass
class Marks:
    """The plot's marks in pixels: filled boxes (bars, markers) and stroked segments."""

    rects: np.ndarray   # (K, 4)
    owners: list        # the Rectangle behind each bar box (None for markers)
    segments: np.ndarray  # (N, 4): x0, y0, x1, y1


# ---- geometry --------------------------------------------------------------------------

def boxes_hit(a: np.ndarray, b: np.ndarray, gap: float = 0.0) -> np.ndarray:
    """For each box of ``a``: does it come closer than ``gap`` to any box of ``b``?"""
    if not len(a) or not len(b):
        return np.zeros(len(a), dtype=bool)
    a, b = a[:, None, :], b[None, :, :]
    return ((a[..., 0] < b[..., 2] + gap) & (b[..., 0] < a[..., 2] + gap)
            & (a[..., 1] < b[..., 3] + gap) & (b[..., 1] < a[..., 3] + gap)).any(axis=1)


def boxes_cross(a: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """For each box of ``a``: does any segment of ``seg`` touch it?

    Exact: a segment meets a box when their bounding boxes overlap and the box's
    corners are not all on one side of the segment's line.
    """
    if not len(a) or not len(seg):
        return np.zeros(len(a), dtype=bool)
    x0, y0, x1, y1 = (seg[None, :, k] for k in range(4))
    bx0, by0, bx1, by1 = (a[:, None, k] for k in range(4))
    near = ((np.minimum(x0, x1) <= bx1) & (np.maximum(x0, x1) >= bx0)
            & (np.minimum(y0, y1) <= by1) & (np.maximum(y0, y1) >= by0))
    if not near.any():
        return np.zeros(len(a), dtype=bool)
    dx, dy = x1 - x0, y1 - y0
    sides = [dy * (cx - x0) - dx * (cy - y0) for cx, cy in ((bx0, by0), (bx1, by0), (bx1, by1), (bx0, by1))]
    lo = np.minimum(np.minimum(sides[0], sides[1]), np.minimum(sides[2], sides[3]))
    hi = np.maximum(np.maximum(sides[0], sides[1]), np.maximum(sides[2], sides[3]))
    return (near & (lo <= 0) & (hi >= 0)).any(axis=1)


def _extents(bboxes) -> np.ndarray:
    return np.array([b.extents for b in bboxes], dtype=float).reshape(-1, 4)


def _font_px(text, dpi: float) -> float:
    return text.get_fontsize() * dpi / 72


def _floor_pt(size_pt: float, dpi: float) -> float:
    """The smallest size (points) a text of ``size_pt`` may be set at."""
    return min(size_pt, max(MIN_FONT_PX * 72 / dpi, MIN_FONT_SCALE * size_pt))


# ---- marks and obstacles ---------------------------------------------------------------

def collect_marks(axes) -> Marks:
    """Bars, markers, data lines, area outlines and pie slice edges of ``axes``, in pixels."""
    from matplotlib.patches import Rectangle, Wedge

    rects, owners, segs = [], [], []
    for ax in axes:
        bars = [p for p in ax.patches if p.get_visible() and isinstance(p, Rectangle)]
        if bars:
            # Bars are data-space rectangles: all their corners in one transform.
            corners = np.array([(p.get_x(), p.get_y(), p.get_x() + p.get_width(), p.get_y() + p.get_height())
                                for p in bars], dtype=float)
            lo = ax.transData.transform(corners[:, :2])
            hi = ax.transData.transform(corners[:, 2:])
            rects += [tuple(r) for r in np.hstack([np.minimum(lo, hi), np.maximum(lo, hi)])]
            owners += bars
        for p in ax.patches:
            if p.get_visible() and isinstance(p, Wedge):
                for poly in p.get_transform().transform_path(p.get_path()).to_polygons():
                    segs.append(np.hstack([poly[:-1], poly[1:]]))
        polylines, markers = lines_and_markers(ax)
        segs += [np.hstack([xy[:-1], xy[1:]]) for xy in polylines]
        rects += [(x - r, y - r, x + r, y + r) for x, y, r in markers]
        owners += [None] * len(markers)
    return Marks(np.array(rects, dtype=float).reshape(-1, 4), owners,
                 np.vstack(segs) if segs else np.zeros((0, 4)))


def text_obstacles(fig, axes, renderer) -> np.ndarray:
    """Boxes no value label may touch: tick-label bands, axis labels, titles, pie labels, legends."""
    out = []
    for ax in axes:
        for axis in (ax.xaxis, ax.yaxis):
            if not axis.get_visible():
                continue
            # The bands the layout reserved for each side's tick labels (synth.charts.layout).
            first, second = axis._get_tick_boxes_siblings(renderer)
            out += first + second
            if axis.label.get_visible() and axis.label.get_text():
                axis._update_label_position(renderer)
                out.append(axis.label.get_window_extent(renderer))
        for title in (ax.title, ax._left_title, ax._right_title):
            if title.get_visible() and title.get_text():
                out.append(title.get_window_extent(renderer))
        for t in ax.texts:
            if t.get_gid() == "category" and t.get_visible():
                out.append(t.get_window_extent(renderer))
        legend = ax.get_legend()
        if legend is not None:
            out.append(legend.get_window_extent(renderer))
    out += [lg.get_window_extent(renderer) for lg in fig.legends]
    return _extents(out)


# ---- titles and tick labels ------------------------------------------------------------

def wrap_middle(text: str) -> str:
    """``text`` on two lines, broken at the space nearest its middle (CJK: mid-string)."""
    if "\n" in text:
        return text
    if " " in text:
        spaces = [i for i, ch in enumerate(text) if ch == " "]
        i = min(spaces, key=lambda k: abs(2 * k - len(text)))
        return text[:i] + "\n" + text[i + 1:]
    if len(text) >= 4:
        return text[: len(text) // 2] + "\n" + text[len(text) // 2:]
    return text


_YEAR_THEN_WORDS = re.compile(r"^(\d{4})(\D{2,})$")


def wrap_category(label: str) -> str:
    """A category label on two lines where it has a natural break ("Q1 2020", "2005第一季度")."""
    if " " in label:
        return wrap_middle(label)
    m = _YEAR_THEN_WORDS.match(label)
    return f"{m.group(1)}\n{m.group(2)}" if m else label


@dataclass
class TickFit:
    """How a category axis prints its labels; ``step`` indexes ``steps`` (tried in order)."""

    axis: Any
    categories: list[str]
    steps: list[tuple[int, bool, float]]  # (rotation, wrapped, font scale)
    base_pt: float
    step: int = 0


def category_steps(rotation: int, categories: list[str], vertical_axis: bool, base_pt: float,
                   dpi: float) -> list[tuple[int, bool, float]]:
    """Layouts to try, in order, for a category axis whose labels overprint."""
    floor = _floor_pt(base_pt, dpi) / base_pt
    shrink = [s for s in (0.9, 0.8, 0.7) if s >= floor - 1e-9]
    if vertical_axis:  # hbar: horizontal labels stacked up the y axis
        return [(0, False, 1.0)] + [(0, False, s) for s in shrink]
    steps = [(rotation, False, 1.0)]
    if rotation == 0 and any(wrap_category(c) != c for c in categories):
        steps.append((0, True, 1.0))
    if rotation < 45:
        steps.append((45, False, 1.0))
    steps.append((90, False, 1.0))
    return steps + [(90, False, s) for s in shrink]


def apply_category_step(ax, fit: TickFit) -> None:
    """Set ``fit``'s current step on its axis (labels, rotation, alignment, size)."""
    angle, wrapped, scale = fit.steps[fit.step]
    labels = [wrap_category(c) for c in fit.categories] if wrapped else list(fit.categories)
    pos = np.arange(len(labels))
    size = fit.base_pt * scale
    if fit.axis is ax.yaxis:
        ax.set_yticks(pos, labels=labels, fontsize=size)
        return
    ax.set_xticks(pos, labels=labels, rotation=angle, ha="right" if angle else "center",
                  va="center" if angle == 90 else "top", rotation_mode="anchor", fontsize=size)


def _tick_geometry(ax, axis, renderer, cache: dict):
    """Positions along the axis (px) and unrotated sizes (w, h px) of its visible labels.

    The sizes are kept in ``cache`` until the labels change (layout.forget).
    """
    ticks = axis._update_ticks()
    labs = [(t.get_loc(), t.label1) for t in ticks if t.label1.get_visible() and t.label1.get_text()]
    if len(labs) < 2:
        return None
    locs = np.array([loc for loc, _ in labs], dtype=float)
    if axis is ax.xaxis:
        pos = ax.transData.transform(np.column_stack([locs, np.zeros_like(locs)]))[:, 0]
    else:
        pos = ax.transData.transform(np.column_stack([np.zeros_like(locs), locs]))[:, 1]
    sizes = cache.get(("sizes", id(axis)))
    if sizes is None or len(sizes) != len(labs):
        sizes = cache["sizes", id(axis)] = np.array([lab._get_layout(renderer)[2][1] for _, lab in labs], dtype=float)
    em = _font_px(labs[0][1], ax.figure.dpi)
    order = np.argsort(pos)
    return pos[order], sizes[order], labs[0][1].get_rotation(), em


def overprints(ax, axis, renderer, cache: dict) -> bool:
    """Whether two neighbouring tick labels of ``axis`` come closer than the clearances."""
    geo = _tick_geometry(ax, axis, renderer, cache)
    if geo is None:
        return False
    pos, sizes, angle, em = geo
    pitch = np.abs(np.diff(pos))
    w, h = sizes[:, 0], sizes[:, 1]
    if axis is ax.yaxis:  # horizontal labels stacked vertically
        return bool(np.any((h[:-1] + h[1:]) / 2 + GAP_PX > pitch))
    gap = GAP_EM * em
    if angle == 0:
        return bool(np.any((w[:-1] + w[1:]) / 2 + gap > pitch))
    # Rotated labels are parallel: apart across the text or along it, in its own frame.
    s, c = math.sin(math.radians(angle)), math.cos(math.radians(angle))
    apart = (pitch * s >= h[:-1] + GAP_PX) | (pitch * c - w[1:] >= gap)
    return not bool(apart.all())


def _ytick_label_boxes(axes, renderer) -> list:
    """Window extents of the visible, non-empty y tick labels (both sides) of ``axes``."""
    boxes = []
    for a in axes:
        if a.yaxis.get_visible():
            for t in a.yaxis._update_ticks():
                boxes += [lab.get_window_extent(renderer) for lab in (t.label1, t.label2)
                          if lab.get_visible() and lab.get_text()]
    return boxes


def corner_overlap(axes, renderer) -> float:
    """How far (px) the first or last x tick label runs into a y tick label, vertically."""
    ax = axes[0]
    ticks = [t for t in ax.xaxis._update_ticks() if t.label1.get_visible() and t.label1.get_text()]
    if not ticks:
        return 0.0
    first, last = ticks[0].label1, ticks[-1].label1
    if first.get_rotation() == 0 and len(axes) == 1:
        # Centred under its tick: clear of the left spine's labels if it ends right of it.
        x = ax.transData.transform((ticks[0].get_loc(), 0))[0]
        if x - first._get_layout(renderer)[2][1][0] / 2 > ax.bbox.x0:
            return 0.0
    xs = _extents([first.get_window_extent(renderer), last.get_window_extent(renderer)])
    if xs[:, 0].min() > ax.bbox.x0 and (len(axes) == 1 or xs[:, 2].max() < ax.bbox.x1):
        return 0.0  # y tick labels lie beyond the spines; these stay between them
    ys = _extents(_ytick_label_boxes(axes, renderer))
    if not len(ys):
        return 0.0
    a, b = xs[:, None, :], ys[None, :, :]
    across = (a[..., 0] < b[..., 2] + GAP_PX) & (b[..., 0] < a[..., 2] + GAP_PX)
    depth = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + GAP_PX
    hit = across & (depth > 0)
    return float(depth[hit].max()) if hit.any() else 0.0


@dataclass
class TitleFit:
    """A chart's title, the size its style gave it (the floor is relative to that) and
    its distance above the axes (points)."""

    text: Any
    base_pt: float
    pad_pt: float


def fit_title_clearance(fit: TitleFit, axes, renderer) -> bool:
    """Raise a title wider than the axes above the value-axis labels it would touch."""
    box = fit.text.get_window_extent(renderer)
    inner = axes[0].bbox
    if box.x0 >= inner.x0 and box.x1 <= inner.x1:
        return False  # y tick labels lie beside the axes, never under such a title
    depth = 0.0
    for b in _ytick_label_boxes(axes, renderer):
        if b.x0 < box.x1 + GAP_PX and box.x0 < b.x1 + GAP_PX:
            depth = max(depth, b.y1 - box.y0 + GAP_PX)
    if depth <= 0:
        return False
    fit.pad_pt += depth * 72 / axes[0].figure.dpi
    axes[0]._set_title_offset_trans(fit.pad_pt)
    return True


def fit_title(fit: TitleFit, renderer, width: float, dpi: float) -> bool:
    """Break, then shrink, a title that runs past the figure's sides (or into a figure
    legend, as pies have); True when changed."""
    title = fit.text
    box = title.get_window_extent(renderer)
    right = min([width] + [lg.get_window_extent(renderer).x0 - GAP_PX for lg in title.figure.legends])
    if box.x0 >= 0 and box.x1 <= right:
        return False
    wrapped = wrap_middle(title.get_text())
    if wrapped != title.get_text():
        title.set_text(wrapped)
        return True
    size = title.get_fontsize()
    new = max(size * 0.85, _floor_pt(fit.base_pt, dpi))
    if new >= size - 1e-6:
        return False
    title.set_fontsize(new)
    return True


# ---- legends ---------------------------------------------------------------------------

def place_legend(legend, renderer, marks: Marks, values: np.ndarray, size: tuple[float, float]) -> bool:
    """Put an inside legend of ``size`` (w, h px) at the first spot clear of marks and
    value labels; False if none is."""
    from matplotlib.transforms import Bbox

    w, h = size
    parent = legend.get_bbox_to_anchor()
    spots = [legend._get_anchored_bbox(code, Bbox.from_bounds(0, 0, w, h), parent, renderer)
             for code in LEGEND_SPOTS]
    boxes = np.array([(x, y, x + w, y + h) for x, y in spots], dtype=float)
    blocked = boxes_hit(boxes, marks.rects) | boxes_cross(boxes, marks.segments) | boxes_hit(boxes, values, GAP_PX)
    for code, bad in zip(LEGEND_SPOTS, blocked):
        if not bad:
            legend.set_loc(code)
            return True
    return False


# ---- value labels ----------------------------------------------------------------------

def offset_box(anchor, size, spot, dots: float) -> tuple[float, float, float, float]:
    """Pixel box (x0, y0, x1, y1) of an unrotated text of ``size`` (w, h px) placed
    ``spot`` = (dx, dy, ha, va, ...) points from the pixel ``anchor``."""
    (ax_, ay), (w, h) = anchor, size
    dx, dy, ha, va = spot[:4]
    x = ax_ + dx * dots
    y = ay + dy * dots
    x0 = x - w / 2 if ha == "center" else x if ha == "left" else x - w
    y0 = y - h / 2 if va == "center" else y if va == "bottom" else y - h
    return (x0, y0, x0 + w, y0 + h)


def candidate_boxes(labels: list[ValueLabel], renderer) -> list[np.ndarray]:
    """For each label, the pixel box of each of its spots (its current box if it has none)."""
    if not labels:
        return []
    dots = labels[0].text.figure.dpi / 72
    # Every anchor of every spot, transformed once per axes.
    anchors: dict = {}
    for lab in labels:
        if lab.spots:
            pts = anchors.setdefault(lab.text.axes, [])
            pts += [spot[6] if len(spot) > 6 else lab.text.xy for spot in lab.spots]
    pixels = {ax: iter(ax.transData.transform(np.asarray(pts, dtype=float))) for ax, pts in anchors.items()}
    out = []
    for lab in labels:
        t = lab.text
        if not lab.spots:
            out.append(_extents([t.get_window_extent(renderer)]))
            continue
        size = t._get_layout(renderer)[2][1]
        px = pixels[t.axes]
        out.append(np.array([offset_box(next(px), size, spot, dots) for spot in lab.spots], dtype=float))
    return out


def _choose(labels: list[ValueLabel], cands: list[np.ndarray], obstacles: np.ndarray, marks: Marks,
            width: float, height: float) -> list[int]:
    """The spot each label takes (-1: none is clear), first come first served."""
    all_boxes = np.vstack(cands)
    inside_fig = ((all_boxes[:, 0] >= 1) & (all_boxes[:, 1] >= 1)
                  & (all_boxes[:, 2] <= width - 1) & (all_boxes[:, 3] <= height - 1))
    clear = inside_fig & ~boxes_hit(all_boxes, obstacles, GAP_PX) & ~boxes_cross(all_boxes, marks.segments)
    own_index = {id(p): i for i, p in enumerate(marks.owners) if p is not None}
    placed = np.zeros((len(labels), 4))
    n = 0
    chosen = []
    k0 = 0
    for lab, boxes in zip(labels, cands):
        ok = clear[k0:k0 + len(boxes)]
        k0 += len(boxes)
        pick = -1
        for j, box in enumerate(boxes):
            if not ok[j]:
                continue
            rects = marks.rects
            if lab.spots and lab.spots[j][5]:
                # An inside spot covers its own bar or segment and must fit within it.
                own = own_index[id(lab.own)]
                ox0, oy0, ox1, oy1 = marks.rects[own]
                if not (box[0] >= ox0 + 1 and box[2] <= ox1 - 1 and box[1] >= oy0 + 1 and box[3] <= oy1 - 1):
                    continue
                rects = np.delete(marks.rects, own, axis=0)
            if boxes_hit(box[None], rects)[0] or boxes_hit(box[None], placed[:n], GAP_PX)[0]:
                continue
            pick = j
            break
        if pick >= 0:
            placed[n] = boxes[pick]
            n += 1
        chosen.append(pick)
    return chosen


def place_values(labels: list[ValueLabel], renderer, obstacles: np.ndarray, marks: Marks,
                 width: float, height: float, cands: list[np.ndarray] | None = None) -> list[tuple[int, int]]:
    """Move each label to its first clear spot or hide it; returns the (series, category) printed.

    When some label finds no clear spot, all labels are tried again smaller (one size for
    the whole chart, never under the legibility floor) and the size that prints the
    most values wins (the larger one on a tie). ``cands`` are the labels' spot boxes at
    their own size when already known (``candidate_boxes``). A moved label keeps its
    alignment and changes only its offset.
    """
    if not labels:
        return []
    base = labels[0].text.get_fontsize()
    dpi = labels[0].text.figure.dpi
    floor = _floor_pt(base, dpi) / base
    best = None
    for scale in (1.0, 0.9, 0.8, 0.7):
        if scale < floor - 1e-9:
            break
        if scale != 1.0:
            for lab in labels:
                lab.text.set_fontsize(base * scale)
        if scale != 1.0 or cands is None:
            cands = candidate_boxes(labels, renderer)
        chosen = _choose(labels, cands, obstacles, marks, width, height)
        count = sum(c >= 0 for c in chosen)
        if best is None or count > best[0]:
            best = (count, scale, chosen, cands)
        if count == len(labels):
            break
    _, scale, chosen, cands = best
    printed = []
    dots = labels[0].text.figure.dpi / 72
    for lab, pick, boxes in zip(labels, chosen, cands):
        t = lab.text
        t.set_fontsize(base * scale)
        if pick < 0:
            t.set_visible(False)
            continue
        if lab.spots:
            spot = lab.spots[pick]
            if len(spot) > 6:
                t.xy = spot[6]
            # The text keeps its alignment (its measured layout stays valid for the draw);
            # only its offset moves, so that its box lands on the chosen one.
            x0, y0, x1, y1 = boxes[pick]
            px, py = t.axes.transData.transform(t.xy)
            fx, fy = _ALIGN_X[t.get_horizontalalignment()], _ALIGN_Y[t.get_verticalalignment()]
            t.xyann = ((x0 + (x1 - x0) * fx - px) / dots, (y0 + (y1 - y0) * fy - py) / dots)
            if spot[4]:
                t.set_color(spot[4])
        printed.append((lab.series, lab.category))
    return printed


# Where the anchor sits in a text's box, per alignment (fraction of width / height).
_ALIGN_X = {"left": 0.0, "center": 0.5, "right": 1.0}
_ALIGN_Y = {"bottom": 0.0, "center": 0.5, "top": 1.0}
