"""Place a chart's axes so its text fits the canvas, measuring each text once.

matplotlib measures every tick label several times per chart: its tight box positions
the axis labels from the tick labels of all "sibling" axes, the automatic title
position measures both y axes again, and drawing repeats all of it. Here the tick
labels, axis labels, titles and value labels are measured once with the axes at a
provisional position, legends beside the axes by their size only; the margins follow
from how far each sticks out of the axes. Those overhangs do not depend on the axes
size (tick labels sit a fixed number of points from their spine), so the axes are moved
once and each axis is told where its tick labels ended up, which the draw then uses to
place the axis label (and the unused offset text) instead of measuring the tick labels
again. synth.charts.declutter may change text after a placement (wrap, turn, shrink);
the renderer then places the axes again.
"""

from __future__ import annotations

import numpy as np
from matplotlib.transforms import Bbox

from synth.charts.declutter import offset_box


def _ticklabel_box(axis, renderer):
    """Union of the visible tick labels of ``axis`` at the current position (or None)."""
    axis.__dict__.pop("_update_ticks", None)  # the last chart's pinned ticks
    if not axis.get_visible():
        return None, None
    # The class's methods: the instance's are the pinned stand-ins from the last chart.
    ticks = type(axis)._update_ticks(axis)
    b1, b2 = type(axis)._get_ticklabel_bboxes(axis, ticks, renderer)
    # Moving the axes changes neither the view limits nor the tick values, so the draw
    # can use these ticks as they are (they were just updated in place).
    axis._update_ticks = lambda: ticks
    return (Bbox.union(b1) if b1 else None), (Bbox.union(b2) if b2 else None)


def _pin_label_boxes(axis, ax, side1: float | None, side2: float | None) -> None:
    """Make ``axis`` place its label from known tick-label overhangs (pixels past the spine).

    ``side1`` is the overhang below (x) or left of (y) the axes, ``side2`` above or right;
    None means no tick labels there. The boxes are rebuilt from the axes' final bbox when
    the axis asks, so they follow the move.
    """
    is_x = axis.axis_name == "x"

    def boxes(renderer=None):
        bb = ax.bbox
        first, second = [], []
        if side1 is not None:
            first.append(Bbox([[bb.x0, bb.y0 - side1], [bb.x1, bb.y0]]) if is_x
                         else Bbox([[bb.x0 - side1, bb.y0], [bb.x0, bb.y1]]))
        if side2 is not None:
            second.append(Bbox([[bb.x0, bb.y1], [bb.x1, bb.y1 + side2]]) if is_x
                          else Bbox([[bb.x1, bb.y0], [bb.x1 + side2, bb.y1]]))
        return first, second

    axis._get_tick_boxes_siblings = boxes
    # Axis.draw measures the tick labels again only to place the (empty) offset text.
    axis._get_ticklabel_bboxes = lambda ticks, renderer: boxes()


def _axis_extent(axis, ax, renderer) -> list:
    """Boxes (at the provisional position) for the tick labels and label of ``axis``."""
    dots = ax.figure.dpi / 72
    bb = ax.bbox
    tl1, tl2 = _ticklabel_box(axis, renderer)
    is_x = axis.axis_name == "x"
    if is_x:
        side1 = None if tl1 is None else max(0.0, bb.y0 - tl1.y0)
        side2 = None if tl2 is None else max(0.0, tl2.y1 - bb.y1)
    else:
        side1 = None if tl1 is None else max(0.0, bb.x0 - tl1.x0)
        side2 = None if tl2 is None else max(0.0, tl2.x1 - bb.x1)
    _pin_label_boxes(axis, ax, side1, side2)
    out = [b for b in (tl1, tl2) if b is not None]
    label = axis.label
    if axis.get_visible() and label.get_visible() and label.get_text():
        lb = label.get_window_extent(renderer)  # only its size is used
        gap = axis.labelpad * dots
        if is_x and axis.label_position == "bottom":
            y1 = bb.y0 - (side1 or 0.0) - gap
            out.append(Bbox([[lb.x0, y1 - lb.height], [lb.x1, y1]]))
        elif is_x:
            y0 = bb.y1 + (side2 or 0.0) + gap
            out.append(Bbox([[lb.x0, y0], [lb.x1, y0 + lb.height]]))
        elif axis.label_position == "left":
            x1 = bb.x0 - (side1 or 0.0) - gap
            out.append(Bbox([[x1 - lb.width, lb.y0], [x1, lb.y1]]))
        else:
            x0 = bb.x1 + (side2 or 0.0) + gap
            out.append(Bbox([[x0, lb.y0], [x0 + lb.width, lb.y1]]))
    return out


