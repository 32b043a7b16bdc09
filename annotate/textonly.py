"""Text-only annotator: one language-modelling record, checks and a rendered preview.

Record: task ``prompts.TASK_TEXT``, empty prompt, target the passage itself.
"""

from __future__ import annotations

import functools
import io
import os
import textwrap
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from annotate import prompts
from synth.rows import row_truth
from synth.sample import Record, Sample

PREVIEW_WIDTH = 800
_MAX_PREVIEW_LINES = 80


def records(sample: Sample) -> list[Record]:
    """The single LM record: no prompt, the passage as target."""
    if not sample.text:
        raise ValueError("text-only sample has empty text; the LM target must be non-empty")
    return [Record(task=prompts.TASK_TEXT, prompt="", target=sample.text)]


def check(row: dict[str, Any]) -> list[str]:
    """Problems in a stored text-only row (empty when sound)."""
    problems: list[str] = []
    if row.get("image") is not None:
        problems.append("text-only row carries an image")
    if row.get("width") or row.get("height"):
        problems.append(f"text-only row has size {row.get('width')}x{row.get('height')}, expected 0x0")
    recs = row.get("records") or []
    text = recs[0].get("target", "") if recs else ""
    if len(recs) != 1:
        problems.append(f"expected one record, found {len(recs)}")
    for r in recs:
        if r.get("task") != prompts.TASK_TEXT:
            problems.append(f"task {r.get('task')!r} should be {prompts.TASK_TEXT!r}")
        if r.get("prompt") != "":
            problems.append(f"prompt {r.get('prompt')!r} should be empty")
        if not r.get("target", "").strip():
            problems.append("target is empty")
    truth = row_truth(row)
    if "chars" in truth and truth["chars"] != len(text):
        problems.append(f"truth chars={truth['chars']} but the text has {len(text)}")
    return problems


@functools.lru_cache(maxsize=2)
def _font(lang: str) -> ImageFont.FreeTypeFont:
    """DejaVu Sans for English; PyMuPDF's bundled CJK font for Chinese."""
    if lang == "zh":
        import pymupdf

        return ImageFont.truetype(io.BytesIO(pymupdf.Font("cjk").buffer), 16)
    import matplotlib

    return ImageFont.truetype(
        os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf", "DejaVuSans.ttf"), 14)


def overlay(row: dict[str, Any]) -> Image.Image:
    """The passage rendered on a white canvas (first lines only), so ``show`` works for text."""
    lang = row.get("lang", "en")
    font = _font("zh" if lang == "zh" else "en")
    width_chars = 45 if lang == "zh" else 92  # CJK glyphs are about twice as wide
    lines: list[str] = []
    recs = row.get("records") or [{}]
    for para in (recs[0].get("target") or "").split("\n"):
        lines.extend(textwrap.wrap(para, width_chars) or [""])
    clipped = len(lines) > _MAX_PREVIEW_LINES
    lines = lines[:_MAX_PREVIEW_LINES] + (["[...]"] if clipped else [])
    line_h = 20
    canvas = Image.new("RGB", (PREVIEW_WIDTH, 16 + line_h * max(1, len(lines))), "white")
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((8, 8 + line_h * i), line, fill="black", font=font)
    return canvas
