"""Slow Perception scores: line and circle F1 at IoU thresholds, line-type accuracy.

The format (primitives, ruler, parser) lives in ``formats.slow_perception``; this module
scores a predicted figure against the truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from annotate.matching import greedy_match
from formats.slow_perception import Circle, Figure, Segment, parse_target

# Exactly horizontal/vertical segments have flat bounding boxes; the metric widens every
# box to at least this thickness (figure units, ~4 px at 270 px) so IoU stays meaningful.
MIN_BOX_THICKNESS = 0.5


def _box(s: Segment, min_thick: float) -> tuple[float, float, float, float]:
    x1, x2 = sorted((s.start[0], s.end[0]))
    y1, y2 = sorted((s.start[1], s.end[1]))
    if x2 - x1 < min_thick:
        c = (x1 + x2) / 2
        x1, x2 = c - min_thick / 2, c + min_thick / 2
    if y2 - y1 < min_thick:
        c = (y1 + y2) / 2
        y1, y2 = c - min_thick / 2, c + min_thick / 2
    return x1, y1, x2, y2


def _prf(pred_boxes: list, truth_boxes: list, ious: Sequence[float]) -> dict[float, dict[str, float]]:
    """Greedy box-IoU matching at each threshold: precision, recall and F1."""
    out: dict[float, dict[str, float]] = {}
    for thr in ious:
        tp = len(greedy_match(pred_boxes, truth_boxes, thr))
        if not pred_boxes and not truth_boxes:
            p = r = f = 1.0
        else:
            p = tp / len(pred_boxes) if pred_boxes else 0.0
            r = tp / len(truth_boxes) if truth_boxes else 0.0
            f = 2 * p * r / (p + r) if p + r else 0.0
        out[float(thr)] = {"precision": p, "recall": r, "f1": f}
    return out


def _figure(x: str | Figure) -> Figure:
    return parse_target(x) if isinstance(x, str) else x


def line_f1(
    pred: str | Figure,
    truth: str | Figure,
    ious: Sequence[float] = (0.75, 0.9),
    min_thickness: float = MIN_BOX_THICKNESS,
) -> dict[float, dict[str, float]]:
    """Slow Perception line precision/recall/F1 at each IoU threshold.

    Lines are compared by the IoU of their bounding boxes and matched greedily, highest
    IoU first, each line used at most once. A box thinner than ``min_thickness`` (figure
    units) on an axis is widened to it around its centre, so that exactly horizontal or
    vertical segments get a meaningful IoU instead of 0. Line type is scored by
    :func:`geometry_scores`. Strings are parsed leniently. Two empty figures score 1.0.
    """
    p_fig, t_fig = _figure(pred), _figure(truth)
    return _prf([_box(s, min_thickness) for s in p_fig.segments],
                [_box(s, min_thickness) for s in t_fig.segments], ious)


def _circle_box(c: Circle) -> tuple[float, float, float, float]:
    x, y = c.center
    return x - c.radius, y - c.radius, x + c.radius, y + c.radius


def circle_f1(pred: str | Figure, truth: str | Figure,
              ious: Sequence[float] = (0.75, 0.9)) -> dict[float, dict[str, float]]:
    """Circle precision/recall/F1, scored like lines: each circle becomes its bounding
    square, matched greedily by IoU (a centre 10 % of the radius off, or a radius 10 %
    off, still passes 0.75). Centre labels are not scored. Two circle-free figures score 1.0."""
    return _prf([_circle_box(c) for c in _figure(pred).circles],
                [_circle_box(c) for c in _figure(truth).circles], ious)


def geometry_scores(pred: str | Figure, truth: str | Figure,
                    ious: Sequence[float] = (0.75, 0.9)) -> dict[str, Any]:
    """Everything a geometry prediction is scored on: ``lines`` (:func:`line_f1`), ``circles``
    (:func:`circle_f1`), and ``line_type_accuracy``, the share of lines matched at the
    lowest threshold whose type (solid or dashed) agrees; with no matched line it is 1.0 only
    when neither figure has a line, else 0 (an empty answer earns nothing)."""
    p_fig, t_fig = _figure(pred), _figure(truth)
    pb = [_box(s, MIN_BOX_THICKNESS) for s in p_fig.segments]
    tb = [_box(s, MIN_BOX_THICKNESS) for s in t_fig.segments]
    pairs = greedy_match(pb, tb, min(ious))
    same = [p_fig.segments[i].dashed == t_fig.segments[j].dashed for i, j, _iou in pairs]
    return {"lines": _prf(pb, tb, ious), "circles": circle_f1(p_fig, t_fig, ious),
            "line_type_accuracy": sum(same) / len(same) if same else float(not pb and not tb)}
