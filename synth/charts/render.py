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

import numpy as np

from synth.charts import pool as charts_pool
from synth.charts.data import PIE_KINDS, ChartData, format_value
from synth.charts.fonts import families_for
from synth.charts.layout import place_axes
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


def _legend(ax, style: Style, handles=None, labels=None, ncol_max: int = 4):
    kw = {"frameon": style.legend_frame}
    if handles is not None:
        kw.update(handles=handles, labels=labels)
    n = len(labels) if labels is not None else len(ax.get_legend_handles_labels()[1])
    place = style.legend_place
    if place == "above" and not style.show_title:
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.01), ncol=min(n, ncol_max), **kw)
    elif place in ("right", "above"):
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), **kw)
    else:
        ax.legend(loc="best", **kw)


def _category_axis(ax, data: ChartData, style: Style, horizontal: bool = False) -> None:
    pos = np.arange(len(data.categories))
    if horizontal:
        ax.set_yticks(pos, labels=data.categories)
        ax.invert_yaxis()  # the first category on top, as the table reads
    else:
        rot = style.x_rotation
        ax.set_xticks(pos, labels=data.categories, rotation=rot, ha="right" if rot else "center",
                      rotation_mode="anchor")


def _value_axis(ax, data: ChartData, s: int, horizontal: bool = False) -> None:
    from matplotlib.ticker import MaxNLocator

    pre, suf = data.affixes(s)
    axis = ax.xaxis if horizontal else ax.yaxis
    axis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    axis.set_major_formatter(_value_formatter(pre, suf, data.thousands_sep))


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


def _tag_values(texts, s: int) -> None:
    """Name each value label ``value:<series>:<category>`` (the audit finds them by it)."""
    for c, t in enumerate(texts):
        t.set_gid(f"value:{s}:{c}")


def _draw_bars(ax, data: ChartData, style: Style, series: list[int], stacked: bool, horizontal: bool,
               slot: float | None = None) -> list:
    """Grouped or stacked bars of the given series; returns the containers."""
    n_cat = len(data.categories)
    pos = np.arange(n_cat, dtype=float)
    slot = style.bar_width if slot is None else slot
    width = slot if stacked else slot / len(series)
    base = np.zeros(n_cat)
    containers = []
    totals = np.sum([np.abs(data.values[s]) for s in series], axis=0)
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
            labels = [data.cell(s, i) for i in range(n_cat)]
            if stacked:
                # A label only where the segment is tall enough to hold it.
                labels = [lab if abs(v) >= 0.08 * max(totals.max(), 1e-9) else "" for lab, v in zip(labels, vals)]
                texts = ax.bar_label(c, labels=labels, label_type="center", color=_contrast(color),
                                     fontsize=style.font_size * 0.8)
            else:
                texts = ax.bar_label(c, labels=labels, padding=2, fontsize=style.font_size * 0.8)
            _tag_values(texts, s)
        if stacked:
            base = base + vals
        containers.append(c)
    return containers


def _draw_points(ax, data: ChartData, style: Style, s: int, line: bool, labels: bool) -> None:
    pos = np.arange(len(data.categories), dtype=float)
    vals = np.asarray(data.values[s], dtype=float)
    color = style.colors[s % len(style.colors)]
    marker = style.markers[s % len(style.markers)]
    if line:
        ax.plot(pos, vals, color=color, linewidth=style.line_width, marker=marker or None,
                markersize=style.line_width * 2.5, label=data.series[s])
    else:
        ax.scatter(pos, vals, color=color, marker=marker or "o", s=(style.font_size * 2.2) ** 2 / 4,
                   label=data.series[s], zorder=3)
    if labels:
        _tag_values([ax.annotate(data.cell(s, i), (pos[i], v), textcoords="offset points", xytext=(0, 6),
                                 ha="center", va="bottom", fontsize=style.font_size * 0.8, color=color)
                     for i, v in enumerate(vals)], s)


def _draw_pie(ax, data: ChartData, style: Style) -> None:
    cells = iter([data.cell(0, i) for i in range(len(data.categories))])
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
            autopct=(lambda _pct: next(cells)) if style.value_labels else None,
            pctdistance=1.0 - style.donut_width / 2 if data.kind == "donut" else 0.68,
            textprops={"fontsize": style.font_size * 0.85},
        )
    wedges = pie[0]
    texts = pie.texts
    if style.pie_labels_outside:
        for t in texts[0]:
            t.set_gid("category")
    if style.value_labels:
        _tag_values(texts[-1], 0)
    ax.set_aspect("equal")
    if not style.pie_labels_outside:
        # A figure legend at the right edge; render_png keeps the axes clear of it.
        ax.figure.legend(wedges, data.categories, loc="center right", frameon=style.legend_frame)


