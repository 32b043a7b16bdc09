"""Draw a ChartData in a Style with matplotlib (Agg, no pyplot) and encode it as PNG.

One Figure and its Agg canvas are kept per process and cleared between charts (building
them costs more than drawing a small chart). Every matplotlib setting the drawing reads
is set from matplotlib's bundled defaults plus the Style inside ``rc_context``, so a
user's matplotlibrc or another module's rcParams cannot change the output, and nothing
leaks from one chart into the next.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synth.charts import pool as charts_pool
from synth.charts.data import PIE_KINDS, ChartData, format_value
from synth.charts.declutter import (MIN_FONT_PX, MIN_FONT_SCALE, TickFit, TitleFit, ValueLabel,
                                    apply_category_step, candidate_boxes, category_steps, collect_marks,
                                    corner_overlap, fit_title, fit_title_clearance, overprints, place_legend,
                                    place_values, text_obstacles)
from synth.charts.fonts import families_for
from synth.charts.layout import forget, legend_size, place_axes
from synth.charts.png import encode_rgb
from synth.charts.style import Style
from synth.charts.textcache import memoised_text_layout


# Callbacks ``f(fig, renderer, axes)`` run after each chart is drawn, before the figure is
# reused (synth.charts.audit measures the drawn text with them); empty in production.
INSPECTORS: list = []


@functools.lru_cache(maxsize=1)
def _base_rc() -> dict:
    """matplotlib's bundled defaults minus the keys that are about backends or the GUI."""
    import matplotlib

    skip = ("backend", "interactive", "toolbar", "timezone", "webagg", "savefig.directory", "tk.", "macosx")
    return {k: v for k, v in matplotlib.rcParamsDefault.items() if not k.startswith(skip)}


def _rc(style: Style, lang: str) -> dict:
    t = style.theme
    rc = dict(_base_rc())
    rc.update({
        "font.family": families_for(lang, style.font, style.cjk_first),
        "font.size": style.font_size,
        "axes.titlesize": style.font_size * 1.3,
        # The CJK font has no bold face; asking for one only logs a fallback warning.
        "axes.titleweight": "bold" if style.title_bold and lang != "zh" else "normal",
        "axes.titlelocation": style.title_loc,
        "axes.labelsize": style.font_size,
        "xtick.labelsize": style.font_size * 0.9,
        "ytick.labelsize": style.font_size * 0.9,
        "legend.fontsize": style.font_size * 0.9,
        "text.color": t.ink,
        "axes.labelcolor": t.ink,
        "axes.edgecolor": t.ink,
        "xtick.color": t.ink,
        "ytick.color": t.ink,
        "axes.facecolor": t.axes,
        "figure.facecolor": t.figure,
        "grid.color": t.grid,
        "grid.linestyle": style.grid_style,
        "axes.grid": bool(style.grid),
        "axes.grid.axis": style.grid if style.grid in ("x", "y") else "both",
        "axes.axisbelow": True,
        "axes.spines.top": style.spines == "all",
        "axes.spines.right": style.spines == "all",
        "axes.spines.left": style.spines in ("all", "lb", "l"),
        "axes.spines.bottom": style.spines in ("all", "lb"),
        "legend.frameon": style.legend_frame,
        "legend.facecolor": t.axes,
        "legend.edgecolor": t.grid,
        "legend.labelcolor": t.ink,
        "axes.unicode_minus": False,
        "path.simplify": False,
        # A fixed title height: matplotlib's automatic one measures both y axes again.
        "axes.titley": 1.0,
        # Autohinting is a quarter of the drawing time; unhinted antialiased text reads fine.
        "text.hinting": "no_hinting",
    })
    return rc


