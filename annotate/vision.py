"""General-vision annotator: grounding and caption records, checks and the box overlay.

Records of a scene (``synth.vision``):
- one grounding record per truth query: prompt ``prompts.locate(ref)``, task
  ``prompts.TASK_VISION_GROUND``, target ``prompts.det(ref, boxes)`` with the boxes of
  *all* objects the query matches, in drawing order;
- when the scene shows words and none is hidden in part, one OCR record: prompt
  ``prompts.LINE_GROUNDING`` (the reference's ``<|grounding|>OCR this image.``), task
  ``prompts.TASK_VISION_OCR``, target one ``<|ref|>word<|/ref|><|det|>[[box]]<|/det|>``
  line per word, top to bottom (:func:`ocr_target`);
- last, one caption record: prompt ``prompts.CAPTION``, task
  ``prompts.TASK_VISION_CAPTION``, target the templated caption.
"""

from __future__ import annotations

import functools
import os
import re
import textwrap
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from annotate import prompts
from formats.bins import bins_to_box, valid_bin_box
from synth.rows import row_image, row_image_problems, row_truth
from synth.sample import Record, Sample
from synth.vision import query_objects

_DET = re.compile(r"^<\|ref\|>(?P<ref>.*?)<\|/ref\|><\|det\|>(?P<boxes>\[.*\])<\|/det\|>$", re.S)
_BOX = re.compile(r"\[(\d+), (\d+), (\d+), (\d+)\]")


def records(sample: Sample) -> list[Record]:
    """Grounding records for the scene's queries, then one caption record."""
    objs = sample.truth.get("objects", [])
    out = []
    for q in sample.truth.get("queries", []):
        boxes = [objs[i]["box"] for i in q["objects"]]
        out.append(Record(prompts.TASK_VISION_GROUND, prompts.locate(q["ref"]), prompts.det(q["ref"], boxes)))
    target = ocr_target(objs)
    if target is not None:
        out.append(Record(prompts.TASK_VISION_OCR, prompts.LINE_GROUNDING, target))
    caption = sample.truth.get("caption", "")
    if caption:
        out.append(Record(prompts.TASK_VISION_CAPTION, prompts.CAPTION, caption))
    return out


def ocr_target(objs: list[dict]) -> str | None:
    """The scene's words as text lines with boxes, top to bottom (then left to right); None
    when it shows no word, or when an object covers part of one: what a partly hidden word
    reads as is not clear, so such a scene asks no OCR."""
    words = [o for o in objs if o.get("word")]
    if not words or any(o["visible"] < 1.0 for o in words):
        return None
    words.sort(key=lambda o: (o["box"][1], o["box"][0]))
    return "\n".join(prompts.det(o["word"], [o["box"]]) for o in words)


def parse_det(target: str) -> tuple[str, list[list[int]]] | None:
    """(ref, boxes) of a ``<|ref|>..<|/ref|><|det|>[[..]]<|/det|>`` target, None if malformed."""
    m = _DET.match(target)
    if not m:
        return None
    inner = m.group("boxes")
    boxes = [[int(v) for v in b] for b in _BOX.findall(inner)]
    # Everything between the boxes must be the list punctuation, or the target is malformed.
    if _BOX.sub("", inner).replace(",", "").replace(" ", "") != "[]":
        return None
    return m.group("ref"), boxes


