"""Geometry family: constructions, the Slow Perception target, redrawing, check, line F1."""

from __future__ import annotations

import ast
import io
import json
import math

import numpy as np
import pytest
from PIL import Image, ImageFilter
from shapely.geometry import LineString, box
from shapely.geometry import Point as SPoint

from annotate import geometry as A
from annotate import prompts
from annotate.geometry_metrics import geometry_scores, line_f1
from formats.slow_perception import (
    Circle,
    Figure,
    Segment,
    TargetError,
    figure_from_truth,
    format_target,
    gaze_points,
    merge_segments,
    parse_target,
)
from synth import geometry as G
from synth.families import load
from synth.rows import sample_to_row
from synth.sample import Sample

SEEDS = range(120)


def gen(seed: int, **over) -> Sample:
    return G.generate(G.Config(**over), np.random.default_rng(seed))


def row_of(sample, seed: int = 0) -> dict:
    return sample_to_row(f"geo/0/{seed}", sample, A.records(sample))


def grey(sample) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(sample.image)).convert("L"), np.int16)


@pytest.fixture(scope="module")
def samples():
    return [gen(s) for s in SEEDS]


# --- format / parse ---------------------------------------------------------


def test_parse_inverts_format_over_many_seeds(samples):
    kinds = set()
    for s in samples:
        fig = figure_from_truth(s.truth)
        text = format_target(fig)
        assert parse_target(text, strict=True) == fig
        kinds.add(s.truth["construction"])
        for seg in fig.segments:
            for v in (*seg.start, *seg.end):
                assert abs(v) <= 15 and round(v, 2) == v
    assert kinds == {"triangle", "quadrilateral", "polygon", "circle"}


def test_target_grammar(samples):
    circles = 0
    for s in samples:
        rec = A.records(s)[0]
        assert (rec.task, rec.prompt) == (prompts.TASK_GEOMETRY, prompts.PARSE_FIGURE)
        d = ast.literal_eval(rec.target)
        assert set(d) <= {"Line", "Circle"}
        assert len(d["Line"]["line"]) == len(d["Line"]["line_type"]) == len(s.truth["segments"])
        assert set(d["Line"]["line_type"]) <= {"-", "--"}
        if "Circle" in d:
            circles += 1
            assert len(d["Circle"]["circle_center"]) == len(d["Circle"]["radius"]) >= 1
        # Figure is centred on its bounding box.
        xs = [v for seg in s.truth["segments"] for v in (seg["start"][0], seg["end"][0])]
        xs += [c["center"][0] + k * c["radius"] for c in s.truth["circles"] for k in (-1, 1)]
        xs += [p["xy"][0] for p in s.truth["points"]]
        assert abs(min(xs) + max(xs)) <= 0.03
    assert circles > 10


def test_dashed_share_is_about_one_in_five(samples):
    segs = [seg for s in samples for seg in s.truth["segments"]]
    share = sum(seg["dashed"] for seg in segs) / len(segs)
    assert 0.1 <= share <= 0.3


def test_perceptual_ruler():
    assert gaze_points(Segment((0.0, 0.0), (10.0, 0.0))) == [(0.0, 0.0), (4.0, 0.0), (8.0, 0.0), (10.0, 0.0)]
    assert gaze_points(Segment((0.0, 0.0), (8.0, 0.0))) == [(0.0, 0.0), (4.0, 0.0), (8.0, 0.0)]
    assert gaze_points(Segment((1.0, 1.0), (3.0, 4.0))) == [(1.0, 1.0), (3.0, 4.0)]  # length 3.6
    pts = gaze_points(Segment((-3.0, -4.0), (3.0, 4.0)))  # length 10 along (0.6, 0.8)
    assert pts == [(-3.0, -4.0), (-0.6, -0.8), (1.8, 2.4), (3.0, 4.0)]
    text = format_target(Figure(segments=(Segment((0.0, 0.0), (0.0, 9.0), True),)))
    assert text == "{'Line': {'line': ['(0.0, 0.0) -- (0.0, 4.0) -- (0.0, 8.0) -- (0.0, 9.0)'], " \
                   "'line_type': ['--'], 'line_endpoint': []}}"


