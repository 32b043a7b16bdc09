"""Chart targets: the chart's data as a plain HTML table, its checks, overlay and metric.

Target (task ``chart.table``, prompt ``Parse the figure.``)::

    <table><tr><td></td><td>Sales</td><td>Profit</td></tr><tr><td>2019</td><td>12.5</td><td>3.1</td></tr></table>

First row: an empty corner cell, then the series (legend) names; then one row per
category (x label or pie slice) with each series' value printed exactly as the chart
prints it (see synth.charts.data for the rounding rule: values are generated at the
chart's precision, so cells are exact). No thead/th, no attributes.

Metric (DESIGN.md §3): SCRM-style triples (row, column, value) matched one to one at
three tolerances: strict (0 edits on the row and column names, 0% on the value),
slight (2 edits, 5%) and high (5 edits, 10%).
"""

from __future__ import annotations

import html
import re
from typing import Any

from annotate import prompts
from annotate.matching import edit_distance
from synth.charts.data import UNIT_AFFIXES, format_value
from synth.rows import row_image, row_truth
from synth.sample import Record, Sample

# (max edits on row and column names, max relative value error)
LEVELS: dict[str, tuple[int, float]] = {"strict": (0, 0.0), "slight": (2, 0.05), "high": (5, 0.10)}
# IoU thresholds of the per-table AP (0.50, 0.55, ..., 0.95).
AP_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))

