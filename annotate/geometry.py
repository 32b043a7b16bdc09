"""Annotator of the geometry family: Slow Perception targets, redrawing, checks, overlay.

The format itself (grammar, perceptual ruler, parser, line F1) lives in
``formats.slow_perception`` and its scores in ``annotate.geometry_metrics``; this module
ties them to samples and stored rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from annotate import prompts
from annotate.geometry_metrics import circle_f1, geometry_scores, line_f1  # noqa: F401  (re-exported API)
from formats.slow_perception import (  # noqa: F401  (re-exported API)
    FRAME,
    Figure,
    TargetError,
    figure_from_truth,
    figures_match,
    format_target,
    parse_target,
)
from synth.geometry.draw import Style, Transform, draw_figure
from synth.rows import row_image, row_truth
from synth.sample import Record, Sample

# A pixel "differs" when redrawn and stored grey levels are this far apart; a sound PNG
# row redraws exactly (0 such pixels), JPEG ringing stays well under it.
DIFF_LEVEL = 96
MAX_DIFF_PX = {"png": 4, "jpeg": 12}


def records(sample: Sample) -> list[Record]:
    """The figure-parsing record of a geometry sample."""
    target = format_target(figure_from_truth(sample.truth))
    return [Record(prompts.TASK_GEOMETRY, prompts.PARSE_FIGURE, target)]


def render_target(
    target: str | Figure,
    size: int | tuple[int, int] = 270,
    window: float = 30.0,
    transform: dict[str, Any] | None = None,
    style: dict[str, Any] | None = None,
) -> Image.Image:
    """Draw a target (text or Figure) back to an 'L' image in the generator's style.

    Without ``transform`` the figure is centred and ``window`` figure units span the
    width; with a stored row's ``truth['transform']`` and ``truth['style']`` the drawing
    reproduces the stored image. Text is parsed leniently.
    """
    fig = parse_target(target) if isinstance(target, str) else target
    w, h = (size, size) if isinstance(size, int) else size
    if transform is None:
        tf = Transform(w / window, (w / 2, h / 2))
    else:
        tf = Transform(float(transform["scale"]), tuple(transform["origin"]))
    st = Style.from_dict(style) if style else Style()
    return draw_figure(fig, (w, h), tf, st)


def _geometry_record(row: dict[str, Any]) -> dict[str, Any] | None:
    for r in row.get("records") or [{"task": row.get("task"), "prompt": row.get("prompt"), "target": row.get("target")}]:
        if r.get("task") == prompts.TASK_GEOMETRY:
            return r
    return None


def check(row: dict[str, Any]) -> list[str]:
    """Problems of a stored geometry row (empty when sound).

    The target must parse strictly, stay inside -15..15, equal the truth primitives
    (within the 2-decimal rounding), and, drawn back with the stored transform and style,
    reproduce the stored image: at most a few pixels may differ by more than
    ``DIFF_LEVEL`` grey levels, so a moved, missing or extra line is caught.
    """
    rid = row.get("id", "?")
    rec = _geometry_record(row)
    if rec is None:
        return [f"{rid}: no record with task {prompts.TASK_GEOMETRY!r}"]
    if rec.get("prompt") != prompts.PARSE_FIGURE:
        return [f"{rid}: prompt {rec.get('prompt')!r}, expected {prompts.PARSE_FIGURE!r}"]
    target = rec.get("target") or ""
    try:
        fig = parse_target(target, strict=True)
    except TargetError as e:
        return [f"{rid}: target does not parse: {e}"]
    problems = []
    coords = [v for s in fig.segments for v in (*s.start, *s.end)]
    coords += [v for c in fig.circles for v in c.center] + [v for p in fig.points for v in p.xy]
    if any(abs(v) > FRAME for v in coords):
        problems.append(f"{rid}: a coordinate lies outside -{FRAME}..{FRAME}")
    truth = row_truth(row)
    problems += [f"{rid}: target vs truth: {p}" for p in figures_match(fig, figure_from_truth(truth))]

    img = row_image(row)
    if img is None:
        return problems + [f"{rid}: geometry row has no image"]
    if img.size != (row.get("width"), row.get("height")):
        problems.append(f"{rid}: image is {img.size}, row says {(row.get('width'), row.get('height'))}")
    if "transform" not in truth:
        return problems + [f"{rid}: truth has no 'transform'; cannot compare pixels"]
    drawn = np.asarray(render_target(fig, img.size, transform=truth["transform"], style=truth.get("style")), np.int16)
    stored = np.asarray(img.convert("L"), np.int16)
    bad = int((np.abs(drawn - stored) > DIFF_LEVEL).sum())
    fmt = "jpeg" if str((row.get("image") or {}).get("path", "")).endswith(("jpg", "jpeg")) else "png"
    if bad > MAX_DIFF_PX[fmt]:
        problems.append(f"{rid}: target drawn back differs from the image in {bad} pixels "
                        f"(> {MAX_DIFF_PX[fmt]} allowed for {fmt})")
    return problems


def overlay(row: dict[str, Any]) -> Image.Image:
    """The stored figure with its target drawn over it in red (inspection picture)."""
    img = row_image(row)
    rec = _geometry_record(row)
    target = (rec or {}).get("target") or ""
    truth = row_truth(row)
    if img is None:
        img = Image.new("RGB", (270, 270), "white")
    drawn = render_target(target, img.size, transform=truth.get("transform"), style=truth.get("style"))
    ink = np.asarray(drawn, np.float32) / 255.0  # 0 where the target has ink
    base = np.asarray(img.convert("RGB"), np.float32)
    base = base * 0.5 + 127.5  # fade the figure so the red trace stands out
    red = np.array([230.0, 0.0, 0.0])
    out = base * ink[..., None] + red * (1 - ink[..., None])
    return Image.fromarray(out.round().astype(np.uint8), "RGB")