def test_merge_collinear_segments():
    s = lambda a, b, d=False: Segment(a, b, d)  # noqa: E731
    # Overlapping and touching solid pieces on one line become one segment.
    assert merge_segments([s((0.0, 0.0), (4.0, 0.0)), s((2.0, 0.0), (6.0, 0.0)), s((6.0, 0.0), (9.0, 0.0))]) == [
        s((0.0, 0.0), (9.0, 0.0))
    ]
    # Touching pieces of different types stay apart; reversed input is oriented.
    assert merge_segments([s((4.0, 4.0), (0.0, 0.0)), s((4.0, 4.0), (6.0, 6.0), True)]) == [
        s((0.0, 0.0), (4.0, 4.0)),
        s((4.0, 4.0), (6.0, 6.0), True),
    ]
    # Where solid overlaps dashed, solid wins; the dashed rest remains.
    assert merge_segments([s((0.0, 0.0), (0.0, 8.0), True), s((0.0, 0.0), (0.0, 5.0))]) == [
        s((0.0, 0.0), (0.0, 5.0)),
        s((0.0, 5.0), (0.0, 8.0), True),
    ]
    # Parallel but distinct lines are not merged.
    assert len(merge_segments([s((0.0, 0.0), (4.0, 0.0)), s((0.0, 0.5), (4.0, 0.5))])) == 2


def test_lenient_parse_salvages_truncated_output():
    fig = figure_from_truth(gen(3).truth)
    text = format_target(fig)
    cut = text[: text.index("'line_type'") - 30]
    got = parse_target(cut)
    assert 1 <= len(got.segments) < len(fig.segments)
    # line_type was cut off: geometry survives, types default to solid.
    assert [(g.start, g.end) for g in got.segments] == [(g.start, g.end) for g in fig.segments[: len(got.segments)]]
    assert not any(g.dashed for g in got.segments)
    with pytest.raises(TargetError):
        parse_target(cut, strict=True)
    assert parse_target("garbage") == Figure()
    with pytest.raises(TargetError):
        parse_target("{'Line': {'line': ['(1, 2) -- nope'], 'line_type': ['-']}}", strict=True)


# --- rendering ----------------------------------------------------------------


def test_determinism_same_seed_same_bytes():
    a, b = gen(11), gen(11)
    assert a.image == b.image and a.truth == b.truth
    assert gen(12).image != a.image
    j1, j2 = gen(5, image_format="jpeg"), gen(5, image_format="jpeg")
    assert j1.image == j2.image and j1.image[:2] == b"\xff\xd8"


def test_translation_changes_pixels_not_target():
    shifted_any = 0
    for seed in range(30):
        still, moved = gen(seed, shift_prob=0.0), gen(seed, shift_prob=1.0)
        assert A.records(still) == A.records(moved)
        dx, dy = moved.truth["transform"]["offset"]
        assert still.truth["transform"]["offset"] == [0, 0]
        if (dx, dy) == (0, 0):
            continue
        shifted_any += 1
        a, b = grey(still), grey(moved)
        assert not np.array_equal(a, b)
        # Integer offsets: the shifted figure is exactly the centred one translated.
        h, w = a.shape
        ys, xs = slice(max(0, dy), min(h, h + dy)), slice(max(0, dx), min(w, w + dx))
        ys0, xs0 = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
        assert np.array_equal(b[ys, xs], a[ys0, xs0])
        assert (a < 200).sum() == (b < 200).sum()  # nothing was cut off at the border
    assert shifted_any >= 20


def test_render_target_matches_image_after_undoing_offset(samples):
    for s in samples[:40]:
        target = A.records(s)[0].target
        dx, dy = s.truth["transform"]["offset"]
        img = grey(s)
        # With the stored style, the centred redraw equals the image shifted back.
        drawn = np.asarray(A.render_target(target, s.width, style=s.truth["style"]), np.int16)
        back = np.full_like(img, 255)
        h, w = img.shape
        back[max(0, -dy): min(h, h - dy), max(0, -dx): min(w, w - dx)] = \
            img[max(0, dy): min(h, h + dy), max(0, dx): min(w, w + dx)]
        assert (np.abs(drawn - back) > 96).sum() <= 4
        # With the default style, every line pixel drawn still lies on the figure's ink.
        lines_only = Figure(segments=parse_target(target).segments, circles=parse_target(target).circles)
        ink = np.asarray(A.render_target(lines_only, s.width), np.int16) < 160
        near = np.asarray(Image.fromarray(((back < 200) * 255).astype(np.uint8)).filter(ImageFilter.MaxFilter(5))) > 0
        assert (ink & near).sum() / max(1, ink.sum()) >= 0.97


