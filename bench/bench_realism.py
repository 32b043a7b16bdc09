"""Milliseconds per page of synth.realism.apply for scan and photo at 1024 px.

Renders an A4-shaped page (724 x 1024) of DejaVu Sans text, once grey and once with a
colour figure (the colour path processes 3 channels), and times ``apply`` on it. CPU
time of this process is reported next to wall time, because wall time on a shared
machine measures the neighbours too.

    python bench/bench_realism.py [--n 60] [--long-side 1024]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from synth import realism
from synth.text_sources import english_sentences


def render_page(long_side: int, colour: bool) -> Image.Image:
    """An A4-proportioned page of body text (and a red figure when ``colour``)."""
    w, h = round(long_side / 2**0.5), long_side
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"), max(8, h // 70))
    step = max(10, h // 46)
    for i, s in enumerate(english_sentences()[: (h - 2 * step) // step]):
        d.text((w // 12, step + i * step), s[:90], font=font, fill="black")
    if colour:
        d.rectangle((w // 2, h // 2, w - w // 10, h // 2 + h // 6), fill=(200, 40, 40))
    return img


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
    args = ap.parse_args()
    for colour in (False, True):
        page = render_page(args.long_side, colour)
        for name, scan, photo in (("scan", True, False), ("photo", False, True), ("scan+photo", True, True)):
            wall, cpu = time_mode(page, scan, photo, args.n)
            kind = "colour" if colour else "grey"
            print(f"{kind:6s} {name:10s} {page.size[0]}x{page.size[1]}: {wall:6.1f} ms wall, {cpu:6.1f} ms CPU (median of {args.n})")


if __name__ == "__main__":
    main()
