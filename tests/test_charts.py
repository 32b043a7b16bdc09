"""Tests of the chart family: generator determinism, kinds, target format, check, metric."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from annotate import charts as ann
from annotate import prompts
from synth import charts
from synth.charts.data import KINDS
from synth.rows import sample_to_row


def _row(sample, idx: int = 0) -> dict:
    return sample_to_row(f"test/0/{idx}", sample, ann.records(sample))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_same_seed_same_bytes_even_after_other_charts():
    cfg = charts.Config()
    first = charts.generate(cfg, np.random.default_rng(7))
    charts.generate(cfg, np.random.default_rng(8))  # the reused Figure must not carry state over
    charts.generate(charts.Config(kinds={"pie": 1.0}, zh_prob=1.0), np.random.default_rng(9))
    again = charts.generate(cfg, np.random.default_rng(7))
    assert first.image == again.image
    assert first.truth == again.truth
    assert charts.generate(cfg, np.random.default_rng(10)).image != first.image


def test_same_seed_same_bytes_in_a_fresh_process():
    seeds = [3, 4, 5]
    here = [_sha(charts.generate(charts.Config(), np.random.default_rng(s)).image) for s in seeds]
    code = (
        "import hashlib, numpy as np\n"
        "from synth import charts\n"
        f"for s in {seeds}:\n"
        "    print(hashlib.sha256(charts.generate(charts.Config(), np.random.default_rng(s)).image).hexdigest())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == here


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders_and_checks(kind):
    for lang_prob, seed in ((0.0, 1), (1.0, 2)):
        sample = charts.generate(charts.Config(kinds={kind: 1.0}, zh_prob=lang_prob), np.random.default_rng(seed))
        t = sample.truth
        assert t["kind"] == kind
        assert sample.lang == ("zh" if lang_prob else "en")
        img = Image.open(io.BytesIO(sample.image))
        assert img.format == "PNG" and img.size == (sample.width, sample.height)
        assert 500 <= max(img.size) <= 1000
        # A real picture: many distinct colours, not a blank canvas.
        assert len(img.convert("RGB").getcolors(1 << 20)) > 20
        assert len(t["values"]) == len(t["series"]) and all(len(v) == len(t["categories"]) for v in t["values"])
        if kind in ("pie", "donut"):
            assert abs(sum(t["values"][0]) - 100.0) < 1e-6 and t["units"] == ["%"]
        if kind == "composite":
            assert t["secondary"] == [len(t["series"]) - 1]
        row = _row(sample)
        assert ann.check(row) == []
        assert row["task"] == prompts.TASK_CHART and row["prompt"] == prompts.PARSE_FIGURE


def test_values_are_exact_at_their_printed_precision():
    for seed in range(6):
        t = charts.generate(charts.Config(), np.random.default_rng(100 + seed)).truth
        header, rows = ann.parse_table(ann.table_from_truth(t))
        for s, series in enumerate(t["values"]):
            for c, v in enumerate(series):
                cell = rows[c][s + 1]
                # The printed number is the value itself, not a rounding of it.
                assert ann.parse_number(cell) == v
                if t["decimals"][s]:
                    assert len(cell.replace(",", "").split(".")[1].rstrip("%kM万亿")) == t["decimals"][s]


def test_format_then_parse_round_trips():
    cats = ["2019", "Q1 2020", "a & b", "万元 <x>"]
    names = ["Sales", "Profit margin"]
    vals = [[12.5, 3.0, -1.25, 1234.5], [0.1, 0.2, 0.3, 0.4]]
    html_text = ann.format_table(cats, names, vals, decimals=[2, 1], units=["$", "%"], unit_on_scale=[True, True],
                                 thousands_sep=True)
    assert html_text.startswith("<table><tr><td></td><td>Sales</td>")
    assert "<th" not in html_text and "thead" not in html_text
    header, rows = ann.parse_table(html_text)
    assert header == ["", "Sales", "Profit margin"]
    assert [r[0] for r in rows] == cats
    assert rows[0][1:] == ["$12.50", "0.1%"] and rows[2][1] == "-$1.25" and rows[3][1] == "$1,234.50"
    assert ann.parse_table(ann.format_table(cats, header[1:], [[r[1] for r in rows], [r[2] for r in rows]])) == (header, rows)
    # Whitespace, attributes, th cells and newlines do not matter.
    loose = html_text.replace("<tr>", "\n  <tr class='x'>\n").replace("<td>", " <TD > ").replace("</td>", " </td>\n")
    assert ann.parse_table(loose) == (header, rows)
    assert ann.parse_table("no table here") == ([], [])


def test_check_catches_a_table_that_disagrees_with_its_chart():
    sample = charts.generate(charts.Config(kinds={"bar": 1.0}), np.random.default_rng(11))
    row = _row(sample)
    assert ann.check(row) == []
    header, rows = ann.parse_table(row["target"])
    cells = [list(r) for r in rows]
    cells[1][1] = cells[1][1] + "0"  # one wrong value
    tampered = ann.format_table([r[0] for r in cells], header[1:], [[r[j] for r in cells] for j in range(1, len(header))])
    bad = dict(row, target=tampered, records=[dict(row["records"][0], target=tampered)])
    problems = ann.check(bad)
    assert len(problems) == 1 and "row 2" in problems[0] and cells[1][1] in problems[0]

    dropped = tampered.replace(tampered[tampered.rindex("<tr>"):-len("</table>")], "")
    assert ann.check(dict(row, records=[dict(row["records"][0], target=dropped)]))
    renamed = row["target"].replace(f"<td>{header[1]}</td>", "<td>Other</td>", 1)
    assert any("header" in p for p in ann.check(dict(row, records=[dict(row["records"][0], target=renamed)])))
    wrong_prompt = dict(row, records=[dict(row["records"][0], prompt=prompts.FREE_OCR)])
    assert any("prompt" in p for p in ann.check(wrong_prompt))


def test_metric_identical_tables_score_one():
    t = ann.format_table(["2019", "2020"], ["Sales", "Profit"], [[12.5, 14.0], [3.1, 2.0]], decimals=[1, 1])
    scores = ann.score_tables(t, t)
    for level in ann.LEVELS:
        assert scores[f"{level}_precision"] == scores[f"{level}_recall"] == scores[f"{level}_ap"] == 1.0
    assert scores["n_truth"] == 4


def test_metric_tolerance_levels():
    truth = ann.format_table(["2019", "2020"], ["Sales", "Profit"], [[100.0, 200.0], [50.0, 80.0]])
    near = ann.format_table(["2019", "2020"], ["Sales", "Profit"], [[104.0, 200.0], [50.0, 80.0]])  # 4% off
    s = ann.score_tables(near, truth)
    assert s["strict_matched"] == 3 and s["slight_matched"] == 4 and s["high_matched"] == 4
    far = ann.format_table(["2019", "2020"], ["Sales", "Profit"], [[108.0, 200.0], [50.0, 80.0]])  # 8% off
    s = ann.score_tables(far, truth)
    assert s["slight_matched"] == 3 and s["high_matched"] == 4
    typo = ann.format_table(["2019", "2020"], ["Sa1es", "Profit"], [[100.0, 200.0], [50.0, 80.0]])
    s = ann.score_tables(typo, truth)
    assert s["strict_matched"] == 2 and s["slight_matched"] == 4
    assert s["strict_precision"] == 0.5 and s["strict_iou"] == pytest.approx(2 / 6)
    empty = ann.score_tables("", truth)
    assert empty["high_recall"] == 0.0 and empty["high_ap"] == 0.0
    # Units and thousands separators do not change the value compared.
    assert ann.score_tables(truth.replace("<td>100</td>", "<td>$100</td>"), truth)["strict_matched"] == 4


def test_edit_distance():
    assert ann.edit_distance("kitten", "sitting") == 3
    assert ann.edit_distance("", "abc") == 3
    assert ann.edit_distance("销售额", "销售") == 1
    assert ann.parse_number("-$1,234.50") == -1234.5 and ann.parse_number("12.5万") == 12.5
    assert ann.parse_number("n/a") is None


def test_chinese_glyphs_render_not_tofu():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from synth.charts.fonts import families_for

    def render(text: str) -> np.ndarray:
        fig = Figure(figsize=(1.5, 0.6), dpi=100)
        fig.text(0.05, 0.2, text, family=families_for("zh", "DejaVu Sans"), fontsize=20)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., 0].copy()

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)"
        a, b, blank = render("万亿"), render("年月"), render("")
    assert (a < 128).sum() > 50 and (b < 128).sum() > 50
    assert not np.array_equal(a, b)  # tofu boxes would all look alike
    assert not np.array_equal(a, blank)


def test_figure_png_for_pages():
    png, truth = charts.figure_png(np.random.default_rng(5), 420, 300, "zh")
    img = Image.open(io.BytesIO(png))
    assert img.size == (420, 300)
    assert truth["lang"] == "zh" and truth["kind"] in KINDS
    assert ann.parse_table(ann.table_from_truth(truth))[0][1:] == truth["series"]
    png2, _ = charts.figure_png(np.random.default_rng(5), 420, 300, "zh")
    assert png2 == png


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="kinds"):
        charts.generate(charts.Config(kinds={"radar": 1.0}), np.random.default_rng(0))
    with pytest.raises(ValueError, match="zh_prob"):
        charts.generate(charts.Config(zh_prob=1.5), np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown chart config keys"):
        charts.generate({"colour": "red"}, np.random.default_rng(0))


def test_png_writer_round_trips_pixels():
    from synth.charts.png import encode_rgb

    rgba = np.random.default_rng(0).integers(0, 256, size=(7, 5, 4), dtype=np.uint8)
    data = encode_rgb(rgba, 6)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), rgba[..., :3])
    assert encode_rgb(rgba, 6) == data
    with pytest.raises(ValueError, match="level"):
        encode_rgb(rgba, 12)
