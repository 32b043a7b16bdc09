"""The data behind a chart: categories, series, values, units, and how numbers print.

Rounding rule (the one the whole family follows): every value is generated as an integer
count of ``10**-decimals`` of its series, so a value *is* its printed form; the chart's
value labels and the target table print it with exactly ``decimals`` decimals, the
unit's prefix and suffix when the unit is shown on the scale, and a thousands separator
when ``thousands_sep`` is set. The table is therefore exact, never re-rounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synth import text_sources

KINDS: tuple[str, ...] = (
    "line", "bar", "stacked_bar", "hbar", "pie", "donut", "scatter", "area", "composite",
)
PIE_KINDS = ("pie", "donut")

# unit key -> (prefix, suffix) printed around a number when the unit sits on the scale.
UNIT_AFFIXES: dict[str, tuple[str, str]] = {
    "": ("", ""),
    "%": ("", "%"),
    "$": ("$", ""),
    "k": ("", "k"),
    "$k": ("$", "k"),
    "M": ("", "M"),
    "€": ("€", ""),
    "¥": ("¥", ""),
    "万": ("", "万"),
    "亿": ("", "亿"),
}
UNITS_EN = ("", "%", "$", "k", "$k", "M", "€")
UNITS_ZH = ("", "%", "¥", "万", "亿")

_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_QUARTERS_ZH = ("第一季度", "第二季度", "第三季度", "第四季度")


@dataclass
class ChartData:
    """Everything a chart states; ``values[s][c]`` is series s at category c.

    units[s] is a key of UNIT_AFFIXES; unit_on_scale[s] says whether that unit is
    printed next to the numbers (ticks, value labels, table cells) or only in the axis
    label. ``secondary`` lists series drawn on the right-hand axis (composite charts).
    """

    kind: str
    lang: str
    title: str
    categories: list[str]
    series: list[str]
    values: list[list[float]]
    units: list[str]
    unit_on_scale: list[bool]
    decimals: list[int]
    thousands_sep: bool = False
    x_label: str = ""
    y_label: str = ""
    y2_label: str = ""
    secondary: list[int] = field(default_factory=list)

    def affixes(self, s: int) -> tuple[str, str]:
        """The prefix and suffix printed around series ``s``'s numbers."""
        return UNIT_AFFIXES[self.units[s]] if self.unit_on_scale[s] else ("", "")

    def cell(self, s: int, c: int) -> str:
        """Series s at category c exactly as the chart and the table print it."""
        pre, suf = self.affixes(s)
        return format_value(self.values[s][c], self.decimals[s], pre, suf, self.thousands_sep)

    def truth(self) -> dict[str, Any]:
        """The JSON-serialisable structured truth stored with the sample."""
        return {
            "kind": self.kind,
            "lang": self.lang,
            "title": self.title,
            "categories": list(self.categories),
            "series": list(self.series),
            "values": [list(v) for v in self.values],
            "units": list(self.units),
            "unit_on_scale": list(self.unit_on_scale),
            "decimals": list(self.decimals),
            "thousands_sep": self.thousands_sep,
            "x_label": self.x_label,
            "y_label": self.y_label,
            "y2_label": self.y2_label,
            "secondary": list(self.secondary),
        }


def format_value(value: float, decimals: int, prefix: str = "", suffix: str = "", thousands_sep: bool = False) -> str:
    """Print a number the family's one way: fixed decimals, ASCII minus, affixes kept."""
    if decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    spec = f",.{decimals}f" if thousands_sep else f".{decimals}f"
    body = format(abs(value), spec)
    # "-0.0" must never be printed: a value that rounds to zero is plain zero.
    sign = "-" if value < 0 and float(body.replace(",", "")) != 0 else ""
    return f"{sign}{prefix}{body}{suffix}"


def _unique_words(rng: np.random.Generator, lang: str, n: int, capitalize: bool = True) -> list[str]:
    """``n`` distinct words (table rows and columns are keyed by them)."""
    pool = text_sources.chinese_words() if lang == "zh" else text_sources.english_words()
    idx = rng.choice(len(pool), size=n, replace=False)
    out = [pool[int(i)] for i in idx]
    return [w.capitalize() for w in out] if capitalize and lang == "en" else out


def _categories(rng: np.random.Generator, lang: str, n: int, pie: bool) -> tuple[list[str], str]:
    """Category labels and a matching x-axis label."""
    style = "words" if pie else ("years", "months", "quarters", "words")[int(rng.integers(4))]
    zh = lang == "zh"
    if style == "years":
        start = int(rng.integers(1990, 2025 - n + 1))
        suffix = "年" if zh and rng.random() < 0.5 else ""
        return [f"{start + i}{suffix}" for i in range(n)], ("年份" if zh else "Year")
    if style == "months":
        n = min(n, 12)
        start = int(rng.integers(0, 12 - n + 1))
        labels = [f"{m + 1}月" for m in range(start, start + n)] if zh else list(_MONTHS_EN[start:start + n])
        return labels, ("月份" if zh else "Month")
    if style == "quarters":
        year = int(rng.integers(2000, 2025))
        start = int(rng.integers(0, 4))
        labels = []
        for i in range(min(n, 8)):
            q, y = (start + i) % 4, year + (start + i) // 4
            labels.append(f"{y}{_QUARTERS_ZH[q]}" if zh else f"Q{q + 1} {y}")
        return labels, ("季度" if zh else "Quarter")
    return _unique_words(rng, lang, n), text_sources.title(rng, lang, 1)


