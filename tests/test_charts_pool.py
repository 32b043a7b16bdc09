"""The chart renderer's speed-ups change no pixel: pooled Figures, pinned layout, caches.

Each check draws the same charts with a speed-up on and off (or in a fresh process) and
compares the PNG bytes, interleaving kinds so state left by one structure (pie, twin
axes, horizontal bars) would show up in the next chart.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import sys

import numpy as np
import pytest

import synth.charts.render as render
from synth import charts
from synth.charts import pool as charts_pool
from synth.charts.data import KINDS


def _chart(kind: str, seed: int, lang_zh: float = 0.5) -> bytes:
    cfg = charts.Config(kinds={kind: 1.0}, zh_prob=lang_zh)
    return charts.generate(cfg, np.random.default_rng(seed)).image


# Every kind, each followed by a different structure (single/twin axes, pie/cartesian).
SEQUENCE = [(k, s) for s in (1, 2) for k in KINDS] + [("pie", 3), ("composite", 3), ("hbar", 3), ("pie", 4)]


def test_pooled_figures_draw_exactly_like_new_figures(monkeypatch):
    pooled = [_chart(k, s) for k, s in SEQUENCE]
    monkeypatch.setattr(charts_pool, "ENABLED", False)
    fresh = [_chart(k, s) for k, s in SEQUENCE]
    bad = [ks for ks, a, b in zip(SEQUENCE, pooled, fresh) if a != b]
    assert not bad, f"pooled and new-figure bytes differ for {bad}"


def test_a_then_b_then_a_matches_a_fresh_process():
    pairs = [("composite", "pie"), ("hbar", "donut"), ("pie", "composite"), ("area", "stacked_bar")]
    here = []
    for a, b in pairs:
        first = _chart(a, 11)
        _chart(b, 12)
        again = _chart(a, 11)
        assert first == again, f"{a} changed after drawing a {b}"
        here.append(hashlib.sha256(first).hexdigest())
    code = (
        "import hashlib, numpy as np\n"
        "from synth import charts\n"
        f"for k in {[a for a, _ in pairs]}:\n"
        "    cfg = charts.Config(kinds={k: 1.0}, zh_prob=0.5)\n"
        "    print(hashlib.sha256(charts.generate(cfg, np.random.default_rng(11)).image).hexdigest())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == here


@pytest.mark.parametrize("kind", ["bar", "composite", "pie", "line", "hbar"])
def test_text_layout_memo_changes_nothing(monkeypatch, kind):
    cached = [_chart(kind, s) for s in (5, 6)]
    monkeypatch.setattr(render, "memoised_text_layout", contextlib.nullcontext)
    assert [_chart(kind, s) for s in (5, 6)] == cached


@pytest.mark.parametrize("kind", ["bar", "stacked_bar", "hbar", "composite", "donut"])
def test_batched_patch_limits_equal_matplotlibs(monkeypatch, kind):
    batched = [_chart(kind, s) for s in (7, 8)]
    monkeypatch.setattr(render, "_deferred_patch_limits", lambda ax, update: contextlib.nullcontext())
    assert [_chart(kind, s) for s in (7, 8)] == batched


# Charts whose layout passes change state on the pooled figure: a larger x tick pad (87),
# wrapped and turned category labels (30, 115), a legend beside the twin axis (26), a
# wrapped title (14), smaller or dropped value labels (62), category labels turned 90°
# and set smaller (crowded bars, then an hbar whose value axis takes the spare ticks),
# and a figure redrawn at a lower DPI because its text did not fit (figure_png 320x220).
LAYOUT_CASES = [87, 30, 26, 14, 62, 115]
CROWDED = charts.Config(kinds={"bar": 1.0, "line": 1.0}, min_categories=10, max_long_side=600)


def _layout_charts() -> list[bytes]:
    out = [charts.generate(charts.Config(), np.random.default_rng([0, i])).image for i in LAYOUT_CASES]
    out += [charts.generate(CROWDED, np.random.default_rng(129)).image, _chart("hbar", 3)]
    return out + [charts.figure_png(np.random.default_rng(41), 320, 220, "en")[0]]


def test_layout_passes_leave_nothing_behind(monkeypatch):
    pooled = _layout_charts()
    # Again in reverse order: what one chart's layout changed must not reach the next.
    backwards = [charts.generate(charts.Config(), np.random.default_rng([0, i])).image for i in LAYOUT_CASES[::-1]]
    assert backwards[::-1] == pooled[:len(LAYOUT_CASES)]
    monkeypatch.setattr(charts_pool, "ENABLED", False)
    assert _layout_charts() == pooled


def test_pool_actually_reuses_figures_and_ticks():
    _chart("bar", 1)
    fig, _, (ax,) = charts_pool._POOL["single"]
    ticks = list(ax.xaxis.majorTicks)
    _chart("line", 2)
    assert charts_pool._POOL["single"][0] is fig
    # Ticks beyond the first come back from the spare store, not new objects.
    assert set(map(id, ax.xaxis.majorTicks[1:])) & set(map(id, ticks))


def test_foreign_rcparams_do_not_leak_into_charts():
    import matplotlib

    before = [_chart(k, 21) for k in ("bar", "composite", "pie")]
    with matplotlib.rc_context({"font.size": 20, "axes.grid": True, "axes.facecolor": "#ff0000",
                                "xtick.major.size": 9, "lines.linewidth": 5}):
        during = [_chart(k, 21) for k in ("bar", "composite", "pie")]
    assert during == before
