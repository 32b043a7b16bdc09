"""Milliseconds per page of synth.realism.apply for scan and photo at 1024 px.

Renders an A4-shaped page (724 x 1024) of DejaVu Sans text, once grey and once with a
colour figure (the colour path processes 3 channels), and times ``apply`` on it. CPU
time of this process is reported next to wall time, because wall time on a shared
machine measures the neighbours too.

    python bench/bench_realism.py [--n 60] [--long-side 1024] [--figures docs]

``--figures DIR`` also writes the figures of docs/realism.md: each mode applied to one
page with every text line's mapped box drawn over the result.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout, installed or not

from synth import realism
from synth.text_sources import english_sentences


def render_page(long_side: int, colour: bool) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """An A4-proportioned page of body text (and a red figure when ``colour``), with line boxes."""
    w, h = round(long_side / 2**0.5), long_side
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"), max(8, h // 70))
    step = max(10, h // 46)
    boxes = []
    for i, s in enumerate(english_sentences()[: (h - 2 * step) // step]):
        if colour and h // 2 - step < step + i * step < h // 2 + h // 6:
            continue
        d.text((w // 12, step + i * step), s[:70], font=font, fill="black")
        boxes.append(d.textbbox((w // 12, step + i * step), s[:70], font=font))
    if colour:
        d.rectangle((w // 6, h // 2, w - w // 6, h // 2 + h // 6), fill=(200, 40, 40))
        boxes.append((w // 6, h // 2, w - w // 6, h // 2 + h // 6))
    return img, boxes


def write_figures(out_dir: Path, long_side: int) -> None:
    """Clean / scan / photo / scan+photo of one page, mapped line boxes drawn in green."""
    page, boxes = render_page(long_side, colour=True)
    panels = [page]
    for seed, (scan, photo) in enumerate(((True, False), (False, True), (True, True)), start=3):
        img, fn = realism.apply(page, np.random.default_rng(seed), scan, photo)
        img = img.convert("RGB")
        d = ImageDraw.Draw(img)
        for box in boxes:
            d.rectangle(realism.transform_box(fn, box), outline=(0, 200, 0))
        panels.append(img)
    sheet = Image.new("RGB", (sum(p.width for p in panels), page.height), "white")
    for i, p in enumerate(panels):
        sheet.paste(p, (i * page.width, 0))
    sheet = sheet.resize((sheet.width // 2, sheet.height // 2), Image.Resampling.LANCZOS)
    sheet.save(out_dir / "realism_modes.jpg", quality=80, optimize=False)
    gallery = []
    for seed in range(20, 26):
        shot, _ = realism.apply(render_page(long_side, seed % 3 == 0)[0], np.random.default_rng(seed), False, True)
        gallery.append(shot)
    sheet = Image.new("RGB", (page.width * len(gallery), page.height))
    for i, p in enumerate(gallery):
        sheet.paste(p, (i * page.width, 0))
    sheet = sheet.resize((sheet.width // 3, sheet.height // 3), Image.Resampling.LANCZOS)
    sheet.save(out_dir / "realism_photos.jpg", quality=80, optimize=False)
    crop = realism.apply(page, np.random.default_rng(4), False, True)[0].crop((60, 60, 460, 300))
    scan_crop = realism.apply(page, np.random.default_rng(7), True, False)[0].crop((40, 20, 440, 260))
    detail = Image.new("RGB", (800, 240))
    detail.paste(crop, (0, 0))
    detail.paste(scan_crop.convert("RGB"), (400, 0))
    detail.save(out_dir / "realism_detail.jpg", quality=85, optimize=False)


def time_mode(page: Image.Image, scan: bool, photo: bool, n: int) -> tuple[float, float]:
    """Median (wall ms, CPU ms) of ``n`` calls after 3 warm-up calls (fills the noise cache)."""
    for seed in range(3):
        realism.apply(page, np.random.default_rng(10_000 + seed), scan, photo)
    wall, cpu = [], []
    for seed in range(n):
        rng = np.random.default_rng(seed)
        t0, c0 = time.perf_counter(), time.process_time()
        realism.apply(page, rng, scan, photo)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3


def main() -> None:
    """Print one line per (page kind, mode)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60, help="timed calls per mode")
    ap.add_argument("--long-side", type=int, default=1024, help="page height in px")
    ap.add_argument("--figures", type=Path, default=None, help="also write the docs figures here")
    args = ap.parse_args()
    if args.figures is not None:
        write_figures(args.figures, args.long_side)
    for colour in (False, True):
        page, _ = render_page(args.long_side, colour)
        for name, scan, photo in (("scan", True, False), ("photo", False, True), ("scan+photo", True, True)):
            wall, cpu = time_mode(page, scan, photo, args.n)
            kind = "colour" if colour else "grey"
            size = f"{page.size[0]}x{page.size[1]}"
            print(f"{kind:6s} {name:10s} {size}: {wall:6.1f} ms wall, {cpu:6.1f} ms CPU (median of {args.n})")


if __name__ == "__main__":
    main()