def _changed(rc: dict) -> dict:
    """The entries of ``rc`` that differ from the active rcParams.

    Setting a key validates its value; most of the ~300 keys already hold the
    bundled default, so only the rest need setting (the end state is the same).
    """
    import matplotlib

    current = dict.items(matplotlib.rcParams)  # raw values, no per-key lookup overhead
    active = dict(current)
    return {k: v for k, v in rc.items() if not _same(active.get(k, _MISSING), v)}


_MISSING = object()


def _same(a, b) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except (TypeError, ValueError):  # e.g. arrays whose == is elementwise
        return False


def _value_formatter(prefix: str, suffix: str, sep: bool):
    """A tick formatter that prints the unit like the data and only the decimals needed."""
    from matplotlib.ticker import Formatter

    class ValueFormatter(Formatter):
        decimals = 0

        def format_ticks(self, values):
            self.decimals = _tick_decimals(values)
            return [self(v) for v in values]

        def __call__(self, x, pos=None):
            return format_value(float(x), self.decimals, prefix, suffix, sep)

    return ValueFormatter()


def _tick_decimals(values) -> int:
    """The fewest decimals (0..6) that print every tick value exactly."""
    for d in range(7):
        if all(abs(round(float(v), d) - float(v)) <= 1e-9 * max(1.0, abs(float(v))) for v in values):
            return d
    return 6


def _contrast(color: str) -> str:
    """Black or white, whichever reads better on ``color``."""
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#ffffff"


@dataclass
class Plan:
    """What the drawing left for the layout passes to settle (synth.charts.declutter).

    ``legend`` sits ``legend_side`` of the axes: "inside" (declutter picks the spot),
    "right", "top" or "bottom" (the layout makes room beside the axes), or "" (none,
    or the pie's figure legend). ``values`` are the printed values in placement order.
    """

    style: Style
    legend: Any = None
    legend_side: str = ""
    legend_ax: Any = None
    handles: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    ticks: TickFit | None = None
    title: TitleFit | None = None
    values: list[ValueLabel] = field(default_factory=list)
    boxes: dict = field(default_factory=dict)  # synth.charts.layout's measurements

    def side_legends(self) -> tuple:
        """(legend, side) pairs the layout must make room for."""
        return ((self.legend, self.legend_side),) if self.legend is not None and self.legend_side != "inside" else ()


def _legend(ax, style: Style, plan: Plan, handles: list, labels: list, side: str | None = None,
            ncol: int | None = None) -> None:
    """Draw the legend of ``ax`` on the side the style asks for (or ``side``)."""
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    if side is None:
        place = style.legend_place
        side = ("top" if not style.show_title else "right") if place == "above" else \
            "right" if place == "right" else "inside"
    n = len(labels)
    if ncol is None:
        ncol = min(n, 4) if side in ("top", "bottom") else 1
    kw = {"frameon": style.legend_frame, "ncol": ncol}
    # An inside legend gets its spot from declutter.place_legend, a side one from the
    # layout; either way a fixed spot for now, as "best" would search while measuring.
    kw["loc"] = "upper right" if side == "inside" else "center left"
    if side != "inside":
        kw["borderaxespad"] = 0.0  # the layout anchors it exactly beside the other text
    plan.legend = ax.legend(handles, labels, **kw)
    plan.legend_side, plan.legend_ax, plan.handles, plan.labels = side, ax, handles, labels


def _category_axis(ax, data: ChartData, style: Style, plan: Plan, horizontal: bool = False) -> None:
    import matplotlib

    axis = ax.yaxis if horizontal else ax.xaxis
    base = matplotlib.rcParams["ytick.labelsize" if horizontal else "xtick.labelsize"]
    dpi = ax.figure.dpi
    rotation = 0 if horizontal else style.x_rotation
    plan.ticks = TickFit(axis, list(data.categories),
                         category_steps(rotation, data.categories, horizontal, base, dpi), base)
    apply_category_step(ax, plan.ticks)
    if horizontal:
        ax.invert_yaxis()  # the first category on top, as the table reads


