"""Drawing helpers shared by the inspection CLI: boxes over images, contact sheets."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from formats.bins import bins_to_box

PALETTE = [
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (128, 128, 0), (0, 128, 128), (170, 110, 40),
]


@functools.lru_cache(maxsize=8)
def font(size: int = 14) -> ImageFont.ImageFont:
    """DejaVu Sans from matplotlib's bundled fonts (CJK falls back to PIL's default)."""
    try:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        return ImageFont.truetype(str(path), size)
    except Exception:
        return ImageFont.load_default()


def colour(label: str) -> tuple[int, int, int]:
    """A stable colour per label."""
    return PALETTE[sum(label.encode("utf-8")) % len(PALETTE)]


def draw_bin_boxes(img: Image.Image, items: Sequence[tuple[str, Sequence[int]]], width: int = 2, text: bool = True) -> Image.Image:
    """Draw (label, bin box) pairs on a copy of ``img``; bins map back to its pixel size."""
    out = img.convert("RGB").copy()
    d = ImageDraw.Draw(out)
    f = font(max(10, out.width // 70))
    for label, box in items:
        x1, y1, x2, y2 = bins_to_box(box, out.width, out.height)
        c = colour(label)
        d.rectangle([x1, y1, x2, y2], outline=c, width=width)
        if text and label:
            tw = d.textlength(label, font=f)
            d.rectangle([x1, max(0, y1 - f.size - 2), x1 + tw + 4, y1], fill=c)
            d.text((x1 + 2, max(0, y1 - f.size - 2)), label, fill=(255, 255, 255), font=f)
    return out


def text_panel(text: str, width: int, height: int, size: int = 14) -> Image.Image:
    """A white panel with wrapped monospace-ish text (tables, SMILES, targets)."""
    panel = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(panel)
    f = font(size)
    chars = max(10, int(width / (size * 0.6)))
    y = 4
    for para in text.split("\n"):
        while para or para == "":
            line, para = para[:chars], para[chars:]
            d.text((4, y), line, fill=(0, 0, 0), font=f)
            y += size + 3
            if y > height - size or not para:
                break
        if y > height - size:
            break
    return panel


def side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    """Two images next to each other, top-aligned on white."""
    h = max(left.height, right.height)
    out = Image.new("RGB", (left.width + right.width, h), "white")
    out.paste(left.convert("RGB"), (0, 0))
    out.paste(right.convert("RGB"), (left.width, 0))
    return out


def contact_sheet(images: Sequence[Image.Image], captions: Sequence[str], cell: int = 768,
                  cols: int = 4) -> Image.Image:
    """A grid of thumbnails with a caption under each.

    The default cell (768 px) keeps a page's body text legible; captions are cut to the
    cell's width.
    """
    rows = max(1, -(-len(images) // cols))
    f = font(14 if cell >= 256 else 12)
    cap_h = f.size + 6
    sheet = Image.new("RGB", (cols * cell, rows * (cell + cap_h)), (240, 240, 240))
    d = ImageDraw.Draw(sheet)
    for k, (img, cap) in enumerate(zip(images, captions)):
        thumb = img.convert("RGB").copy()
        thumb.thumbnail((cell - 8, cell - 8), Image.Resampling.LANCZOS)
        x, y = (k % cols) * cell, (k // cols) * (cell + cap_h)
        sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
        while cap and d.textlength(cap, font=f) > cell - 8:
            cap = cap[:-1]
        d.text((x + 4, y + cell + 2), cap, fill=(0, 0, 0), font=f)
    return sheet
