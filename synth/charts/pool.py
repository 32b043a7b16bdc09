"""Per-process Figure/Axes pool for the chart renderer, reset to a fresh state per chart.

Building an Axes and its ticks is a third of a small chart's cost: every Tick is five
artists read from rcParams. The pool keeps one Figure per structure (a single Axes, or
an Axes with a twin y axis) and one store of spare Ticks per axis. ``take`` clears the
Axes (``cla``) and then re-applies, from the active rcParams, everything a brand-new
Axes gets in ``__init__`` but ``cla`` leaves alone (face colour, frame, aspect, spine
colours, tick sides, twin settings), so a pooled chart is pixel-identical to one drawn
on a new Figure; tests/test_charts_pool.py checks that byte for byte.

Spare Ticks: after ``cla`` an axis creates tick 0 new (it carries the chart's style);
further ticks would be new objects whose properties matplotlib then copies from tick 0
(``Axis._copy_tick_props``). The pool hands back old Tick objects instead and resets the
few properties that copy does not cover, which is the same end state without building
five artists per tick.
"""

from __future__ import annotations

import functools

import matplotlib as mpl
import matplotlib.lines as mlines
from matplotlib.markers import MarkerStyle

_POOL: dict[str, tuple] = {}
# Set False (tests) to draw every chart on a brand-new Figure instead.
ENABLED = True


def _rc_tick_sides(which: str) -> dict:
    """The tick sides a new Axes takes from rcParams, for ``which`` = "major" or "minor"."""
    rc = mpl.rcParams
    return dict(
        top=rc["xtick.top"] and rc[f"xtick.{which}.top"],
        bottom=rc["xtick.bottom"] and rc[f"xtick.{which}.bottom"],
        labeltop=rc["xtick.labeltop"] and rc[f"xtick.{which}.top"],
        labelbottom=rc["xtick.labelbottom"] and rc[f"xtick.{which}.bottom"],
        left=rc["ytick.left"] and rc[f"ytick.{which}.left"],
        right=rc["ytick.right"] and rc[f"ytick.{which}.right"],
        labelleft=rc["ytick.labelleft"] and rc[f"ytick.{which}.left"],
        labelright=rc["ytick.labelright"] and rc[f"ytick.{which}.right"],
    )


def _install_tick_store(axis) -> None:
    """Make ``axis`` reuse its old major Ticks (beyond tick 0) instead of building new ones."""
    spare: list = []
    spare_minor: list = []
    build = axis._get_tick

    def get_tick(major: bool):
        # Tick 0 is built new (majorTicks is still empty then): it is the style source.
        if not major and spare_minor:
            # Charts have no minor ticks (NullLocator): the one matplotlib keeps per
            # axis is never drawn, so an old one serves.
            return spare_minor.pop()
        if major and spare and len(axis.majorTicks) > 0:
            tick = spare.pop()
            # Not covered by _copy_tick_props (Text.update_from skips them).
            for label in (tick.label1, tick.label2):
                label.set_rotation_mode("default")
                label.set_text("")
            return tick
        return build(major)

    def stash() -> None:
        if "majorTicks" in axis.__dict__:
            spare.extend(reversed(axis.majorTicks[1:]))
        if "minorTicks" in axis.__dict__ and not spare_minor:
            spare_minor.extend(axis.minorTicks[:1])

    copy_props = axis._copy_tick_props

    def copy_tick_props(src, dest) -> None:
        # Line2D.update_from deep-copies the source's MarkerStyle for each of a tick's
        # three lines; sharing it is equivalent (a Line2D replaces, never mutates, its
        # MarkerStyle) and skips most of the copy's cost.
        mlines.MarkerStyle = _share_marker
        try:
            copy_props(src, dest)
        finally:
            mlines.MarkerStyle = MarkerStyle

    axis._get_tick = get_tick
    axis._copy_tick_props = copy_tick_props
    axis._chart_stash_ticks = stash


def _share_marker(marker=None, *args, **kwargs):
    if isinstance(marker, MarkerStyle) and not args and not kwargs:
        return marker
    return MarkerStyle(marker, *args, **kwargs)


def _drop_ticks(axis) -> None:
    axis.__dict__.pop("majorTicks", None)
    axis.__dict__.pop("minorTicks", None)


def _reset(ax) -> None:
    """cla() plus what a new Axes gets in __init__ from rcParams and cla() does not redo."""
    rc = mpl.rcParams
    for axis in (ax.xaxis, ax.yaxis):
        # cla() keeps tick parameters set by set_tick_params; the layout may set the pad.
        axis._major_tick_kw.pop("pad", None)
        axis._chart_stash_ticks()
        # cla() resets the ticks once per spine, building a new tick 0 each time; only
        # the last reset counts, so skip them (cla() still sets the
        # clip path, which builds the ticks once from the reset tick parameters).
        axis.reset_ticks = functools.partial(_drop_ticks, axis)
    ax.cla()
    ax.set_facecolor(rc["axes.facecolor"])
    ax.set_frame_on(True)
    ax.set_axisbelow(rc["axes.axisbelow"])
    ax.set_aspect("auto")
    ax.set_anchor("C")
    for side, spine in ax.spines.items():
        spine.set_edgecolor(rc["axes.edgecolor"])
        spine.set_linewidth(rc["axes.linewidth"])
        spine.set_visible(rc[f"axes.spines.{side}"])
    ax.tick_params(which="minor", **_rc_tick_sides("minor"))
    ax.tick_params(which="major", **_rc_tick_sides("major"))
    for axis in (ax.xaxis, ax.yaxis):
        del axis.reset_ticks


def _new(twin: bool) -> tuple:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    axes = (ax, ax.twinx()) if twin else (ax,)
    return fig, canvas, axes


def take(twin: bool) -> tuple:
    """(figure, canvas, axes) ready for one chart under the active rcParams.

    ``axes`` is (ax,) or (ax, twin_ax). Call inside the chart's ``rc_context``: the
    reset reads the chart's style from rcParams like a new Figure would.
    """
    if not ENABLED:
        return _new(twin)
    key = "twin" if twin else "single"
    if key not in _POOL:
        fig, canvas, axes = _new(twin)
        for ax in axes:
            for axis in (ax.xaxis, ax.yaxis):
                _install_tick_store(axis)
        _POOL[key] = (fig, canvas, axes)
        return fig, canvas, axes
    fig, canvas, axes = _POOL[key]
    for legend in list(fig.legends):
        legend.remove()
    fig.set_facecolor(mpl.rcParams["figure.facecolor"])
    for ax in axes:
        _reset(ax)
    if twin:
        ax, ax2 = axes
        ax.set_adjustable("datalim")
        ax2.set_adjustable("datalim")
        ax2.yaxis.tick_right()
        ax2.yaxis.set_label_position("right")
        ax2.yaxis.set_offset_position("right")
        ax2.set_autoscalex_on(ax.get_autoscalex_on())
        ax.yaxis.tick_left()
        ax2.xaxis.set_visible(False)
        ax2.patch.set_visible(False)
    return fig, canvas, axes
