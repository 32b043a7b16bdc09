"""General-vision family: deterministic scenes whose boxes cover the drawn objects."""

from __future__ import annotations

import numpy as np
import pytest

from annotate import prompts
from annotate import vision as ann
from formats.bins import bins_to_box, valid_bin_box
from synth import vision as gen
from synth.rows import row_image, row_truth
from tests.conftest import family_row

N_SEEDS = 30
NEAR = 50.0  # RGB distance within which a JPEG pixel counts as the named colour


def _row(seed: int, cfg: gen.Config | None = None) -> dict:
    return family_row("vision", seed, cfg)


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return [_row(s) for s in range(N_SEEDS)]


def test_same_seed_same_bytes_and_targets():
    a, b = _row(11), _row(11)
    assert a["image"]["bytes"] == b["image"]["bytes"]
    assert a["records"] == b["records"] and a["truth"] == b["truth"]
    assert _row(12)["image"]["bytes"] != a["image"]["bytes"]


def test_rows_pass_check_and_have_both_tasks(rows):
    for row in rows:
        assert ann.check(row) == [], row["id"]
        tasks = [r["task"] for r in row["records"]]
        assert tasks[-1] == prompts.TASK_VISION_CAPTION and prompts.TASK_VISION_GROUND in tasks
        for reg in row["regions"]:
            assert valid_bin_box(reg["box"])


def test_boxes_tightly_cover_the_objects_colour(rows):
    cfg = gen.Config()
    checked = 0
    for row in rows:
        img = np.asarray(row_image(row), dtype=float)
        h, w = img.shape[:2]
        for obj in row_truth(row)["objects"]:
            assert obj["visible"] >= cfg.min_visible
            x1, y1, x2, y2 = bins_to_box(obj["box"], w, h)
            x1, y1 = int(np.floor(x1)), int(np.floor(y1))
            x2, y2 = int(np.ceil(x2)), int(np.ceil(y2))
            crop = img[y1:y2, x1:x2]
            near = np.linalg.norm(crop - np.asarray(gen.COLOURS[obj["colour"]], float), axis=2) < NEAR
            # A tilted word's box holds more background around its thin strokes.
            assert near.mean() > (0.03 if obj.get("tilt") else 0.1), (row["id"], obj)
            # Tight: the colour reaches every side of the box (within 2 px).
            assert near[:3].any() and near[-3:].any() and near[:, :3].any() and near[:, -3:].any(), (row["id"], obj)
            checked += 1
    assert checked >= 2 * N_SEEDS


def test_grounding_lists_every_matching_object():
    cfg = gen.Config(min_objects=7, max_objects=9, max_queries=6)
    multi = 0
    for seed in range(20):
        row = _row(seed, cfg)
        truth = row_truth(row)
        for q in truth["queries"]:
            if "relation" in q:  # relational queries: test_relational_queries_follow_the_boxes
                continue
            expected = [i for i, o in enumerate(truth["objects"]) if gen.matches(o, q["attrs"])]
            assert q["objects"] == expected
            multi += len(expected) > 1
        assert ann.check(row) == []
    assert multi > 0  # some queries ("the circle") match several objects


def test_check_catches_wrong_targets(rows):
    row = next(r for r in rows if r["records"][0]["task"] == prompts.TASK_VISION_GROUND)
    rec = row["records"][0]
    ref, boxes = ann.parse_det(rec["target"])
    moved = [[b[0], b[1], b[2], min(999, b[3] + 40) if b[3] < 959 else b[3] - 40] for b in boxes]
    for bad in (prompts.det(ref, moved), prompts.det("the purple unicorn", boxes), rec["target"][:-3]):
        broken = dict(row, records=[dict(rec, target=bad)] + row["records"][1:])
        assert ann.check(broken), bad
    bad_region = dict(row, regions=[dict(row["regions"][0], box=[500, 10, 400, 20])] + row["regions"][1:])
    assert ann.check(bad_region)


def test_scenes_with_whole_words_are_read_as_text_lines():
    """An OCR record exactly when every word in the scene is fully visible: each word once,
    top to bottom, with its object's box; check() catches a changed one."""
    asked = skipped = 0
    for seed in range(60):
        row = _row(seed)
        objs = row_truth(row)["objects"]
        words = [o for o in objs if o["word"]]
        ocr = [r for r in row["records"] if r["task"] == prompts.TASK_VISION_OCR]
        if words and all(o["visible"] == 1.0 for o in words):
            assert len(ocr) == 1 and ocr[0]["prompt"] == "<image>\n<|grounding|>OCR this image."
            lines = ocr[0]["target"].split("\n")
            parsed = [ann.parse_det(ln) for ln in lines]
            assert sorted(ref for ref, _b in parsed) == sorted(o["word"] for o in words)
            assert [b[0][1] for _r, b in parsed] == sorted(b[0][1] for _r, b in parsed)
            for ref, boxes in parsed:
                assert [list(boxes[0])] in [[o["box"]] for o in words if o["word"] == ref]
            broken = dict(row, records=[dict(r, target=r["target"].replace(parsed[0][0], parsed[0][0] + "x"))
                                        if r["task"] == prompts.TASK_VISION_OCR else r for r in row["records"]])
            assert any("OCR record" in p for p in ann.check(broken))
            asked += 1
        else:
            assert not ocr
            skipped += bool(words)
    assert asked >= 10 and skipped >= 2, (asked, skipped)


