"""Benchmark of the ocr1 family: pages per second per core, against the rendering floor.

full  = synth.ocr1.generate + annotate.ocr1.records (everything a shard row needs);
floor = reportlab build of the same page plans + PyMuPDF rasterise + encode, nothing else
        (the plans themselves are drawn outside the timed floor loop).
Single process; the best of ``--repeat`` runs is reported because the machine is shared,
both as wall time and as this process's CPU time (``time.process_time``), which other
processes on a busy machine do not inflate.

    python bench/bench_ocr1.py --pages 100 --repeat 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _full(cfg, seeds) -> tuple[float, float]:
    """(wall s, CPU s) of generate + records over the seeds."""
    from annotate.ocr1 import records
    from synth.ocr1 import generate

    t, c = time.perf_counter(), time.process_time()
    for s in seeds:
        records(generate(cfg, np.random.default_rng(s)))
    return time.perf_counter() - t, time.process_time() - c


def _floor(cfg, seeds) -> tuple[tuple[float, float], float]:
    """((wall s, CPU s) of build + raster + encode, wall s spent drawing the plans, untimed)."""
    from synth.ocr1.content import make_plan
    from synth.ocr1.layout import build_pdf
    from synth.ocr1.render import encode, open_page, rasterize

    t0 = time.perf_counter()
    plans = [make_plan(cfg, np.random.default_rng(s)) for s in seeds]
    t_plan = time.perf_counter() - t0
    t, c = time.perf_counter(), time.process_time()
    for plan in plans:
        pdf, _drawn = build_pdf(plan)
        img, _scale = rasterize(open_page(pdf), cfg.long_side)
        encode(img, cfg.image_format, cfg.jpeg_quality, cfg.png_compress_level)
    return (time.perf_counter() - t, time.process_time() - c), t_plan


def main(argv=None) -> None:
    """Run the benchmark and print pages/s for full generation and for the floor."""
    from synth.ocr1 import Config

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=100, help="pages per timed run")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs; the best is reported")
    ap.add_argument("--long-side", type=int, default=1024)
    ap.add_argument("--format", default="jpeg", choices=("jpeg", "png"))
    ap.add_argument("--chart-prob", type=float, default=None, help="override Config.chart_prob")
    ap.add_argument("--scan-prob", type=float, default=0.0, help="share of pages with the scan look")
    ap.add_argument("--photo-prob", type=float, default=0.0, help="share of pages with the photo look")
    ap.add_argument("--emphasis-prob", type=float, default=None, help="override Config.emphasis_prob")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of one full run")
    args = ap.parse_args(argv)

    cfg = Config(long_side=args.long_side, image_format=args.format, scan_prob=args.scan_prob, photo_prob=args.photo_prob)
    if args.chart_prob is not None:
        cfg.chart_prob = args.chart_prob
    if args.emphasis_prob is not None:
        cfg.emphasis_prob = args.emphasis_prob
    # Warm-up: imports, font registration, the equation cache and the chart pool are
    # per-process costs paid once per worker; the steady state is what shards see.
    from synth.ocr1 import equations, figures

    t = time.perf_counter()
    for i in range(cfg.equation_pool):
        for fontset in equations.FONTSETS:  # pages pick the fontset matching their text face
            equations.reader(equations.entry(i), fontset)
    figures.warm_pool(cfg.chart_pool)
    _full(cfg, range(10_000, 10_040))
    warm_s = time.perf_counter() - t

    seeds = list(range(args.pages))
    fulls = [_full(cfg, seeds) for _ in range(args.repeat)]
    floors = [_floor(cfg, seeds) for _ in range(args.repeat)]
    n = args.pages
    full_w, full_c = min(w for w, _c in fulls), min(c for _w, c in fulls)
    floor_w, floor_c = min(f[0] for f, _p in floors), min(f[1] for f, _p in floors)
    plan = min(p for _f, p in floors)
    print(f"ocr1 bench: {n} pages x {args.repeat} runs, long side {args.long_side}, {args.format}, "
          f"chart_prob {cfg.chart_prob}, scan_prob {cfg.scan_prob}, photo_prob {cfg.photo_prob}")
    print("                               wall: pages/s (ms/page)   CPU: pages/s (ms/page)")
    print(f"full  (generate + records):     {n / full_w:6.1f} ({1000 * full_w / n:5.1f})"
          f"            {n / full_c:6.1f} ({1000 * full_c / n:5.1f})")
    print(f"floor (build+raster+encode):    {n / floor_w:6.1f} ({1000 * floor_w / n:5.1f})"
          f"            {n / floor_c:6.1f} ({1000 * floor_c / n:5.1f})")
    print(f"plans (content drawing, not in floor): {1000 * plan / n:5.1f} ms/page wall")
    print(f"full / floor: wall {full_w / floor_w:.2f}, CPU {full_c / floor_c:.2f}")
    print(f"per-process warm-up ({cfg.equation_pool} equations, {cfg.chart_pool} charts x 2 languages, fonts): "
          f"{warm_s:.1f} s")
    if args.profile:
        import cProfile
        import pstats

        pr = cProfile.Profile()
        pr.enable()
        _full(cfg, seeds)
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