def draw(axes: tuple, data: ChartData, style: Style) -> None:
    """Draw ``data`` onto freshly reset ``axes`` (inside the chart's rc_context).

    ``axes`` is (ax,) or, for composite charts, (ax, twin_ax) from synth.charts.pool.
    """
    ax = axes[0]
    kind = data.kind
    show_title = style.show_title or kind in PIE_KINDS or (len(data.series) == 1 and not data.y_label)
    if kind in PIE_KINDS:
        _draw_pie(ax, data, style)
    elif kind in ("bar", "stacked_bar", "hbar"):
        horizontal = kind == "hbar"
        _draw_bars(ax, data, style, list(range(len(data.series))), kind == "stacked_bar", horizontal)
        _category_axis(ax, data, style, horizontal)
        _value_axis(ax, data, 0, horizontal)
        ax.margins(**({"x": 0.12} if horizontal else {"y": 0.12}))
    elif kind in ("line", "scatter"):
        for s in range(len(data.series)):
            _draw_points(ax, data, style, s, kind == "line", style.value_labels)
        _category_axis(ax, data, style)
        _value_axis(ax, data, 0)
        ax.margins(x=0.06, y=0.15)
    elif kind == "area":
        _draw_area(ax, data, style)
    elif kind == "composite":
        _draw_composite(ax, axes[1], data, style)
    else:
        raise ValueError(f"unknown chart kind {kind!r}")

    if kind not in PIE_KINDS:
        horizontal = kind == "hbar"
        (ax.set_ylabel if horizontal else ax.set_xlabel)(data.x_label)
        (ax.set_xlabel if horizontal else ax.set_ylabel)(data.y_label)
        if len(data.series) > 1 and kind != "composite":
            _legend(ax, style)
    if show_title:
        ax.set_title(data.title)


def _draw_area(ax, data: ChartData, style: Style) -> None:
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
                _tag_values([ax.annotate(data.cell(s, i), (pos[i], v), textcoords="offset points", xytext=(0, 5),
                                         ha="center", va="bottom", fontsize=style.font_size * 0.8, color=colors[s])
                             for i, v in enumerate(vals)], s)
    _category_axis(ax, data, style)
    _value_axis(ax, data, 0)
    ax.set_xlim(pos[0] - 0.15, pos[-1] + 0.15)
    ax.set_ylim(bottom=0)
    ax.margins(y=0.12)


def _draw_composite(ax, ax2, data: ChartData, style: Style) -> None:
    bar_series = [s for s in range(len(data.series)) if s not in data.secondary]
    _draw_bars(ax, data, style, bar_series, False, False)
    _category_axis(ax, data, style)
    _value_axis(ax, data, bar_series[0])
    ax.margins(y=0.15)
    ax2.grid(False)
    for s in data.secondary:
        _draw_points(ax2, data, style, s, True, style.value_labels)
    _value_axis(ax2, data, data.secondary[0])
    ax2.set_ylabel(data.y2_label)
    ax2.margins(y=0.15)
    for side in ("top", "left", "bottom"):
        ax2.spines[side].set_visible(False)
    ax2.spines["right"].set_visible(style.spines != "none")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    place = style.legend_place if style.legend_place in ("above",) else "upper left"
    style_for_legend = style if place == "above" else Style(**{**style.__dict__, "legend_place": "upper left"})
    _legend(ax2, style_for_legend, h1 + h2, l1 + l2)


def render_png(data: ChartData, style: Style, width_px: int, height_px: int, dpi: float,
               compress_level: int) -> tuple[bytes, int, int]:
    """Draw the chart at about ``width_px`` x ``height_px`` and return (PNG bytes, width, height)."""
    import matplotlib

    if not 0 <= compress_level <= 9:
        raise ValueError(f"png compress_level must be 0..9, got {compress_level}")
    with matplotlib.rc_context(_changed(_rc(style, data.lang))), memoised_text_layout():
        fig, canvas, axes = charts_pool.take(twin=data.kind == "composite")
        fig.set_dpi(dpi)
        # A quarter pixel of slack: Agg truncates the float size to whole pixels.
        fig.set_size_inches((width_px + 0.25) / dpi, (height_px + 0.25) / dpi, forward=False)
        fig.set_facecolor(style.theme.figure)
        draw(axes, data, style)
        place_axes(fig, canvas, axes, pad_px=0.08 * style.font_size * dpi / 72 + 3)
        canvas.draw()
        for inspect in INSPECTORS:
            inspect(fig, canvas.get_renderer(), axes)
        rgba = np.asarray(canvas.buffer_rgba())
    return encode_rgb(rgba, compress_level), rgba.shape[1], rgba.shape[0]