def _value_axis(ax, data: ChartData, s: int, horizontal: bool = False) -> None:
    from matplotlib.ticker import MaxNLocator

    pre, suf = data.affixes(s)
    axis = ax.xaxis if horizontal else ax.yaxis
    axis.set_major_locator(MaxNLocator(nbins=VALUE_BINS[0], steps=[1, 2, 2.5, 5, 10]))
    axis.set_major_formatter(_value_formatter(pre, suf, data.thousands_sep))


# Tick counts a value axis tries, in order, until its numbers stop overprinting.
VALUE_BINS = (6, 4, 3, 2)


@contextlib.contextmanager
def _deferred_patch_limits(ax, update: bool):
    """Collect the data limits of patches added in the block and apply them once.

    ``add_patch`` works out each patch's limits from its transformed path, which is
    most of the cost of a bar or pie. Bars are plain data-space rectangles, so their
    corners give the same limits in one ``update_datalim``; pies set their own view
    limits, so theirs are not needed at all (``update=False``).
    """
    added: list = []
    ax._update_patch_limits = added.append  # instance attribute shadows the method
    try:
        yield
    finally:
        del ax._update_patch_limits
    if update and added:
        corners = []
        for p in added:
            x, y = p.get_x(), p.get_y()
            corners += [(x, y), (x + p.get_width(), y + p.get_height())]
        ax.update_datalim(corners)


def _draw_bars(ax, data: ChartData, style: Style, plan: Plan, series: list[int], stacked: bool,
               horizontal: bool, slot: float | None = None) -> None:
    """Grouped or stacked bars of the given series, with their value labels in ``plan``."""
    n_cat = len(data.categories)
    pos = np.arange(n_cat, dtype=float)
    slot = style.bar_width if slot is None else slot
    width = slot if stacked else slot / len(series)
    base = np.zeros(n_cat)
    size = style.font_size * 0.8
    for k, s in enumerate(series):
        vals = np.asarray(data.values[s], dtype=float)
        off = 0.0 if stacked else (k - (len(series) - 1) / 2) * width
        color = style.colors[s % len(style.colors)]
        kw = {"color": color, "label": data.series[s]}
        if style.bar_edge:
            kw.update(edgecolor=style.bar_edge, linewidth=0.6)
        with _deferred_patch_limits(ax, update=True):
            if horizontal:
                c = ax.barh(pos + off, vals, height=width, left=base if stacked else None, **kw)
            else:
                c = ax.bar(pos + off, vals, width=width, bottom=base if stacked else None, **kw)
        if style.value_labels:
            for i, (bar, v) in enumerate(zip(c.patches, vals)):
                if stacked:
                    # Inside its segment, centred, when it fits there (declutter checks).
                    xy = (base[i] + v / 2, pos[i]) if horizontal else (pos[i], base[i] + v / 2)
                    spots = [(0.0, 0.0, "center", "center", None, True)]
                    colour = _contrast(color)
                else:
                    xy = (v, pos[i] + off) if horizontal else (pos[i] + off, v)
                    spots = _edge_spots(v, horizontal, _contrast(color))
                    colour = None
                plan.values.append(_value_label(ax, data.cell(s, i), xy, spots, s, i, size, colour, bar))
        if stacked:
            base = base + vals


def _edge_spots(v: float, horizontal: bool, inside_colour: str) -> list:
    """Where a bar's value may go: past its end, else just inside it (in contrasting ink)."""
    pad = 2.0
    sign = 1.0 if v >= 0 else -1.0
    if horizontal:
        out = (sign * pad, 0.0, "left" if sign > 0 else "right", "center", None, False)
        inside = (-sign * pad, 0.0, "right" if sign > 0 else "left", "center", inside_colour, True)
    else:
        out = (0.0, sign * pad, "center", "bottom" if sign > 0 else "top", None, False)
        inside = (0.0, -sign * pad, "center", "top" if sign > 0 else "bottom", inside_colour, True)
    return [out, inside]