_ROW = re.compile(r"<tr\b[^>]*>(.*?)</tr\s*>", re.S | re.I)
_CELL = re.compile(r"<t[dh]\b[^>]*>(.*?)</t[dh]\s*>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")
_WS = re.compile(r"\s+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_TRUTH_KEYS = ("kind", "categories", "series", "values", "units", "unit_on_scale", "decimals")


# ---- the target -------------------------------------------------------------------------

def format_table(categories: list[str], series_names: list[str], values: list[list[Any]],
                 decimals: list[int] | None = None, units: list[str] | None = None,
                 unit_on_scale: list[bool] | None = None, thousands_sep: bool = False) -> str:
    """The HTML table of a chart; ``values[s][c]`` is series s at category c.

    A value that is already a string is used as printed; a number is printed with its
    series' ``decimals`` (default 0) and, when ``unit_on_scale[s]``, its unit's affixes.
    """
    n_s, n_c = len(series_names), len(categories)
    if len(values) != n_s or any(len(v) != n_c for v in values):
        raise ValueError(f"values must be {n_s} series x {n_c} categories, got "
                         f"{len(values)} x {[len(v) for v in values]}")
    decimals = decimals if decimals is not None else [0] * n_s
    units = units if units is not None else [""] * n_s
    on_scale = unit_on_scale if unit_on_scale is not None else [True] * n_s

    def cell(s: int, c: int) -> str:
        v = values[s][c]
        if isinstance(v, str):
            return v
        pre, suf = UNIT_AFFIXES[units[s]] if on_scale[s] else ("", "")
        return format_value(float(v), int(decimals[s]), pre, suf, thousands_sep)

    def tr(cells: list[str]) -> str:
        return "<tr>" + "".join(f"<td>{html.escape(x, quote=False)}</td>" for x in cells) + "</tr>"

    rows = [tr([""] + list(series_names))]
    rows += [tr([categories[c]] + [cell(s, c) for s in range(n_s)]) for c in range(n_c)]
    return "<table>" + "".join(rows) + "</table>"


def table_from_truth(truth: dict[str, Any]) -> str:
    """The target table of a chart's structured truth."""
    return format_table(truth["categories"], truth["series"], truth["values"], truth["decimals"],
                        truth["units"], truth["unit_on_scale"], bool(truth.get("thousands_sep", False)))


def parse_table(text: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of an HTML table; whitespace, attributes and th cells are tolerated.

    Cell text is unescaped, stripped of inner tags and has its whitespace collapsed.
    A text with no ``<tr>`` gives ``([], [])``.
    """
    out: list[list[str]] = []
    for row in _ROW.findall(text or ""):
        cells = [_WS.sub(" ", html.unescape(_TAG.sub("", c))).strip() for c in _CELL.findall(row)]
        out.append(cells)
    if not out:
        return [], []
    return out[0], out[1:]


def records(sample: Sample) -> list[Record]:
    """The chart's one record: Parse the figure -> its data table."""
    return [Record(prompts.TASK_CHART, prompts.PARSE_FIGURE, table_from_truth(sample.truth))]


# ---- checks -----------------------------------------------------------------------------

def _truth_problems(truth: dict[str, Any]) -> list[str]:
    missing = [k for k in _TRUTH_KEYS if k not in truth]
    if missing:
        return [f"truth lacks keys {missing}"]
    n_s, n_c = len(truth["series"]), len(truth["categories"])
    problems = []
    if len(truth["values"]) != n_s or any(len(v) != n_c for v in truth["values"]):
        problems.append(f"truth values are not {n_s} series x {n_c} categories")
    for key in ("units", "unit_on_scale", "decimals"):
        if len(truth[key]) != n_s:
            problems.append(f"truth {key} has {len(truth[key])} entries for {n_s} series")
    if len(set(truth["categories"])) != n_c:
        problems.append("truth categories are not distinct")
    if len(set(truth["series"])) != n_s:
        problems.append("truth series names are not distinct")
    if problems:
        return problems
    for s, series in enumerate(truth["values"]):
        q = 10 ** int(truth["decimals"][s])
        for c, v in enumerate(series):
            if abs(v * q - round(v * q)) > 1e-6:
                problems.append(f"value {v} of series {s} category {c} has more than {truth['decimals'][s]} decimals")
    if truth["kind"] in ("pie", "donut"):
        q = 10 ** int(truth["decimals"][0])
        if round(sum(truth["values"][0]) * q) != 100 * q:
            problems.append(f"pie shares sum to {sum(truth['values'][0])}, not 100")
    return problems + _unprinted_names(truth) + _printed_problems(truth)


_UNIT_NOTE = re.compile(r"^(.*?)(?: \([^()]*\)|（[^（）]*）)$")


def _unprinted_names(truth: dict[str, Any]) -> list[str]:
    """Series names the image cannot show (docs/charts.md: every table name is printed).

    Several series have a legend; a single series is named by its value-axis label
    (``Revenue ($k)`` names ``Revenue``) or the shown title; a pie's only name is its title.
    """
    series, title = truth["series"], truth.get("title", "")
    if truth["kind"] in ("pie", "donut"):
        if series != [title] or not truth.get("title_shown", True):
            return [f"pie series name {series[0]!r} is not its shown title {title!r}, the only place a pie prints it"]
        return []
    if len(series) != 1:
        return []
    label = truth.get("y_label", "")
    m = _UNIT_NOTE.match(label)
    names = {label, m.group(1) if m else label}
    if series[0] in names or (truth.get("title_shown") and title == series[0]):
        return []
    return [f"series name {series[0]!r} is neither the value-axis label {label!r} nor a shown title"]


def _printed_problems(truth: dict[str, Any]) -> list[str]:
    """``printed`` (which values the image prints) must match the table's shape."""
    printed = truth.get("printed")
    if printed is None:
        return []
    n_s, n_c = len(truth["series"]), len(truth["categories"])
    if len(printed) != n_s or any(len(p) != n_c or not all(isinstance(x, bool) for x in p) for p in printed):
        return [f"truth printed is not {n_s} series x {n_c} categories of true/false"]
    if bool(truth.get("value_labels")) != any(any(p) for p in printed):
        return [f"truth value_labels is {truth.get('value_labels')} but printed marks "
                f"{sum(map(sum, printed))} values as printed"]
    return []


def check(row: dict[str, Any]) -> list[str]:
    """Problems of a stored chart row (empty when sound).

    The target must parse and agree cell by cell with the table the truth implies, so a
    table that disagrees with its chart's data is caught; every series name must be one
    the image prints (legend, value-axis label or title); the image must decode at the
    stored size. What the pixels show (overprinting, clipping) is measured when the chart
    is drawn: bench/chart_legibility.py and synth.charts.audit.
    """
    problems: list[str] = []
    recs = row.get("records") or [{"task": row.get("task"), "prompt": row.get("prompt"), "target": row.get("target")}]
    chart = [r for r in recs if r.get("task") == prompts.TASK_CHART]
    if len(chart) != 1:
        return [f"expected one {prompts.TASK_CHART!r} record, found {len(chart)}"]
    rec = chart[0]
    if rec.get("prompt") != prompts.PARSE_FIGURE:
        problems.append(f"prompt is {rec.get('prompt')!r}, expected {prompts.PARSE_FIGURE!r}")
    try:
        truth = row_truth(row)
    except ValueError as exc:
        return problems + [f"truth is not JSON: {exc}"]
    tp = _truth_problems(truth)
    if tp:
        return problems + tp
    header, rows = parse_table(rec.get("target", ""))
    exp_header, exp_rows = parse_table(table_from_truth(truth))
    if not header:
        return problems + ["target has no table rows"]
    if header != exp_header:
        problems.append(f"header {header} != expected {exp_header}")
    if len(rows) != len(exp_rows):
        problems.append(f"target has {len(rows)} category rows, truth has {len(exp_rows)}")
    for i, (got, exp) in enumerate(zip(rows, exp_rows)):
        if len(got) != len(exp):
            problems.append(f"row {i + 1} has {len(got)} cells, expected {len(exp)}")
            continue
        for j, (g, e) in enumerate(zip(got, exp)):
            if g != e:
                col = exp_header[j] if j < len(exp_header) else j
                problems.append(f"row {i + 1} ({exp[0]!r}) column {col!r}: target {g!r} != truth {e!r}")
    image = row_image(row)
    if image is None:
        problems.append("row has no image")
    elif image.size != (row.get("width"), row.get("height")):
        problems.append(f"image is {image.size}, row says {(row.get('width'), row.get('height'))}")
    return problems


# ---- inspection -------------------------------------------------------------------------

def overlay(row: dict[str, Any]):
    """The chart with its parsed target table written beside it (for show/sheet)."""
    from PIL import Image, ImageDraw, ImageFont

    from synth.charts.fonts import cjk_font_path

    chart = row_image(row)
    header, rows = parse_table(row.get("target", ""))
    table = [header] + rows
    font = ImageFont.truetype(cjk_font_path(), 15)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    ncol = max((len(r) for r in table), default=0)
    widths = [max((probe.textlength(r[j], font=font) for r in table if j < len(r)), default=0) for j in range(ncol)]
    line_h, pad = 22, 12
    panel_w = int(sum(widths) + 16 * max(ncol - 1, 0) + 2 * pad)
    h = max(chart.height if chart else 0, len(table) * line_h + 2 * pad)
    w = (chart.width if chart else 0) + max(panel_w, 200)
    out = Image.new("RGB", (w, h), "white")
    if chart is not None:
        out.paste(chart, (0, 0))
    draw = ImageDraw.Draw(out)
    x0 = (chart.width if chart else 0) + pad
    for i, r in enumerate(table):
        x = x0
        for j, text in enumerate(r):
            draw.text((x, pad + i * line_h), text, fill=(0, 0, 160) if i == 0 or j == 0 else (0, 0, 0), font=font)
            x += widths[j] + 16
    return out


# ---- metric -----------------------------------------------------------------------------

def parse_number(cell: str) -> float | None:
    """The number in a cell with its unit and thousands separators dropped (12.5k -> 12.5)."""
    text = cell.replace(",", "").replace("−", "-").strip()
    m = _NUMBER.search(text)
    if not m:
        return None
    value = float(m.group())
    # A sign printed before a currency prefix ("-$1.25") still makes the value negative.
    return -abs(value) if text.startswith("-") else value


def triples(table_html: str) -> list[tuple[str, str, str]]:
    """(row name, column name, value) of every data cell of a table."""
    header, rows = parse_table(table_html)
    out = []
    for r in rows:
        if not r:
            continue
        for j in range(1, min(len(r), len(header))):
            out.append((r[0], header[j], r[j]))
    return out


def _value_ok(pred: str, truth: str, max_rel: float, max_edits: int) -> bool:
    p, t = parse_number(pred), parse_number(truth)
    if p is None or t is None:
        return edit_distance(pred, truth) <= max_edits
    return abs(p - t) <= max_rel * abs(t) + 1e-9


def _match(pred: list[tuple[str, str, str]], truth: list[tuple[str, str, str]], max_edits: int,
           max_rel: float) -> int:
    """Greedy one-to-one matching; each truth triple takes the closest unused prediction."""
    used = [False] * len(pred)
    matched = 0
    for tr, tc, tv in truth:
        best, best_cost = -1, None
        for i, (pr, pc, pv) in enumerate(pred):
            if used[i]:
                continue
            dr = edit_distance(pr, tr)
            if dr > max_edits:
                continue
            dc = edit_distance(pc, tc)
            if dc > max_edits or not _value_ok(pv, tv, max_rel, max_edits):
                continue
            d = dr + dc
            if best_cost is None or d < best_cost:
                best, best_cost = i, d
                if d == 0:
                    break
        if best >= 0:
            used[best] = True
            matched += 1
    return matched


def score_tables(pred_html: str, truth_html: str) -> dict[str, float]:
    """SCRM-style scores of a predicted table against the truth table.

    For each level L in strict, slight, high: ``L_matched``, ``L_precision`` (matched /
    predicted triples), ``L_recall`` (matched / truth triples), ``L_f1``, ``L_iou``
    (matched / union) and ``L_ap``: the fraction of IoU thresholds 0.50:0.05:0.95 that
    the table's IoU reaches; averaged over a test set it is the set's AP@50:5:95.
    """
    pred, truth = triples(pred_html), triples(truth_html)
    out: dict[str, float] = {"n_pred": float(len(pred)), "n_truth": float(len(truth))}
    for name, (edits, rel) in LEVELS.items():
        m = _match(pred, truth, edits, rel)
        p = m / len(pred) if pred else float(not truth)
        r = m / len(truth) if truth else float(not pred)
        union = len(pred) + len(truth) - m
        iou = m / union if union else 1.0
        out[f"{name}_matched"] = float(m)
        out[f"{name}_precision"] = p
        out[f"{name}_recall"] = r
        out[f"{name}_f1"] = 2 * p * r / (p + r) if p + r else 0.0
        out[f"{name}_iou"] = iou
        out[f"{name}_ap"] = sum(iou >= t - 1e-12 for t in AP_THRESHOLDS) / len(AP_THRESHOLDS)
    return out
