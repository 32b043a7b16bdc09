"""The boundary type between a generator (synth/) and the annotators (annotate/).

A generator is a pure function ``generate(config: dict, rng: numpy.random.Generator)
-> Sample``: the same config and the same generator state give the same bytes.
Boxes are already in the 0-999 bin space of the *original* stored image
(see ``formats.bins``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in 0..999 bins, x1 < x2, y1 < y2


@dataclass(frozen=True)
class Region:
    """A layout region (OCR 1.0) or a grounded object (vision): label, bin box, content.

    ``text`` is the region's content as the target shows it (markdown, an HTML table,
    LaTeX for equations, empty for figures).
    """

    label: str
    box: Box
    text: str = ""


@dataclass(frozen=True)
class Line:
    """One text line read back from the rendered image, with its bin box."""

    text: str
    box: Box


@dataclass
class Sample:
    """One generated image (or text-only sample) with its ground truth.

    family: the generator family ("ocr1", "chart", "molecule", "geometry", "vision", "text").
    image: the encoded image bytes (PNG or JPEG), or None for text-only samples.
    image_format: "png" or "jpeg" (empty when there is no image).
    width, height: pixel size of the stored image (0 for text-only).
    regions: layout regions in reading order (OCR 1.0) or objects (vision).
    lines: text lines in reading order, read back from the render.
    text: the sample's plain text in reading order (free OCR target, or LM text).
    truth: family-specific structured truth, JSON-serialisable (chart series, SMILES,
      geometry primitives, page metadata ...). Evaluation reads it; it never re-parses
      targets.
    lang: main language code ("en", "zh", ...).
    """

    family: str
    image: bytes | None
    image_format: str
    width: int
    height: int
    regions: list[Region] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    text: str = ""
    truth: dict[str, Any] = field(default_factory=dict)
    lang: str = "en"


@dataclass(frozen=True)
class Record:
    """One (task, prompt, target) training record derived from a Sample."""

    task: str
    prompt: str
    target: str