def _point_spots(r: float) -> list:
    """Around a point, ``r`` points away: above, below, right, left, then the diagonals."""
    return [(0.0, r, "center", "bottom", None, False), (0.0, -r, "center", "top", None, False),
            (r, 0.0, "left", "center", None, False), (-r, 0.0, "right", "center", None, False),
            (r, r, "left", "bottom", None, False), (-r, r, "right", "bottom", None, False),
            (r, -r, "left", "top", None, False), (-r, -r, "right", "top", None, False)]


def _draw_points(ax, data: ChartData, style: Style, plan: Plan, s: int, line: bool, labels: bool) -> None:
    pos = np.arange(len(data.categories), dtype=float)
    vals = np.asarray(data.values[s], dtype=float)
    color = style.colors[s % len(style.colors)]
    marker = style.markers[s % len(style.markers)]
    if line:
        size = style.line_width * 2.5
        ax.plot(pos, vals, color=color, linewidth=style.line_width, marker=marker or None,
                markersize=size, label=data.series[s])
        r = (size / 2 if marker else style.line_width / 2) + 2.5
    else:
        ax.scatter(pos, vals, color=color, marker=marker or "o", s=(style.font_size * 2.2) ** 2 / 4,
                   label=data.series[s], zorder=3)
        r = style.font_size * 0.55 + 2.0
    if labels:
        _point_labels(ax, data, style, plan, s, pos, vals, r, color)


def _point_labels(ax, data: ChartData, style: Style, plan: Plan, s: int, pos, vals, r: float, color: str) -> None:
    spots = _point_spots(r)
    for i, v in enumerate(vals):
        plan.values.append(_value_label(ax, data.cell(s, i), (pos[i], v), spots, s, i, style.font_size * 0.8, color))


def _draw_pie(ax, data: ChartData, style: Style, plan: Plan) -> None:
    wedgeprops = {"edgecolor": style.theme.figure, "linewidth": 1.0}
    if data.kind == "donut":
        wedgeprops["width"] = style.donut_width
    colors = [style.colors[i % len(style.colors)] for i in range(len(data.categories))]
    with _deferred_patch_limits(ax, update=False):
        pie = ax.pie(
            data.values[0],
            labels=data.categories if style.pie_labels_outside else None,
            colors=colors,
            startangle=style.pie_start,
            counterclock=False,
            wedgeprops=wedgeprops,
            textprops={"fontsize": style.font_size * 0.85},
        )
    wedges = pie[0]
    if style.pie_labels_outside:
        for t in pie.texts[0]:
            t.set_gid("category")
    if style.value_labels:
        inner = 1.0 - style.donut_width / 2 if data.kind == "donut" else 0.68
        for i, w in enumerate(wedges):
            plan.values.append(_pie_value(ax, data.cell(0, i), w, inner, style.font_size * 0.85, i))
    ax.set_aspect("equal")
    if not style.pie_labels_outside:
        # A figure legend at the right edge; render_png keeps the axes clear of it.
        ax.figure.legend(wedges, data.categories, loc="center right", frameon=style.legend_frame)


def _pie_value(ax, text: str, wedge, inner: float, size: float, i: int) -> ValueLabel:
    """A slice's percentage: inside the slice, else just outside its rim."""
    mid = np.deg2rad((wedge.theta1 + wedge.theta2) / 2)
    c, s = float(np.cos(mid)), float(np.sin(mid))
    ha = "left" if c > 0.25 else "right" if c < -0.25 else "center"
    va = "bottom" if s > 0.25 else "top" if s < -0.25 else "center"
    spots = [(0.0, 0.0, "center", "center", None, False, (inner * c, inner * s)),
             (4.0 * c, 4.0 * s, ha, va, None, False, (wedge.r * c, wedge.r * s))]
    return _value_label(ax, text, spots[0][6], spots, 0, i, size)


