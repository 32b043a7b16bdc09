"""Annotations of OCR 1.0 pages: grounded markdown, free OCR and line grounding.

``records(sample)`` derives the three targets from one Sample; ``parse_grounded`` reads
a grounded-markdown target back; ``check(row)`` audits a stored row (boxes, labels,
targets against the structured truth, and word boxes against the ink of the image);
``overlay(row)`` draws the boxes for inspection.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from annotate import prompts
from formats.bins import bins_to_box, valid_bin_box
from synth.sample import Record, Sample

LABELS = ("title", "sub_title", "text", "list", "table", "table_caption", "image", "image_caption",
          "equation", "header", "footer", "page_number", "footnote")

_DET = re.compile(r"<\|ref\|>(.*?)<\|/ref\|><\|det\|>\[\[(\d+), (\d+), (\d+), (\d+)\]\]<\|/det\|>")
# A header may end the text without its newline (a model output cut after an image box).
_HEAD = re.compile(r"^<\|ref\|>([a-z_]+)<\|/ref\|><\|det\|>\[\[(\d+), (\d+), (\d+), (\d+)\]\]<\|/det\|>(?:\n|\Z)",
                   re.M)


def _det(label: str, box) -> str:
    return prompts.det(label, [box])


def grounded_markdown(regions) -> str:
    """The grounded-markdown target: one header line plus content per region, blank-line separated."""
    return "\n\n".join(f"{_det(r.label, r.box)}\n{r.text}" for r in regions)


def line_grounding(lines) -> str:
    """The line-grounding target: one ``<|ref|>text<|/ref|><|det|>[[box]]<|/det|>`` per line."""
    return "\n".join(_det(ln.text, ln.box) for ln in lines)


def records(sample: Sample) -> list[Record]:
    """The grounded-markdown, free-OCR and line-grounding records of one page, then one
    text-location record per located phrase (``truth["locate"]``)."""
    return [
        Record(prompts.TASK_GROUNDED, prompts.GROUNDED_MARKDOWN, grounded_markdown(sample.regions)),
        Record(prompts.TASK_FREE, prompts.FREE_OCR, sample.text),
        Record(prompts.TASK_LINES, prompts.LINE_GROUNDING, line_grounding(sample.lines)),
    ] + [Record(prompts.TASK_LOCATE, prompts.locate_text(q["text"]), prompts.det(q["text"], q["boxes"]))
         for q in sample.truth.get("locate", ())]


def parse_grounded(target: str) -> list[tuple[str, tuple[int, int, int, int], str]]:
    """Parse a grounded-markdown target into (label, box, content) triples, in order.

    Content is the text between a region's header line and the blank line before the
    next header (or the end). Text before the first header is ignored.
    """
    heads = list(_HEAD.finditer(target))
    out = []
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(target)
        content = target[m.end():end]
        if i + 1 < len(heads) and content.endswith("\n\n"):
            content = content[:-2]
        box = tuple(int(v) for v in m.groups()[1:])
        out.append((m.group(1), box, content))
    return out


def parse_lines(target: str) -> list[tuple[str, tuple[int, int, int, int]]]:
    """Parse a line-grounding target into (text, box) pairs."""
    return [(m.group(1), tuple(int(v) for v in m.groups()[1:])) for m in _DET.finditer(target)]


def _gray(row: dict[str, Any]) -> np.ndarray | None:
    from synth.rows import row_image

    img = row_image(row)
    return None if img is None else np.asarray(img.convert("L"), dtype=np.int16)


# On a scanned or photographed page: ink is 30 grey levels darker than the paper around it,
# or, where the photo's shading darkened the paper, SHADED_SHARE of the paper's grey (and at
# least SHADED_FLOOR levels). A shadow scales ink and paper alike: a 9 pt word under one read
# 20-29 levels against paper at 90-106 (the README's split example, mixture-demo/00004/00020),
# while blank paper there reads 8. On that example's scanned and photographed pages (18,331
# words) no word falls below the rule, where 40 fell below 30 levels (docs/ocr1.md, Decisions).
DEGRADED_CONTRAST = 30
SHADED_SHARE = 0.18
SHADED_FLOOR = 18


def word_on_ink(gray: np.ndarray, box, min_contrast: int = 60, shaded: bool = False) -> bool:
    """True when the pixels under a bin box hold ink: a dark stroke against lighter paper,
    ``min_contrast`` grey levels darker than the paper (the box's 90th percentile), or with
    ``shaded`` (degraded pages) SHADED_SHARE of the paper's grey, at least SHADED_FLOOR."""
    H, W = gray.shape
    x1, y1, x2, y2 = bins_to_box(box, W, H)
    crop = gray[max(0, int(np.floor(y1))):min(H, int(np.ceil(y2)) + 1),
                max(0, int(np.floor(x1))):min(W, int(np.ceil(x2)) + 1)]
    if crop.size == 0:
        return False
    paper = int(np.percentile(crop, 90))
    contrast = paper - int(crop.min())
    if contrast >= min_contrast:
        return True
    return shaded and contrast >= max(SHADED_FLOOR, SHADED_SHARE * paper)


def check(row: dict[str, Any]) -> list[str]:
    """Problems found in a stored ocr1 row (empty when sound)."""
    from synth.rows import row_truth

    problems: list[str] = []
    rid = row.get("id", "?")
    regions = row.get("regions") or []
    lines = row.get("lines") or []
    for i, r in enumerate(regions):
        if r["label"] not in LABELS:
            problems.append(f"{rid}: region {i} has unknown label {r['label']!r}; valid: {', '.join(LABELS)}")
        if not valid_bin_box(r["box"]):
            problems.append(f"{rid}: region {i} ({r['label']}) box {r['box']} is not a valid 0-999 box")
    for i, ln in enumerate(lines):
        if not valid_bin_box(ln["box"]):
            problems.append(f"{rid}: line {i} box {ln['box']} is not a valid 0-999 box")
        if not ln["text"].strip():
            problems.append(f"{rid}: line {i} has empty text")

    by_task = {r["task"]: r for r in row.get("records") or []}
    for task in (prompts.TASK_GROUNDED, prompts.TASK_FREE, prompts.TASK_LINES):
        if task not in by_task:
            problems.append(f"{rid}: record {task!r} is missing")
    if prompts.TASK_GROUNDED in by_task:
        rec = by_task[prompts.TASK_GROUNDED]
        if rec["prompt"] != prompts.GROUNDED_MARKDOWN:
            problems.append(f"{rid}: grounded record has prompt {rec['prompt']!r}")
        parsed = parse_grounded(rec["target"])
        want = [(r["label"], tuple(int(v) for v in r["box"]), r["text"]) for r in regions]
        if parsed != want:
            bad = next((i for i, (a, b) in enumerate(zip(parsed, want)) if a != b), min(len(parsed), len(want)))
            problems.append(f"{rid}: grounded target disagrees with regions at region {bad} "
                            f"({len(parsed)} parsed, {len(want)} stored)")
    if prompts.TASK_LINES in by_task:
        parsed_l = parse_lines(by_task[prompts.TASK_LINES]["target"])
        want_l = [(ln["text"], tuple(int(v) for v in ln["box"])) for ln in lines]
        if parsed_l != want_l:
            problems.append(f"{rid}: line-grounding target disagrees with lines "
                            f"({len(parsed_l)} parsed, {len(want_l)} stored)")

    truth = row_truth(row)
    located = truth.get("locate", [])
    asked = [rec for rec in row.get("records") or [] if rec["task"] == prompts.TASK_LOCATE]
    want_loc = [(prompts.locate_text(q["text"]), prompts.det(q["text"], q["boxes"])) for q in located]
    if [(rec["prompt"], rec["target"]) for rec in asked] != want_loc:
        problems.append(f"{rid}: {len(asked)} text-location records disagree with the {len(located)} located "
                        f"phrases of the truth")
    page_text = by_task.get(prompts.TASK_FREE, {}).get("target") or ""
    for q in located:
        if q["text"] not in page_text:
            problems.append(f"{rid}: located phrase {q['text']!r} is not in the page's text")
        if not q["boxes"] or not all(valid_bin_box(b) for b in q["boxes"]):
            problems.append(f"{rid}: located phrase {q['text']!r} has boxes {q['boxes']}; expected 1 or more 0-999 boxes")
    gray = _gray(row)
    if gray is None:
        problems.append(f"{rid}: row has no image")
        return problems
    if gray.shape != (row["height"], row["width"]):
        problems.append(f"{rid}: image is {gray.shape[1]}x{gray.shape[0]}, row says {row['width']}x{row['height']}")
    # Degraded looks (scan, photo) lower contrast: accept fainter ink there.
    looks = truth.get("realism", {})
    degraded = bool(looks.get("scan") or looks.get("photo"))
    min_contrast = DEGRADED_CONTRAST if degraded else 60
    # Every box that claims text must sit on ink: words (truth), lines, and text-bearing
    # regions (a region's content is empty only for figures). A box edited consistently in
    # the target and the columns still fails here.
    # On a photographed or scanned page a lone dash or dot can fall below the noise (a
    # 3x7 px "-" at contrast 20); words with a letter, digit or CJK character cannot.
    boxed = [("word", w[0], w[1]) for w in truth.get("words", [])
             if not degraded or any(ch.isalnum() for ch in w[0])]
    # So can a line of them: a code listing's lone "}" on such a page.
    boxed += [("line", ln["text"], ln["box"]) for ln in lines
              if not degraded or any(ch.isalnum() for ch in ln["text"])]
    boxed += [(f"region {r['label']}", r["text"][:30], r["box"]) for r in regions if r["text"].strip()]
    boxed += [("located phrase", q["text"], b) for q in located for b in q["boxes"]]
    off_ink = [(kind, text, box) for kind, text, box in boxed
               if valid_bin_box(box) and not word_on_ink(gray, box, min_contrast, shaded=degraded)]
    for kind, text, box in off_ink[:5]:
        problems.append(f"{rid}: {kind} {text!r} box {list(box)} lies on no ink")
    if len(off_ink) > 5:
        problems.append(f"{rid}: {len(off_ink) - 5} more boxes lie on no ink")
    if truth.get("unassigned_words"):
        problems.append(f"{rid}: {truth['unassigned_words']} PDF words belong to no region")
    return problems


_COLORS = {
    "title": (200, 0, 0), "sub_title": (230, 90, 0), "text": (0, 90, 220), "list": (0, 150, 150),
    "table": (140, 0, 200), "table_caption": (200, 0, 160), "image": (0, 160, 0),
    "image_caption": (90, 160, 0), "equation": (220, 160, 0), "header": (120, 120, 120),
    "footer": (120, 120, 120), "page_number": (60, 60, 60), "footnote": (150, 90, 40),
}


def overlay(row: dict[str, Any]):
    """The page with every region's box and label drawn, and thin line boxes."""
    from PIL import ImageDraw

    from synth.rows import row_image

    img = row_image(row)
    W, H = img.size
    draw = ImageDraw.Draw(img)
    for ln in row.get("lines") or []:
        draw.rectangle(bins_to_box(ln["box"], W, H), outline=(255, 170, 170), width=1)
    for r in row.get("regions") or []:
        color = _COLORS.get(r["label"], (255, 0, 0))
        x1, y1, x2, y2 = bins_to_box(r["box"], W, H)
        draw.rectangle((x1, y1, x2, y2), outline=color, width=2)
        draw.text((x1 + 2, max(0, y1 - 11)), r["label"], fill=color)
    return img