def test_transform_maps_figure_points_to_ink(samples):
    for s in samples[:40]:
        tf, img = s.truth["transform"], grey(s)
        for p in s.truth["points"]:
            x = tf["origin"][0] + tf["scale"] * p["xy"][0]
            y = tf["origin"][1] - tf["scale"] * p["xy"][1]
            xi, yi = int(round(x)), int(round(y))
            assert img[yi - 2: yi + 3, xi - 2: xi + 3].min() < 150, (p, s.truth["construction"])


def test_labels_stay_off_lines(samples):
    clear = total = 0
    for s in samples:
        tf = s.truth["transform"]
        to_px = lambda q: (tf["origin"][0] + tf["scale"] * q[0], tf["origin"][1] - tf["scale"] * q[1])  # noqa: E731
        lines = [LineString([to_px(g["start"]), to_px(g["end"])]) for g in s.truth["segments"]]
        lines += [SPoint(to_px(c["center"])).buffer(c["radius"] * tf["scale"]).exterior for c in s.truth["circles"]]
        for p in s.truth["points"]:
            b = box(*p["label_box_px"])
            assert 0 <= b.bounds[0] and b.bounds[2] <= s.width and 0 <= b.bounds[1] and b.bounds[3] <= s.height
            total += 1
            clear += not any(b.intersects(ln) for ln in lines)
    assert clear / total >= 0.97


# --- check and overlay --------------------------------------------------------


def test_check_accepts_generated_rows(samples):
    for i, s in enumerate(samples[:60]):
        assert A.check(row_of(s, i)) == []
    assert A.check(row_of(gen(2, image_format="jpeg"))) == []


def _move_first_line(target: str, d: float) -> str:
    fig = parse_target(target)
    s0 = fig.segments[0]
    moved = Segment((s0.start[0] + d, s0.start[1]), (s0.end[0] + d, s0.end[1]), s0.dashed)
    return format_target(Figure((moved,) + fig.segments[1:], fig.circles, fig.points))


def test_check_catches_a_moved_line():
    s = gen(7)
    row = row_of(s, 7)
    bad = dict(row, target=_move_first_line(row["target"], 0.5))
    bad["records"] = [dict(row["records"][0], target=bad["target"])]
    problems = A.check(bad)
    assert any("target vs truth" in p for p in problems)
    # Truth edited to agree with the moved target: the pixels still give it away.
    truth = json.loads(row["truth"])
    truth["segments"] = [
        {"start": list(g.start), "end": list(g.end), "dashed": g.dashed}
        for g in parse_target(bad["target"]).segments
    ]
    bad["truth"] = json.dumps(truth)
    problems = A.check(bad)
    assert len(problems) == 1 and "differs from the image" in problems[0]


def test_check_catches_broken_and_dropped_lines():
    row = row_of(gen(9), 9)
    broken = dict(row, target=row["target"][:-5])
    broken["records"] = [dict(row["records"][0], target=broken["target"])]
    assert any("does not parse" in p for p in A.check(broken))
    fig = parse_target(row["target"])
    dropped = format_target(Figure(fig.segments[1:], fig.circles, fig.points))
    short = dict(row, target=dropped, records=[dict(row["records"][0], target=dropped)])
    assert any("is missing" in p for p in A.check(short))


def test_overlay_draws_target_in_red():
    row = row_of(gen(4), 4)
    img = np.asarray(A.overlay(row))
    assert img.shape == (row["height"], row["width"], 3)
    red = (img[..., 0] > 180) & (img[..., 1] < 80) & (img[..., 2] < 80)
    assert red.sum() > 200


# --- metric -------------------------------------------------------------------


def test_line_f1_identical_is_perfect(samples):
    for s in samples[:20]:
        t = A.records(s)[0].target
        for thr, m in line_f1(t, t).items():
            assert m == {"precision": 1.0, "recall": 1.0, "f1": 1.0}, thr