def _text_boxes(ax, renderer) -> list:
    """Titles, value labels and pie labels of ``ax`` (legends are placed separately)."""
    out = []
    for title in (ax.title, ax._left_title, ax._right_title):
        if title.get_visible() and title.get_text():
            out.append(title.get_window_extent(renderer))
    dots = ax.figure.dpi / 72
    for text in ax.texts:
        if not (text.get_visible() and text.get_text()):
            continue
        if (text.get_gid() or "").startswith("value"):
            # Value labels are unrotated annotations at an offset in points from a data
            # point: their box follows from the text's size (a fraction of the cost).
            spot = (*text.xyann, text.get_horizontalalignment(), text.get_verticalalignment())
            box = offset_box(ax.transData.transform(text.xy), text._get_layout(renderer)[2][1], spot, dots)
            out.append(Bbox.from_extents(*box))
        else:
            out.append(text.get_window_extent(renderer))
    return out


def forget(cache: dict, *artists) -> None:
    """Drop what ``cache`` holds about these axes or axis objects (their text changed)."""
    ids = {id(a) for a in artists}
    for key in [k for k in cache if k[1] in ids]:
        del cache[key]


def legend_size(legend, renderer, cache: dict) -> tuple[float, float]:
    """(width, height) of ``legend`` in pixels, measured once (its spot does not change it)."""
    held = cache.get(("legend", id(legend)))
    if held is None or held[0] is not legend:  # an id may be reused once a legend is gone
        b = legend.get_window_extent(renderer)
        held = cache["legend", id(legend)] = (legend, (b.width, b.height))
    return held[1]


def _finite(b: Bbox) -> bool:
    """Neither side infinite and not a single point (matplotlib 3.11's private ``Bbox._is_finite``,
    spelled out so older matplotlib releases lay charts out the same way)."""
    return (b.width > 0 or b.height > 0) and b.width < np.inf and b.height < np.inf


def place_axes(fig, canvas, axes: tuple, pad_px: float, side_legends: tuple = (), cache: dict | None = None) -> bool:
    """Size and place ``axes`` (one shared position) so the chart's text fits ``fig``.

    ``side_legends`` are (legend, side) pairs, side "right", "top" or "bottom": each gets
    room beyond everything else on that side (tick labels, axis labels, the twin axis'
    labels) and is anchored there, so it covers no text. Legends inside the axes need no
    room (synth.charts.declutter places them). Returns False when the text leaves too
    little room for a usable plot (the axes then take a fixed share and text may clip).

    ``cache`` keeps each axis' and each axes' text boxes between calls for one chart
    (they are measured at the same provisional position every time); the caller drops
    the entries of whatever it changed (``forget``).
    """
    from matplotlib.transforms import IdentityTransform

    renderer = canvas.get_renderer()
    W, H = fig.bbox.width, fig.bbox.height
    for ax in axes:
        ax.set_position((0.1, 0.1, 0.8, 0.8))
        ax.apply_aspect()
    inner = Bbox.union([ax.bbox for ax in axes])
    boxes = [inner]
    cache = {} if cache is None else cache
    for ax in axes:
        for axis in (ax.xaxis, ax.yaxis):
            if ("extent", id(axis)) not in cache:
                cache["extent", id(axis)] = _axis_extent(axis, ax, renderer)
            boxes += cache["extent", id(axis)]
        if ("texts", id(ax)) not in cache:
            cache["texts", id(ax)] = _text_boxes(ax, renderer)
        boxes += cache["texts", id(ax)]
    outer = Bbox.union([b for b in boxes if _finite(b)])
    right_edge = W
    if fig.legends:
        right_edge = W - legend_size(fig.legends[0], renderer, cache)[0] - pad_px
    extra = {"right": 0.0, "top": 0.0, "bottom": 0.0}
    sizes = []
    for legend, side in side_legends:
        w, h = legend_size(legend, renderer, cache)
        sizes.append((w, h))
        extra[side] += (w if side == "right" else h) + pad_px
    over = (inner.x0 - outer.x0, inner.y0 - outer.y0, outer.x1 - inner.x1, outer.y1 - inner.y1)
    left = over[0] + pad_px
    bottom = over[1] + pad_px + extra["bottom"]
    right = right_edge - over[2] - pad_px - extra["right"]
    top = H - over[3] - pad_px - extra["top"]
    fits = right - left >= 0.3 * W and top - bottom >= 0.3 * H
    if not fits:
        # Labels too long for the canvas: keep a usable plot, accept some clipping.
        left, bottom, right, top = 0.15 * W, 0.15 * H, 0.9 * W, 0.88 * H
    pos = (left / W, bottom / H, (right - left) / W, (top - bottom) / H)
    for ax in axes:
        ax.set_position(pos)
        # Where the draw will put it (pies keep their aspect): later passes read transData.
        ax.apply_aspect()
    for (legend, side), (w, h) in zip(side_legends, sizes):
        cx = min(max((left + right) / 2, w / 2 + pad_px), W - w / 2 - pad_px)
        if side == "right":
            loc, x, y = "center left", right + over[2] + pad_px, (bottom + top) / 2
        elif side == "top":
            loc, x, y = "lower center", cx, top + over[3] + pad_px
        else:
            loc, x, y = "upper center", cx, bottom - over[1] - pad_px
        legend.set_loc(loc)
        legend.set_bbox_to_anchor(Bbox.from_bounds(x, y, 0, 0), transform=IdentityTransform())
    return fits
