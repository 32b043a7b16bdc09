"""The prompts of DESIGN.md §2, and the task names records carry.

Where DESIGN.md names no prompt, the reference model's README does: line grounding is its
"other image" prompt (``<|grounding|>OCR this image.``, text lines with boxes), captions its
"general" one, text location its "rec" one; a model trained here answers the prompts its
users already type.
"""

IMAGE = "<image>"
GROUNDING = "<|grounding|>"

GROUNDED_MARKDOWN = "<image>\n<|grounding|>Convert the document to markdown."
FREE_OCR = "<image>\nFree OCR."
LINE_GROUNDING = "<image>\n<|grounding|>OCR this image."
PARSE_FIGURE = "<image>\nParse the figure."
CAPTION = "<image>\nDescribe this image in detail."


def locate(ref: str) -> str:
    """The general-vision grounding prompt for one referring expression."""
    return f"<image>\n<|grounding|>Locate <|ref|>{ref}<|/ref|> in the image."


def locate_text(phrase: str) -> str:
    """The text-location prompt of OCR 1.0 pages for one printed phrase: the reference
    model's "rec" prompt, which has no ``<|grounding|>``."""
    return f"<image>\nLocate <|ref|>{phrase}<|/ref|> in the image."


def det(label: str, boxes) -> str:
    """``<|ref|>label<|/ref|><|det|>[[x1, y1, x2, y2], ...]<|/det|>``."""
    inner = ", ".join("[" + ", ".join(str(int(v)) for v in b) + "]" for b in boxes)
    return f"<|ref|>{label}<|/ref|><|det|>[{inner}]<|/det|>"


# Task names: what a record is for; manifest.json counts records per task.
TASK_GROUNDED = "ocr1.grounded_markdown"
TASK_FREE = "ocr1.free_ocr"
TASK_LINES = "ocr1.line_grounding"
TASK_LOCATE = "ocr1.locate"
TASK_CHART = "chart.table"
TASK_MOLECULE = "molecule.smiles"
TASK_GEOMETRY = "geometry.slow_perception"
TASK_VISION_GROUND = "vision.grounding"
TASK_VISION_CAPTION = "vision.caption"
TASK_VISION_OCR = "vision.ocr"
TASK_TEXT = "text.lm"