def test_geometry_scores_circles_and_line_types(samples):
    with_circle = [s for s in samples if s.truth["circles"]]
    assert with_circle
    t = parse_target(A.records(with_circle[0])[0].target)
    assert t.circles
    perfect = geometry_scores(t, t)
    assert perfect["circles"][0.9]["f1"] == perfect["lines"][0.9]["f1"] == perfect["line_type_accuracy"] == 1.0
    c = t.circles[0]
    # A radius 10 % off still matches at IoU 0.75 (0.83) but not at 0.9; 30 % off matches neither.
    near = Figure(t.segments, (Circle(c.center, c.radius * 1.1, c.label),) + t.circles[1:], t.points)
    far = Figure(t.segments, (Circle(c.center, c.radius * 1.3, c.label),) + t.circles[1:], t.points)
    n = len(t.circles)
    assert geometry_scores(near, t)["circles"][0.75]["f1"] == 1.0
    assert geometry_scores(near, t)["circles"][0.9]["recall"] == pytest.approx((n - 1) / n)
    assert geometry_scores(far, t)["circles"][0.75]["recall"] == pytest.approx((n - 1) / n)
    assert geometry_scores(Figure(t.segments, (), t.points), t)["circles"][0.75]["f1"] == 0.0
    # Flipping one line's type (solid <-> dashed) costs exactly that line in line-type accuracy.
    segs = list(t.segments)
    segs[0] = Segment(segs[0].start, segs[0].end, not segs[0].dashed)
    flipped = geometry_scores(Figure(tuple(segs), t.circles, t.points), t)
    assert flipped["lines"][0.9]["f1"] == 1.0
    assert flipped["line_type_accuracy"] == pytest.approx(1 - 1 / len(segs))


def test_line_f1_axis_aligned_and_partial():
    v = Figure(segments=(Segment((1.0, -5.0), (1.0, 5.0)),))
    h = Figure(segments=(Segment((-5.0, 2.0), (5.0, 2.0)),))
    assert line_f1(v, v)[0.9]["f1"] == 1.0 and line_f1(h, h)[0.9]["f1"] == 1.0
    h_far = Figure(segments=(Segment((-5.0, 3.0), (5.0, 3.0)),))
    assert line_f1(h_far, h)[0.75]["f1"] == 0.0
    h_near = Figure(segments=(Segment((-5.0, 2.02), (5.0, 2.02)),))
    assert line_f1(h_near, h)[0.9]["f1"] == 1.0
    both = Figure(segments=h.segments + v.segments)
    m = line_f1(h, both)[0.75]
    assert (m["precision"], m["recall"]) == (1.0, 0.5) and m["f1"] == pytest.approx(2 / 3)
    assert line_f1(Figure(), both)[0.75]["f1"] == 0.0
    assert line_f1("", "")[0.9]["f1"] == 1.0
    # A diagonal line shortened by 20% falls below IoU 0.75 (0.8^2 = 0.64).
    d = Figure(segments=(Segment((0.0, 0.0), (10.0, 10.0)),))
    d_short = Figure(segments=(Segment((0.0, 0.0), (8.0, 8.0)),))
    assert line_f1(d_short, d)[0.75]["f1"] == 0.0


# --- config and registry --------------------------------------------------------


@pytest.mark.parametrize(
    "over, field",
    [({"image_format": "gif"}, "image_format"), ({"shift_prob": 1.5}, "shift_prob"),
     ({"constructions": {"hexagram": 1.0}}, "constructions"), ({"size_min": 300}, "size_min")],
)
def test_config_errors_name_the_field(over, field):
    with pytest.raises(ValueError, match=field):
        gen(0, **over)


def test_registered_family_and_image_size():
    fam = load("geometry")
    s = fam.generator.generate(fam.generator.Config(size_min=270, size_max=270), np.random.default_rng(1))
    assert (s.width, s.height) == (270, 270) and s.family == "geometry"
    assert fam.annotator.check(row_of(s)) == []
    assert math.isclose(s.truth["transform"]["scale"], 270 / 30)


def test_recipe_loader_builds_and_rejects_geometry_config():
    from synth.recipe import RecipeError, build_config

    cfg = build_config(G.Config, {"constructions": {"circle": 1.0}, "shift_prob": 0.0}, "r.geometry.config")
    s = G.generate(cfg, np.random.default_rng(0))
    assert s.truth["construction"] == "circle" and s.truth["transform"]["offset"] == [0, 0]
    with pytest.raises(RecipeError, match="image_format"):
        build_config(G.Config, {"image_format": "bmp"}, "r.geometry.config")


def test_same_bytes_in_a_fresh_process():
    import hashlib
    import os
    import subprocess
    import sys

    code = ("import hashlib, numpy as np; from synth import geometry as G; "
            "print(*[hashlib.sha256(G.generate(G.Config(), np.random.default_rng(s)).image).hexdigest() for s in (1, 2)])")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    here = [hashlib.sha256(gen(s).image).hexdigest() for s in (1, 2)]
    assert out.stdout.split() == here
