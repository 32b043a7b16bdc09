"""The look of a chart: fonts, colours, grid, spines, sizes, drawn from the caller's rng.

A Style holds only plain values, so the renderer can apply it explicitly to a reused
Figure and nothing leaks from one chart to the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synth.charts.fonts import LATIN_FAMILIES

# Qualitative palettes (matplotlib's named ones, spelled out so no colormap state is read).
PALETTES: tuple[tuple[str, ...], ...] = (
    ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"),
    ("#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f", "#e5c494", "#b3b3b3"),
    ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"),
    ("#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf", "#999999"),
    ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"),
    ("#003f5c", "#2f4b7c", "#665191", "#a05195", "#d45087", "#f95d6a", "#ff7c43", "#ffa600"),
    ("#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#8ab17d", "#b5838d", "#6d597a"),
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
# "best" lets matplotlib keep the legend off the data; the others sit outside the axes.
LEGEND_PLACES = ("best", "best", "above", "right")


@dataclass(frozen=True)
class Theme:
    """Background and ink colours of one theme."""

    figure: str
    axes: str
    ink: str
    grid: str


THEMES: tuple[Theme, ...] = (
    Theme("#ffffff", "#ffffff", "#000000", "#cccccc"),
    Theme("#ffffff", "#ffffff", "#333333", "#dddddd"),
    Theme("#ffffff", "#ebebeb", "#333333", "#ffffff"),  # ggplot-like
    Theme("#f7f7f2", "#f7f7f2", "#222222", "#d0d0c8"),
    Theme("#1e1e24", "#1e1e24", "#e8e8e8", "#44444c"),  # dark
)
_THEME_WEIGHTS = np.array([0.35, 0.25, 0.2, 0.1, 0.1])
_FONT_WEIGHTS = np.array([0.5, 0.2, 0.2, 0.1])


@dataclass(frozen=True)
class Style:
    """All visual choices of one chart (sizes in points unless stated)."""

    font: str
    cjk_first: bool
    font_size: float
    theme: Theme
    colors: tuple[str, ...]
    grid: str            # "", "y", "x", "both"
    grid_style: str
    spines: str          # "all", "lb" (left+bottom), "none", "l"
    bar_width: float     # fraction of a category slot
    bar_edge: str        # "" for none
    line_width: float
    markers: tuple[str, ...]  # "" means no marker
    legend_place: str
    legend_frame: bool
    title_loc: str
    title_bold: bool
    show_title: bool
    value_labels: bool
    x_rotation: int
    pie_labels_outside: bool  # slice names beside the slices instead of a legend
    pie_start: float
    donut_width: float
    alpha: float
    area_stacked: bool


def labels_fit(kind: str, n_series: int, n_categories: int) -> bool:
    """Whether printed values of a chart this crowded would stay legible (not overlap)."""
    if kind in ("pie", "donut"):
        return True
    if kind in ("line", "scatter", "area"):
        return n_series <= 2 and n_categories <= 10
    if kind == "stacked_bar":
        return n_categories <= 10
    return n_series * n_categories <= (15 if kind == "composite" else 20)


def _weighted(rng: np.random.Generator, items, weights: np.ndarray):
    return items[int(rng.choice(len(items), p=weights / weights.sum()))]


def random_style(rng: np.random.Generator, kind: str, n_series: int, n_categories: int, value_label_prob: float,
                 title_prob: float, dark_theme: bool = True) -> Style:
    """Draw a Style for a chart of ``kind`` with ``n_series`` series over ``n_categories``."""
    weights = _THEME_WEIGHTS.copy()
    if not dark_theme:
        weights[-1] = 0.0
    theme = _weighted(rng, THEMES, weights)
    palette = list(PALETTES[int(rng.integers(len(PALETTES)))])
    offset = int(rng.integers(len(palette)))
    colors = tuple(palette[(offset + i) % len(palette)] for i in range(len(palette)))
    use_markers = rng.random() < 0.6
    marker_order = rng.permutation(len(MARKERS))
    area_stacked = bool(rng.random() < 0.5)
    # Stacked areas are drawn without value labels (a band's value is not at its top).
    fit = labels_fit(kind, n_series, n_categories) and not (kind == "area" and area_stacked and n_series > 1)
    markers = tuple(MARKERS[int(marker_order[i % len(MARKERS)])] if use_markers else "" for i in range(max(1, n_series)))
    return Style(
        font=str(_weighted(rng, LATIN_FAMILIES, _FONT_WEIGHTS)),
        cjk_first=bool(rng.random() < 0.7),
        font_size=float(rng.choice([9.0, 10.0, 11.0, 12.0, 13.0])),
        theme=theme,
        colors=colors,
        grid=str(rng.choice(["", "y", "y", "x", "both"])),
        grid_style=str(rng.choice(["-", "--", ":"])),
        spines=str(rng.choice(["all", "lb", "lb", "none", "l"])),
        bar_width=float(rng.uniform(0.55, 0.85)),
        bar_edge=str(rng.choice(["", "", "#000000", "#ffffff"])),
        line_width=float(rng.uniform(1.2, 3.0)),
        markers=markers,
        legend_place=str(rng.choice(LEGEND_PLACES)),
        legend_frame=bool(rng.random() < 0.6),
        title_loc=str(rng.choice(["center", "center", "left"])),
        title_bold=bool(rng.random() < 0.5),
        show_title=bool(rng.random() < title_prob),
        value_labels=bool(rng.random() < value_label_prob) and fit,
        x_rotation=int(rng.choice([0, 0, 30, 45])),
        pie_labels_outside=bool(rng.random() < 0.5),
        pie_start=float(rng.choice([0.0, 90.0, 45.0, 180.0])),
        donut_width=float(rng.uniform(0.3, 0.5)),
        alpha=float(rng.uniform(0.35, 0.6)),
        area_stacked=area_stacked,
    )