def _value_label(ax, text: str, xy, spots: list, s: int, i: int, size: float, color: str | None = None,
                 own=None) -> ValueLabel:
    """Print the value of series ``s``, category ``i`` at its first spot (``xy`` the anchor,
    in data coordinates), named ``value:s:i`` for the audit; its spots go to declutter."""
    dx, dy, ha, va = spots[0][:4]
    t = ax.annotate(text, xy, textcoords="offset points", xytext=(dx, dy), ha=ha, va=va, fontsize=size, color=color)
    t.set_gid(f"value:{s}:{i}")
    return ValueLabel(t, s, i, spots, own)


def draw(axes: tuple, data: ChartData, style: Style) -> Plan:
    """Draw ``data`` onto freshly reset ``axes`` (inside the chart's rc_context).

    ``axes`` is (ax,) or, for composite charts, (ax, twin_ax) from synth.charts.pool.
    Returns what the layout passes still have to settle (legend spot, tick layout,
    value-label spots).
    """
    import matplotlib

    ax = axes[0]
    kind = data.kind
    plan = Plan(style)
    show_title = style.show_title or kind in PIE_KINDS or (len(data.series) == 1 and not data.y_label)
    if kind in PIE_KINDS:
        _draw_pie(ax, data, style, plan)
    elif kind in ("bar", "stacked_bar", "hbar"):
        horizontal = kind == "hbar"
        _draw_bars(ax, data, style, plan, list(range(len(data.series))), kind == "stacked_bar", horizontal)
        _category_axis(ax, data, style, plan, horizontal)
        _value_axis(ax, data, 0, horizontal)
        ax.margins(**({"x": 0.12} if horizontal else {"y": 0.12}))
    elif kind in ("line", "scatter"):
        for s in range(len(data.series)):
            _draw_points(ax, data, style, plan, s, kind == "line", style.value_labels)
        _category_axis(ax, data, style, plan)
        _value_axis(ax, data, 0)
        ax.margins(x=0.06, y=0.15)
    elif kind == "area":
        _draw_area(ax, data, style, plan)
    elif kind == "composite":
        _draw_composite(ax, axes[1], data, style, plan)
    else:
        raise ValueError(f"unknown chart kind {kind!r}")

    if kind not in PIE_KINDS:
        horizontal = kind == "hbar"
        (ax.set_ylabel if horizontal else ax.set_xlabel)(data.x_label)
        (ax.set_xlabel if horizontal else ax.set_ylabel)(data.y_label)
        if len(data.series) > 1 and kind != "composite":
            _legend(ax, style, plan, *ax.get_legend_handles_labels())
    if show_title:
        ax.set_title(data.title)
        plan.title = TitleFit(ax.title if style.title_loc == "center" else ax._left_title, ax.title.get_fontsize(),
                              matplotlib.rcParams["axes.titlepad"])
    return plan


def _draw_area(ax, data: ChartData, style: Style, plan: Plan) -> None:
    pos = np.arange(len(data.categories), dtype=float)
    colors = [style.colors[s % len(style.colors)] for s in range(len(data.series))]
    stacked = len(data.series) > 1 and style.area_stacked
    if stacked:
        ax.stackplot(pos, np.asarray(data.values, dtype=float), labels=data.series, colors=colors,
                     alpha=0.85, edgecolor=style.theme.figure, linewidth=0.5)
    else:
        for s in range(len(data.series)):
            vals = np.asarray(data.values[s], dtype=float)
            ax.fill_between(pos, 0, vals, color=colors[s], alpha=style.alpha, label=data.series[s], linewidth=0)
            ax.plot(pos, vals, color=colors[s], linewidth=style.line_width * 0.7)
            if style.value_labels:
                _point_labels(ax, data, style, plan, s, pos, vals, style.line_width * 0.35 + 3.0, colors[s])
    _category_axis(ax, data, style, plan)
    _value_axis(ax, data, 0)
    ax.set_xlim(pos[0] - 0.15, pos[-1] + 0.15)
    ax.set_ylim(bottom=0)
    ax.margins(y=0.12)


