"""Text and grounding metrics of DESIGN.md §3 (pure Python + numpy, no model needed).

Text: character edit distance normalised by the longer string, and precision / recall /
F1 over word *sets* (Fox/GOT style). Without a Chinese segmenter, every CJK character is
its own word. Grounding: ``<|ref|>label<|/ref|><|det|>[[x1, y1, x2, y2], ...]<|/det|>``
items are parsed, matched greedily by IoU, and scored by mean IoU and label accuracy.

Empty sets, so that an empty answer is never rewarded for what it did not say:

- precision of an empty prediction is 0 when the truth is non-empty; recall of a
  non-empty prediction against an empty truth is 0 (it found nothing that was there,
  and everything it said is wrong); F1 is 0 whenever either is 0;
- an empty prediction of an empty truth is right: 1, 1, 1 (a query about an absent
  object answered with no box). An *answer* has to be there, though: a grounding output
  with no ``<|det|>`` at all is no answer and scores 0 even where no box was expected;
- a mean over matched pairs (IoU, label accuracy) with no pair is 0 unless both sides
  are empty (then 1, as above);
- text metrics need a reference that has text: train.evaluate leaves references without
  any (a locate answer is a box) out of the text averages instead of scoring them 1.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from annotate.matching import box_iou, edit_distance, greedy_match  # noqa: F401  (re-exported)

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_WORD = re.compile(rf"\d+(?:[.,]\d+)*|[{_CJK}]|[^\s{_CJK}\W_]+", re.UNICODE)
_ITEM = re.compile(r"<\|ref\|>(.*?)<\|/ref\|>\s*<\|det\|>(.*?)<\|/det\|>", re.DOTALL)
_BOX = re.compile(r"\[\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*\]")
_MARKERS = re.compile(r"<\|/?(?:ref|det|grounding)\|>")


def normalized_edit_distance(pred: str, ref: str) -> float:
    """Edit distance divided by the longer length (0 when both are empty)."""
    n = max(len(pred), len(ref))
    return 0.0 if n == 0 else edit_distance(pred, ref) / n


def words(text: str) -> list[str]:
    """Words of text: runs of letters/digits, and each CJK character alone."""
    return _WORD.findall(text)


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1."""

    precision: float
    recall: float
    f1: float


def _prf(hits: int, n_pred: int, n_ref: int) -> PRF:
    """P/R/F1 with the empty-set rules of the module docstring."""
    if n_pred == 0 and n_ref == 0:
        return PRF(1.0, 1.0, 1.0)
    p = hits / n_pred if n_pred else 0.0
    r = hits / n_ref if n_ref else 0.0
    return PRF(p, r, 0.0 if p + r == 0 else 2 * p * r / (p + r))


def word_prf(pred: str, ref: str) -> PRF:
    """Precision/recall/F1 of the predicted word set against the reference word set.

    Both empty scores 1; an empty prediction for a non-empty reference scores 0.
    """
    ps, rs = set(words(pred)), set(words(ref))
    return _prf(len(ps & rs), len(ps), len(rs))


def plain_text(text: str, keep_refs: bool) -> str:
    """Text of a grounded output without its boxes.

    keep_refs: keep what sits inside ``<|ref|>`` (line grounding, where it is the text);
    drop it when it is a layout label (grounded markdown).
    """
    text = _ITEM.sub(lambda m: m.group(1) if keep_refs else "", text)
    return _MARKERS.sub("", text).strip()


@dataclass(frozen=True)
class Item:
    """One grounded item: its label (the ref text) and a 0-999 bin box."""

    label: str
    box: tuple[int, int, int, int]


def parse_grounded(text: str) -> list[Item]:
    """All ``<|ref|>..<|/ref|><|det|>[[..], ..]<|/det|>`` items; one Item per box."""
    out: list[Item] = []
    for m in _ITEM.finditer(text):
        label = m.group(1).strip()
        for b in _BOX.finditer(m.group(2)):
            out.append(Item(label, tuple(int(v) for v in b.groups())))  # type: ignore[arg-type]
    return out


def match_boxes(pred: Sequence[Sequence[float]], ref: Sequence[Sequence[float]], iou_threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching, highest IoU first; pairs at or above the threshold.

    Returns (pred index, ref index, iou) sorted by reference index.
    """
    return greedy_match(pred, ref, iou_threshold)


def grounding_scores(pred: Sequence[Item], ref: Sequence[Item], iou_threshold: float = 0.5,
                     answered: bool = True) -> dict[str, float]:
    """Box precision/recall at the IoU threshold, mean IoU of matches, label accuracy.

    Matching ignores labels; label accuracy is the share of matched pairs whose labels
    agree. With no match, mean IoU and label accuracy are 1.0 when nothing was expected and
    nothing predicted (a correctly empty answer), else 0. ``answered``: whether the output
    gave a grounding answer at all (held a ``<|det|>``); when it did not, every score is 0,
    even against an empty reference.
    """
    matches = match_boxes([p.box for p in pred], [r.box for r in ref], iou_threshold)
    prf = _prf(len(matches), len(pred), len(ref)) if answered else PRF(0.0, 0.0, 0.0)
    if matches:
        mean_iou = float(np.mean([m[2] for m in matches]))
        label_acc = sum(pred[i].label == ref[j].label for i, j, _ in matches) / len(matches)
    else:
        # Nothing expected and nothing predicted (a query about an absent object) is right.
        mean_iou = label_acc = 1.0 if not ref and not pred and answered else 0.0
    return {"box_precision": prf.precision, "box_recall": prf.recall, "box_f1": prf.f1,
            "mean_iou": mean_iou, "label_accuracy": label_acc, "n_pred": len(pred), "n_ref": len(ref),
            "n_matched": len(matches)}