def check(row: dict[str, Any]) -> list[str]:
    """Problems in a stored vision row (empty when sound).

    Region boxes must be valid bins and equal the truth objects' boxes; each grounding
    target must name its prompt's ref and list exactly the boxes of the objects the query
    denotes, recomputed from the objects' attributes and boxes (none for a query about an
    absent object); a caption must be present and name every object's kind.
    """
    problems: list[str] = []
    truth = row_truth(row)
    objs = truth.get("objects", [])
    regions = row.get("regions") or []
    if len(regions) != len(objs):
        problems.append(f"{len(regions)} regions but {len(objs)} truth objects")
    for i, (reg, obj) in enumerate(zip(regions, objs)):
        if not valid_bin_box(reg["box"]):
            problems.append(f"region {i} box {reg['box']} is not a valid 0-999 bin box")
        if list(reg["box"]) != list(obj["box"]):
            problems.append(f"region {i} box {reg['box']} differs from truth object box {obj['box']}")
    queries = {q["ref"]: q for q in truth.get("queries", [])}
    n_ground = n_caption = n_ocr = 0
    ocr = ocr_target(objs)
    for rec in row.get("records") or []:
        if rec["task"] == prompts.TASK_VISION_GROUND:
            n_ground += 1
            problems.extend(_check_grounding(rec, queries, objs))
        elif rec["task"] == prompts.TASK_VISION_OCR:
            n_ocr += 1
            if rec["prompt"] != prompts.LINE_GROUNDING or rec["target"] != ocr:
                problems.append("OCR record differs from the scene's fully visible words and their boxes")
        elif rec["task"] == prompts.TASK_VISION_CAPTION:
            n_caption += 1
            if rec["prompt"] != prompts.CAPTION:
                problems.append(f"caption prompt {rec['prompt']!r} should be {prompts.CAPTION!r}")
            missing = [o["kind"] for o in objs if o["kind"] not in rec["target"]]
            if missing:
                problems.append(f"caption does not mention {missing}")
        else:
            problems.append(f"unexpected task {rec['task']!r} in a vision row")
    if objs and not n_ground:
        problems.append("scene has objects but no grounding record")
    if n_caption != 1:
        problems.append(f"expected one caption record, found {n_caption}")
    if n_ocr != (ocr is not None):
        problems.append(f"expected {int(ocr is not None)} OCR record, found {n_ocr}")
    problems.extend(row_image_problems(row))
    return problems


def _check_grounding(rec: dict, queries: dict[str, dict], objs: list[dict]) -> list[str]:
    parsed = parse_det(rec["target"])
    if parsed is None:
        return [f"grounding target {rec['target']!r} is malformed"]
    ref, boxes = parsed
    if rec["prompt"] != prompts.locate(ref):
        return [f"prompt {rec['prompt']!r} does not locate the target's ref {ref!r}"]
    bad = [b for b in boxes if not valid_bin_box(b)]
    if bad:
        return [f"grounding {ref!r}: invalid boxes {bad}"]
    q = queries.get(ref)
    if q is None:
        return [f"grounding ref {ref!r} is not among truth queries"]
    expected = [objs[i]["box"] for i in query_objects(objs, q)]
    if [list(b) for b in boxes] != [list(b) for b in expected]:
        return [f"grounding {ref!r}: boxes {boxes} but the matching objects' boxes are {expected}"]
    return []


@functools.lru_cache(maxsize=2)
def _font(size: int) -> ImageFont.FreeTypeFont:
    import matplotlib

    return ImageFont.truetype(
        os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf", "DejaVuSans.ttf"), size)


_PALETTE = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240))


def overlay(row: dict[str, Any]) -> Image.Image:
    """The scene with every region's box and label, and the caption written below."""
    img = row_image(row) or Image.new("RGB", (320, 320), "white")
    w, h = img.size
    caption = next((r["target"] for r in row.get("records") or [] if r["task"] == prompts.TASK_VISION_CAPTION), "")
    font = _font(12)
    chars = max(20, w // 7)
    lines = textwrap.wrap(caption, chars)
    canvas = Image.new("RGB", (w, h + 16 * len(lines) + 6), "white")
    canvas.paste(img, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, reg in enumerate(row.get("regions") or []):
        colour = _PALETTE[i % len(_PALETTE)]
        x1, y1, x2, y2 = bins_to_box(reg["box"], w, h)
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=2)
        draw.text((x1 + 2, max(0, y1 - 14)), reg["label"], fill=colour, font=font)
    for i, line in enumerate(lines):
        draw.text((3, h + 3 + 16 * i), line, fill="black", font=font)
    return canvas
