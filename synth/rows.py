"""The shard row: one row per generated sample, its records nested in it.

One row holds one image once; all of its records (grounded markdown, free OCR, line
grounding ...) sit in the ``records`` list, so no image bytes are stored twice.

No column only repeats another, with one exception, on purpose: the top-level
``task``/``prompt``/``target`` repeat ``records[0]``, so that a reader that knows
nothing of ``records`` (the Hub's viewer, a generic image-to-text loader) still sees a
valid (image, prompt, target) triple. The page's plain text is not stored apart: it is
the target of the free-OCR record (``ocr1.free_ocr``), or of the one record of a
text-only row (``text.lm``); until generator version 2 a ``text`` column repeated it.

Row fields (Arrow types in ``synth.shards.SCHEMA``):
  id        "<recipe name>/<shard>/<row>"
  family    generator family
  task, prompt, target   the first record
  records   list of {task, prompt, target}
  image     {bytes, path} (Hugging Face Image struct) or null for text-only rows
  width, height   stored image size in pixels
  regions   list of {label, box[4] (0-999 bins), text}
  lines     list of {text, box[4]}
  truth     JSON string of the family's structured truth
  lang      language code
"""

from __future__ import annotations

import json
from typing import Any

from synth.sample import Record, Sample


def sample_to_row(sample_id: str, sample: Sample, records: list[Record]) -> dict[str, Any]:
    """Build the stored row of a sample and its records."""
    if not records:
        raise ValueError(f"{sample_id}: family {sample.family!r} produced no records")
    first = records[0]
    image = None
    if sample.image is not None:
        image = {"bytes": sample.image, "path": f"{sample_id.replace('/', '_')}.{sample.image_format or 'png'}"}
    return {
        "id": sample_id,
        "family": sample.family,
        "task": first.task,
        "prompt": first.prompt,
        "target": first.target,
        "records": [{"task": r.task, "prompt": r.prompt, "target": r.target} for r in records],
        "image": image,
        "width": int(sample.width),
        "height": int(sample.height),
        "regions": [{"label": r.label, "box": [int(v) for v in r.box], "text": r.text} for r in sample.regions],
        "lines": [{"text": ln.text, "box": [int(v) for v in ln.box]} for ln in sample.lines],
        # Compact separators: a page's word boxes alone are 400 lists (1.7 KB of spaces).
        "truth": json.dumps(sample.truth, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
        "lang": sample.lang,
    }


def row_truth(row: dict[str, Any]) -> dict[str, Any]:
    """The decoded structured truth of a stored row."""
    raw = row.get("truth") or "{}"
    return json.loads(raw)


def row_image(row: dict[str, Any]):
    """Decode a stored row's image as an RGB PIL image (None for text-only rows)."""
    import io

    from PIL import Image

    img = row.get("image")
    if img is None:
        return None
    if isinstance(img, dict):
        data = img.get("bytes")
    else:  # already decoded by datasets' Image feature
        return img.convert("RGB")
    if data is None:
        return None
    return Image.open(io.BytesIO(data)).convert("RGB")


def row_image_problems(row: dict[str, Any]) -> list[str]:
    """Why a row's stored image is unusable: missing, undecodable, or not the row's size."""
    import io

    from PIL import Image

    img = row.get("image")
    data = img.get("bytes") if isinstance(img, dict) else None
    if not data:
        return [f"{row.get('family', '?')} row has no image bytes"]
    try:
        size = Image.open(io.BytesIO(data)).size  # header only; no full decode
    except Exception as exc:  # any decoder failure is the finding
        return [f"image does not decode: {exc}"]
    if size != (row.get("width"), row.get("height")):
        return [f"image is {size[0]}x{size[1]} but the row says {row.get('width')}x{row.get('height')}"]
    return []