def test_tilted_words_are_boxed_around_their_pixels():
    """Tilted words keep tight boxes (the colour reaches every side) and say their tilt."""
    cfg = gen.Config(word_prob=1.0, word_tilt_prob=1.0, max_word_tilt=40.0)
    tilts = []
    for seed in range(6):
        row = _row(seed, cfg)
        img = np.asarray(row_image(row), dtype=float)
        h, w = img.shape[:2]
        for obj in row_truth(row)["objects"]:
            assert obj["kind"] == "word" and -40.0 <= obj["tilt"] <= 40.0
            tilts.append(abs(obj["tilt"]))
            x1, y1, x2, y2 = (int(v) for v in np.round(bins_to_box(obj["box"], w, h)))
            near = np.linalg.norm(img[y1:y2, x1:x2] - np.asarray(gen.COLOURS[obj["colour"]], float), axis=2) < NEAR
            assert near[:3].any() and near[-3:].any() and near[:, :3].any() and near[:, -3:].any(), (row["id"], obj)
        assert ann.check(row) == []
    assert max(tilts) > 20
    upright = row_truth(_row(0, gen.Config(word_prob=1.0, word_tilt_prob=0.0)))["objects"]
    assert all(o["tilt"] == 0.0 for o in upright)


def test_relational_queries_follow_the_boxes():
    """'the circle left of the red star': the anchor is unique, and the targets are exactly
    the objects of that kind whose box centre lies wholly past the anchor's box on that
    side, recomputed here from the stored boxes."""
    cfg = gen.Config(min_objects=5, max_objects=8, relation_prob=1.0, negative_prob=0.0)
    side = {"left of": lambda c, a: c[0] < a[0], "right of": lambda c, a: c[0] > a[2],
            "above": lambda c, a: c[1] < a[1], "below": lambda c, a: c[1] > a[3]}
    found = set()
    for seed in range(12):
        row = _row(seed, cfg)
        truth = row_truth(row)
        objs = truth["objects"]
        for q in (q for q in truth["queries"] if "relation" in q):
            rel, anchor_attrs = q["relation"]["rel"], q["relation"]["anchor"]
            anchors = [i for i, o in enumerate(objs) if gen.matches(o, anchor_attrs)]
            assert len(anchors) == 1, q["ref"]
            a = objs[anchors[0]]["box"]
            want = [i for i, o in enumerate(objs) if i != anchors[0] and o["kind"] == q["attrs"]["kind"]
                    and side[rel](((o["box"][0] + o["box"][2]) / 2, (o["box"][1] + o["box"][3]) / 2), a)]
            assert q["objects"] == want and want, q["ref"]
            assert q["ref"] == f"the {q['attrs']['kind']} {rel} the {anchor_attrs['colour']} {anchor_attrs['kind']}"
            rec = next(r for r in row["records"] if r["prompt"] == prompts.locate(q["ref"]))
            assert ann.parse_det(rec["target"]) == (q["ref"], [objs[i]["box"] for i in want])
            found.add(rel)
            # The same boxes under the opposite relation are caught.
            opposite = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}[rel]
            flipped_q = dict(q, relation={"rel": opposite, "anchor": anchor_attrs})
            assert gen.query_objects(objs, flipped_q) != want
            # A target that lists every object of the kind, ignoring the relation, is caught
            # whenever that differs.
            every = [o["box"] for o in objs if o["kind"] == q["attrs"]["kind"]]
            if len(every) != len(want):
                bad = dict(row, records=[dict(r, target=prompts.det(q["ref"], every)) if r is rec else r
                                         for r in row["records"]])
                assert ann.check(bad)
        assert ann.check(row) == []
    assert found == set(gen.RELATIONS)


def test_queries_about_absent_objects_list_no_box():
    cfg = gen.Config(negative_prob=1.0)
    seen = 0
    for seed in range(8):
        row = _row(seed, cfg)
        truth = row_truth(row)
        negatives = [q for q in truth["queries"] if not q["objects"]]
        assert len(negatives) == 1
        q = negatives[0]
        assert not any(gen.matches(o, q["attrs"]) for o in truth["objects"])  # really absent
        rec = next(r for r in row["records"] if r["prompt"] == prompts.locate(q["ref"]))
        assert ann.parse_det(rec["target"]) == (q["ref"], [])
        assert ann.check(row) == []
        # Answering the absent object with a box is caught; so is a present object with none.
        some_box = truth["objects"][0]["box"]
        faked = dict(row, records=[dict(r, target=prompts.det(q["ref"], [some_box])) if r is rec else r
                                   for r in row["records"]])
        assert any("boxes" in p for p in ann.check(faked))
        pos = next(r for r in row["records"] if r["task"] == prompts.TASK_VISION_GROUND and r is not rec)
        emptied = dict(row, records=[dict(r, target=prompts.det(ann.parse_det(r["target"])[0], [])) if r is pos else r
                                     for r in row["records"]])
        assert ann.check(emptied)
        seen += 1
    assert seen == 8
    assert not any(not q["objects"] for s in range(8) for q in row_truth(_row(s, gen.Config(negative_prob=0.0)))["queries"])


def test_parse_det_roundtrip():
    target = prompts.det("the red circle", [[1, 2, 30, 40], [5, 6, 70, 80]])
    assert ann.parse_det(target) == ("the red circle", [[1, 2, 30, 40], [5, 6, 70, 80]])
    assert ann.parse_det("<|ref|>x<|/ref|><|det|>[[1, 2, 3]]<|/det|>") is None


def test_overlay_draws_boxes(rows):
    row = rows[0]
    pic = ann.overlay(row)
    assert pic.width == row["width"] and pic.height > row["height"]
    assert np.asarray(pic).tobytes() != np.asarray(row_image(row)).tobytes()


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="min_visible"):
        gen.generate(gen.Config(min_visible=0.0), np.random.default_rng(0))
    with pytest.raises(ValueError, match="background_weights"):
        gen.generate(gen.Config(background_weights={"marble": 1.0}), np.random.default_rng(0))