def _magnitude(rng: np.random.Generator, unit: str) -> tuple[float, int]:
    """A value scale and the decimals that suit it (bigger numbers, fewer decimals)."""
    if unit == "%":
        return 100.0, int(rng.choice([0, 1, 1, 2]))
    scale = float(10 ** int(rng.integers(0, 5)))
    decimals = {1.0: 2, 10.0: int(rng.integers(1, 3)), 100.0: int(rng.integers(0, 2))}.get(scale, 0)
    return scale, decimals


def _series_values(rng: np.random.Generator, kind: str, n: int, scale: float, decimals: int,
                   allow_negative: bool) -> list[float]:
    """One series: a random walk for trends, independent draws for bars."""
    if kind in ("line", "area", "composite_line"):
        steps = rng.normal(0.0, 0.12, size=n)
        raw = np.clip(0.5 + np.cumsum(steps) - steps[0] + rng.uniform(-0.2, 0.2), 0.05, 1.0)
    else:
        raw = rng.uniform(0.1, 1.0, size=n)
    raw = raw * scale
    if allow_negative:
        raw = raw - rng.uniform(0.2, 0.6) * scale
    q = 10 ** decimals
    # Integer counts of 10**-decimals: the stored float is the nearest one to the decimal.
    ints = np.rint(raw * q).astype(np.int64)
    if not allow_negative:
        ints = np.maximum(ints, 1)
    return [float(int(i)) / q for i in ints]


def _pie_shares(rng: np.random.Generator, n: int, decimals: int) -> list[float]:
    """Percent shares that sum to exactly 100 at ``decimals`` (largest remainder)."""
    total = 100 * 10 ** decimals
    w = rng.dirichlet(np.full(n, 2.0))
    w = 0.03 + w * (1 - 0.03 * n)  # no slice under 3%: its label must stay legible
    exact = w * total
    ints = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - ints), kind="stable")
    ints[order[: total - int(ints.sum())]] += 1
    return [float(int(i)) / 10 ** decimals for i in ints]


def random_data(rng: np.random.Generator, kind: str, lang: str, min_categories: int, max_categories: int,
                max_series: int, negative_prob: float) -> ChartData:
    """Draw the data of one chart of ``kind`` in ``lang``."""
    if kind not in KINDS:
        raise ValueError(f"unknown chart kind {kind!r}; valid: {', '.join(KINDS)}")
    pie = kind in PIE_KINDS
    hi = min(max_categories, 7) if pie else max_categories
    n_cat = int(rng.integers(min(min_categories, hi), hi + 1))
    categories, x_label = _categories(rng, lang, n_cat, pie)
    n_cat = len(categories)
    title = text_sources.title(rng, lang, int(rng.integers(2, 5)))
    units_pool = UNITS_ZH if lang == "zh" else UNITS_EN
    thousands_sep = bool(rng.random() < 0.5)

    if pie:
        decimals = int(rng.integers(0, 2))
        # The series name is the title, the only place a pie prints it (docs/charts.md).
        return ChartData(kind, lang, title, categories, [title], [_pie_shares(rng, n_cat, decimals)],
                         ["%"], [True], [decimals], False)

    n_bar_series = 1 if kind == "composite" else int(rng.integers(1, max_series + 1))
    if kind == "composite":
        n_bar_series = int(rng.integers(1, min(2, max_series) + 1))
    n_series = n_bar_series + (1 if kind == "composite" else 0)
    names = _unique_words(rng, lang, n_series)
    unit = str(units_pool[int(rng.integers(len(units_pool)))])
    on_scale = bool(unit != "" and rng.random() < 0.7)
    scale, decimals = _magnitude(rng, unit)
    negative = kind in ("line", "bar", "hbar") and rng.random() < negative_prob
    value_kind = "line" if kind in ("line", "area") else "bar"
    values = [_series_values(rng, value_kind, n_cat, scale, decimals, negative) for _ in range(n_bar_series)]
    units, scales, decs, secondary = [unit] * n_bar_series, [on_scale] * n_bar_series, [decimals] * n_bar_series, []
    y2_label = ""
    if kind == "composite":
        # The line is a different quantity (often a rate) on the right-hand axis.
        unit2 = "%" if rng.random() < 0.6 else str(units_pool[int(rng.integers(len(units_pool)))])
        scale2, dec2 = _magnitude(rng, unit2)
        values.append(_series_values(rng, "composite_line", n_cat, scale2, dec2, False))
        units.append(unit2)
        scales.append(bool(unit2 != "" and rng.random() < 0.7))
        decs.append(dec2)
        secondary = [n_series - 1]
        y2_label = _axis_label(rng, lang, names[-1], unit2, scales[-1])
    y_label = _axis_label(rng, lang, names[0] if n_bar_series == 1 else "", unit, on_scale)
    return ChartData(kind, lang, title, categories, names, values, units, scales, decs, thousands_sep,
                     x_label, y_label, y2_label, secondary)


def _axis_label(rng: np.random.Generator, lang: str, name: str, unit: str, on_scale: bool) -> str:
    """A value-axis label; it carries the unit when the scale does not."""
    base = name or text_sources.title(rng, lang, 1)
    if unit and not on_scale:
        return f"{base}（{unit}）" if lang == "zh" else f"{base} ({unit})"
    return base