def _draw_composite(ax, ax2, data: ChartData, style: Style, plan: Plan) -> None:
    bar_series = [s for s in range(len(data.series)) if s not in data.secondary]
    _draw_bars(ax, data, style, plan, bar_series, False, False)
    _category_axis(ax, data, style, plan)
    _value_axis(ax, data, bar_series[0])
    ax.margins(y=0.15)
    ax2.grid(False)
    for s in data.secondary:
        _draw_points(ax2, data, style, plan, s, True, style.value_labels)
    _value_axis(ax2, data, data.secondary[0])
    ax2.set_ylabel(data.y2_label)
    ax2.margins(y=0.15)
    for side in ("top", "left", "bottom"):
        ax2.spines[side].set_visible(False)
    ax2.spines["right"].set_visible(style.spines != "none")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    # On the twin axes, so it is drawn above the line as well as the bars.
    _legend(ax2, style, plan, h1 + h2, l1 + l2)


def _settle(fig, canvas, axes: tuple, plan: Plan, pad: float) -> bool:
    """Place the axes, then refit title, tick labels and side legends until nothing changes.

    Returns False when the text does not leave room for the plot (synth.charts.layout).
    """
    renderer = canvas.get_renderer()
    W, dpi = fig.bbox.width, fig.dpi
    fits = True
    for _ in range(6):
        fits = place_axes(fig, canvas, axes, pad, plan.side_legends(), plan.boxes)
        changed = plan.title is not None and (fit_title(plan.title, renderer, W, dpi)
                                              or fit_title_clearance(plan.title, axes, renderer))
        if changed:
            forget(plan.boxes, axes[0])
        changed = _fit_ticks(axes, plan, renderer) or changed
        changed = _fit_side_legend(plan, renderer, W, pad) or changed
        if not changed:
            break
    return fits


def _fit_ticks(axes: tuple, plan: Plan, renderer) -> bool:
    """One step forward for each axis whose tick labels overprint; True when any changed."""
    from matplotlib.ticker import MaxNLocator

    changed = False
    ax = axes[0]
    fit = plan.ticks
    if fit is not None and fit.step + 1 < len(fit.steps) and overprints(ax, fit.axis, renderer, plan.boxes):
        fit.step += 1
        apply_category_step(ax, fit)
        forget(plan.boxes, fit.axis)
        changed = True
    if not changed:
        # The outermost category labels may run under the value axis' end labels.
        dy = corner_overlap(axes, renderer)
        if dy > 0:
            pad = ax.xaxis._major_tick_kw.get("pad", ax.xaxis.majorTicks[0]._base_pad)
            ax.xaxis.set_tick_params(pad=pad + dy * 72 / ax.figure.dpi + 1)
            forget(plan.boxes, ax.xaxis)
            changed = True
    for a in axes:
        for axis in (a.xaxis, a.yaxis):
            loc = axis.get_major_locator()
            if not isinstance(loc, MaxNLocator) or not axis.get_visible():
                continue
            nbins = loc._nbins
            if nbins in VALUE_BINS[:-1] and overprints(a, axis, renderer, plan.boxes):
                loc.set_params(nbins=VALUE_BINS[VALUE_BINS.index(nbins) + 1])
                forget(plan.boxes, axis)
                changed = True
    return changed


