"""Family "chart": random matplotlib charts whose target is their data as an HTML table.

``generate(config, rng)`` draws the data (synth.charts.data), a look
(synth.charts.style), renders with the Agg canvas (synth.charts.render) and returns a
Sample whose ``truth`` holds the exact series. ``figure_png`` serves the OCR 1.0 page
generator a chart of a given size for its figure regions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from synth.charts.data import KINDS, PIE_KINDS, ChartData, random_data
from synth.charts.render import render_png
from synth.charts.style import Style, random_style
from synth.config_checks import bad_probability
from synth.sample import Sample


def _default_kinds() -> dict[str, float]:
    return {k: 1.0 for k in KINDS}


@dataclass
class Config:
    """Recipe options of the chart family.

    kinds: relative weight of each chart kind (line, bar, stacked_bar, hbar, pie, donut,
      scatter, area, composite); kinds left out are never drawn.
    zh_prob: fraction of charts with Chinese text (titles, labels, units such as 万).
    min_categories, max_categories: number of x categories or pie slices (pies stop at 7).
    max_series: most data series per chart (composite charts: bars plus one line).
    min_long_side, max_long_side: the image's long side in pixels.
    min_inches, max_inches: the figure's long side in inches; with the pixel size it fixes
      the DPI, so small values give large text and large values give fine print.
    value_label_prob: fraction of charts that print their values on bars, points, slices.
    title_prob: fraction of charts with a visible title (pies always have one).
    negative_prob: fraction of line/bar charts whose values dip below zero.
    dark_theme: allow the dark background theme.
    png_compress_level: zlib level of the PNG encoder, 0..9 (fixed so bytes are stable).
    """

    kinds: dict[str, float] = field(default_factory=_default_kinds)
    zh_prob: float = 0.3
    min_categories: int = 3
    max_categories: int = 10
    max_series: int = 4
    min_long_side: int = 560
    max_long_side: int = 1000
    min_inches: float = 5.0
    max_inches: float = 8.0
    value_label_prob: float = 0.5
    title_prob: float = 0.85
    negative_prob: float = 0.1
    dark_theme: bool = True
    png_compress_level: int = 1


def validate(config: Config) -> None:
    """Raise ValueError naming the first field whose value cannot work."""
    unknown = sorted(set(config.kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"chart.kinds has unknown kinds {unknown}; valid: {', '.join(KINDS)}")
    if any(w < 0 for w in config.kinds.values()) or sum(config.kinds.values()) <= 0:
        raise ValueError(f"chart.kinds weights must be >= 0 with a positive sum, got {config.kinds}")
    name = bad_probability(config)
    if name:
        raise ValueError(f"chart.{name} must be in [0, 1], got {getattr(config, name)}")
    if not 2 <= config.min_categories <= config.max_categories:
        raise ValueError(f"chart.min_categories/max_categories must satisfy 2 <= min <= max, "
                         f"got {config.min_categories}, {config.max_categories}")
    if config.max_series < 1:
        raise ValueError(f"chart.max_series must be >= 1, got {config.max_series}")
    if not 200 <= config.min_long_side <= config.max_long_side:
        raise ValueError(f"chart.min_long_side/max_long_side must satisfy 200 <= min <= max, "
                         f"got {config.min_long_side}, {config.max_long_side}")
    if not 1.0 <= config.min_inches <= config.max_inches:
        raise ValueError(f"chart.min_inches/max_inches must satisfy 1 <= min <= max, "
                         f"got {config.min_inches}, {config.max_inches}")
    if not 0 <= config.png_compress_level <= 9:
        raise ValueError(f"chart.png_compress_level must be 0..9, got {config.png_compress_level}")


def _as_config(config: Config | dict | None) -> Config:
    if config is None:
        return Config()
    if isinstance(config, Config):
        return config
    names = {f.name for f in fields(Config)}
    bad = sorted(set(config) - names)
    if bad:
        raise ValueError(f"unknown chart config keys {bad}; valid: {', '.join(sorted(names))}")
    return Config(**config)


def _pick_kind(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = [k for k in KINDS if weights.get(k, 0.0) > 0]
    p = np.array([weights[k] for k in names], dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _truth(data: ChartData, style: Style, dpi: float, printed: list[tuple[int, int]]) -> dict[str, Any]:
    truth = data.truth()
    # What the picture shows, so evaluation can tell printed values from estimated ones:
    # a value label that could not be placed legibly is not drawn (synth.charts.declutter).
    shown = set(printed)
    truth["value_labels"] = bool(shown)
    truth["printed"] = [[(s, c) in shown for c in range(len(data.categories))] for s in range(len(data.series))]
    truth["title_shown"] = style.show_title or data.kind in PIE_KINDS or (len(data.series) == 1 and not data.y_label)
    truth["dpi"] = round(dpi, 3)
    return truth


def _draw(rng: np.random.Generator, config: Config, lang: str, long_side: int, aspect: float,
          dark_theme: bool) -> tuple[bytes, int, int, dict[str, Any]]:
    kind = _pick_kind(rng, config.kinds)
    data = random_data(rng, kind, lang, config.min_categories, config.max_categories, config.max_series,
                       config.negative_prob)
    style = random_style(rng, kind, len(data.series), len(data.categories), config.value_label_prob,
                         config.title_prob, dark_theme)
    dpi = long_side / float(rng.uniform(config.min_inches, config.max_inches))
    if aspect <= 1.0:
        w, h = long_side, max(1, int(round(long_side * aspect)))
    else:
        w, h = max(1, int(round(long_side / aspect))), long_side
    png, width, height, dpi, printed = render_png(data, style, w, h, dpi, config.png_compress_level)
    return png, width, height, _truth(data, style, dpi, printed)


def generate(config: Config | dict | None, rng: np.random.Generator) -> Sample:
    """One random chart and its exact data (a pure function of config and rng)."""
    cfg = _as_config(config)
    validate(cfg)
    lang = "zh" if rng.random() < cfg.zh_prob else "en"
    long_side = int(rng.integers(cfg.min_long_side, cfg.max_long_side + 1))
    # Mostly landscape (height/width < 1); a few portrait charts.
    aspect = float(rng.uniform(0.55, 0.85)) if rng.random() < 0.85 else float(rng.uniform(1.1, 1.35))
    png, width, height, truth = _draw(rng, cfg, lang, long_side, aspect, cfg.dark_theme)
    return Sample(family="chart", image=png, image_format="png", width=width, height=height,
                  text=truth["title"] if truth["title_shown"] else "", truth=truth, lang=lang)


def figure_png(rng: np.random.Generator, width_px: int, height_px: int, lang: str) -> tuple[bytes, dict]:
    """A light-themed chart PNG of about ``width_px`` x ``height_px`` and its truth dict.

    For figure regions of document pages; the truth has the same keys as a chart
    Sample's (kind, title, categories, series, values, units, decimals ...).
    """
    if lang not in ("en", "zh"):
        raise ValueError(f"figure_png lang must be 'en' or 'zh', got {lang!r}")
    if width_px < 100 or height_px < 100:
        raise ValueError(f"figure_png size must be at least 100x100 px, got {width_px}x{height_px}")
    cfg = Config()
    long_side = max(width_px, height_px)
    # Smaller figures get fewer inches, so text stays legible once the page is scaled.
    cfg.min_inches = min(cfg.min_inches, max(2.5, long_side / 110))
    cfg.max_inches = max(cfg.min_inches, min(cfg.max_inches, long_side / 70))
    png, _, _, truth = _draw(rng, cfg, lang, long_side, height_px / width_px, dark_theme=False)
    return png, truth
