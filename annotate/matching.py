"""Distances shared by the metrics: box IoU and greedy one-to-one box matching (grounding
IoU in train.metrics, Slow Perception line F1 in annotate.geometry_metrics), and string edit
distance (OCR edit distance in train.metrics, chart cell tolerance in annotate.charts)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes; 0 for empty boxes."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def greedy_match(
    pred: Sequence[Sequence[float]], ref: Sequence[Sequence[float]], iou_threshold: float
) -> list[tuple[int, int, float]]:
    """Pairs (pred index, ref index, iou), highest IoU first, each box used at most once.

    Only pairs with IoU >= ``iou_threshold`` and > 0 are kept; ties break by index so the
    result is deterministic. Sorted by reference index.
    """
    pairs = sorted(
        ((box_iou(p, r), i, j) for i, p in enumerate(pred) for j, r in enumerate(ref)),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    used_p: set[int] = set()
    used_r: set[int] = set()
    out: list[tuple[int, int, float]] = []
    for iou, i, j in pairs:
        if iou < iou_threshold or iou <= 0:
            break
        if i in used_p or j in used_r:
            continue
        used_p.add(i)
        used_r.add(j)
        out.append((i, j, iou))
    return sorted(out, key=lambda t: t[1])


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings (insert, delete, substitute cost 1).

    One numpy pass per character of the shorter string: the insertion recurrence of a row
    is a running minimum of ``d[j] - j``.
    """
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    bb = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    ar = np.frombuffer(a.encode("utf-32-le"), dtype=np.uint32)
    j = np.arange(len(bb) + 1, dtype=np.int64)
    prev = j.copy()
    for i, ch in enumerate(ar, start=1):
        sub = prev[:-1] + (bb != ch)
        cur = np.empty_like(prev)
        cur[0] = i
        cur[1:] = np.minimum(prev[1:] + 1, sub)
        # Insertions: cur[j] = min_k<=j (cur[k] + j - k).
        cur = np.minimum.accumulate(cur - j) + j
        prev = cur
    return int(prev[-1])
