"""Every chart text a reader needs is printed, legible and unobstructed (issue 17, items 1-3).

Each defect test draws seeded charts that showed the defect on commit 4c6b42f (found with
``python bench/chart_legibility.py --n 400 --show 40``; chart i is
``generate(Config(), default_rng([0, i]))``) and measures the drawn figure with
``synth.charts.audit``, which reads every text's rotated box from matplotlib's own
layout and compares boxes with shapely, independently of the renderer's fitting code.
"""

from __future__ import annotations

import numpy as np
import pytest

from annotate import charts as ann
from synth import charts
from synth.charts.audit import PROBLEMS, find_problems, recording
from synth.rows import sample_to_row


def _audit(i: int, seed: int = 0):
    with recording() as drawn:
        sample = charts.generate(charts.Config(), np.random.default_rng([seed, i]))
    assert len(drawn) == 1
    return sample, drawn[0], find_problems(drawn[0], sample.truth)


@pytest.mark.parametrize("i", [10, 35, 37])  # donut "Proportion", donut "占比", pie "Distribution"
def test_pie_series_name_is_its_printed_title(i):
    sample, _, found = _audit(i)
    t = sample.truth
    assert t["kind"] in ("pie", "donut")
    assert t["series"] == [t["title"]] and t["title_shown"]
    assert found["name_missing"] == [] and found["pie_series_missing"] == []


# 30: area, "2009第四季度" into "2010第一季度" and under "0.0万"; 44: line, "Disallowed" into
# "Rejoinder"; 88: stacked bar, "10月"/"11月"; 115: stacked bar, "Q4 2021"/"Q1 2022"; 87: area,
# "Q4 2020" under the value axis' "$0".
@pytest.mark.parametrize("i", [30, 44, 88, 115, 87])
def test_tick_labels_do_not_overprint(i):
    sample, drawn, found = _audit(i)
    assert found["tick_overlap"] == [] and found["text_overlap"] == []
    # Every category is still printed (wrapped, turned or smaller, never left out).
    assert found["name_missing"] == []


# 39, 62, 93: value labels on each other; 62, 98: under the legend.
@pytest.mark.parametrize("i", [39, 62, 93, 98])
def test_value_labels_clear_of_other_text_and_the_legend(i):
    sample, drawn, found = _audit(i)
    assert found["value_overlap"] == [] and found["value_under_legend"] == []
    assert found["value_over_marks"] == []
    # The truth says exactly which values the image prints.
    shown = {t.group for t in drawn.texts if t.role == "value"}
    printed = sample.truth["printed"]
    assert {f"value:{s}:{c}" for s, row in enumerate(printed) for c, p in enumerate(row) if p} == shown
    assert sample.truth["value_labels"] == bool(shown)


# 26: composite legend over the right axis title; 9: composite legend over bars;
# 233: bar legend over the bars.
@pytest.mark.parametrize("i", [26, 9, 233])
def test_legend_clear_of_axis_titles_and_marks(i):
    _, drawn, found = _audit(i)
    assert drawn.legends
    assert found["legend_over_text"] == [] and found["legend_over_marks"] == []


@pytest.mark.parametrize("i", [14, 85])  # titles wider than the figure (scatter, donut)
def test_title_is_not_clipped(i):
    sample, drawn, found = _audit(i)
    assert found["clipped"] == []
    titles = [t.text for t in drawn.texts if t.role == "title"]
    assert [s.replace("\n", " ") for s in titles] == [sample.truth["title"]]


def test_no_chart_in_a_seed_range_has_any_problem():
    bad = {}
    for i in range(90):
        sample, _, found = _audit(i, seed=17)
        problems = {k: v for k, v in found.items() if v}
        if problems:
            bad[(i, sample.truth["kind"])] = problems
    assert not bad, bad
    assert set(PROBLEMS) >= {"tick_overlap", "value_overlap", "legend_over_marks", "clipped"}


def test_no_figure_for_pages_has_any_problem():
    # As synth.ocr1.figures asks for them: 640 px wide, light theme.
    bad = {}
    with recording() as drawn:
        for i in range(30):
            rng = np.random.default_rng([17, i])
            _, truth = charts.figure_png(rng, 640, int(640 * rng.uniform(0.5, 0.75)), "zh" if i % 3 == 0 else "en")
            problems = {k: v for k, v in find_problems(drawn.pop(), truth).items() if v}
            if problems:
                bad[(i, truth["kind"])] = problems
    assert not bad, bad


def test_check_catches_a_series_name_the_image_does_not_print():
    sample = charts.generate(charts.Config(kinds={"pie": 1.0}), np.random.default_rng(3))
    row = sample_to_row("t/0/0", sample, ann.records(sample))
    assert ann.check(row) == []
    truth = dict(sample.truth, series=["Distribution"])
    bad = dict(row, truth=__import__("json").dumps(truth))
    assert any("pie series name" in p for p in ann.check(bad))

    single = charts.generate(charts.Config(kinds={"bar": 1.0}, max_series=1), np.random.default_rng(4))
    t = dict(single.truth, series=["Elsewhere"], title_shown=False)
    assert any("neither the value-axis label" in p for p in ann._truth_problems(t))
    assert ann._truth_problems(dict(single.truth, printed=[[True]])) != []