def _fit_side_legend(plan: Plan, renderer, width: float, pad: float) -> bool:
    """A legend beside the axes that is too wide for its side moves below or takes fewer columns."""
    if plan.legend is None or plan.legend_side == "inside":
        return False
    w = legend_size(plan.legend, renderer, plan.boxes)[0]
    if plan.legend_side == "right" and w > 0.35 * width:
        _legend(plan.legend_ax, plan.style, plan, plan.handles, plan.labels, side="bottom")
        return True
    ncol = plan.legend._ncols
    if plan.legend_side in ("top", "bottom") and w > width - 2 * pad and ncol > 1:
        _legend(plan.legend_ax, plan.style, plan, plan.handles, plan.labels, side=plan.legend_side,
                ncol=max(1, (ncol + 1) // 2) if ncol > 2 else 1)
        return True
    return False


def render_png(data: ChartData, style: Style, width_px: int, height_px: int, dpi: float,
               compress_level: int) -> tuple[bytes, int, int, float, list[tuple[int, int]]]:
    """Draw the chart at about ``width_px`` x ``height_px``.

    Returns (PNG bytes, width, height, dpi, printed): ``dpi`` is the one drawn at (lower
    than asked when the text did not fit; that sets all text smaller, not under the
    legibility floor) and ``printed`` lists the (series, category) whose value the image
    prints as a label.
    """
    import matplotlib

    if not 0 <= compress_level <= 9:
        raise ValueError(f"png compress_level must be 0..9, got {compress_level}")
    with matplotlib.rc_context(_changed(_rc(style, data.lang))), memoised_text_layout():
        tick_pt = matplotlib.rcParams["xtick.labelsize"]
        floor_px = max(MIN_FONT_PX, MIN_FONT_SCALE * tick_pt * dpi / 72)
        for attempt in range(len(DPI_STEPS)):
            at = dpi * DPI_STEPS[attempt]
            if attempt and tick_pt * at / 72 < floor_px:
                break  # smaller would be illegible: keep the last try, clipping and all
            fig, canvas, axes, plan, pad = _lay_out(data, style, width_px, height_px, at)
            drawn_at = at
            if _settle(fig, canvas, axes, plan, pad):
                break
        renderer = canvas.get_renderer()
        marks = collect_marks(axes) if (plan.values or plan.legend_side == "inside") else None
        cands = None
        if plan.legend_side == "inside":
            cands = candidate_boxes(plan.values, renderer)
            first = np.array([c[0] for c in cands], dtype=float).reshape(-1, 4)
            if not place_legend(plan.legend, renderer, marks, first, legend_size(plan.legend, renderer, plan.boxes)):
                w = legend_size(plan.legend, renderer, plan.boxes)[0]
                _legend(plan.legend_ax, style, plan, plan.handles, plan.labels,
                        side="right" if w <= 0.3 * fig.bbox.width else "bottom")
                _settle(fig, canvas, axes, plan, pad)
                marks = collect_marks(axes)
                cands = None
        printed = []
        if plan.values:
            obstacles = text_obstacles(fig, axes, renderer)
            printed = place_values(plan.values, renderer, obstacles, marks, fig.bbox.width, fig.bbox.height, cands)
        canvas.draw()
        for inspect in INSPECTORS:
            inspect(fig, canvas.get_renderer(), axes)
        rgba = np.asarray(canvas.buffer_rgba())
    return encode_rgb(rgba, compress_level), rgba.shape[1], rgba.shape[0], drawn_at, printed


# Fractions of the asked DPI tried in turn while the text leaves no room for the plot.
DPI_STEPS = (1.0, 0.85, 0.72, 0.6)


def _lay_out(data: ChartData, style: Style, width_px: int, height_px: int, dpi: float) -> tuple:
    """A pooled figure of the asked pixel size at ``dpi`` with the chart drawn on it."""
    fig, canvas, axes = charts_pool.take(twin=data.kind == "composite")
    fig.set_dpi(dpi)
    # A quarter pixel of slack: Agg truncates the float size to whole pixels.
    fig.set_size_inches((width_px + 0.25) / dpi, (height_px + 0.25) / dpi, forward=False)
    fig.set_facecolor(style.theme.figure)
    plan = draw(axes, data, style)
    return fig, canvas, axes, plan, 0.08 * style.font_size * dpi / 72 + 3
