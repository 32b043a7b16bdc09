"""Report how full OCR 1.0 pages are: the share of the body columns left blank at the foot.

Lays out pages of the default config (``make_plan`` + ``build_pdf``: the looks are
applied after layout, so clean, scanned and photographed pages have the same layout) and
measures each with ``synth.ocr1.fill.foot_blank``. Prints the distribution of the page
share (blank area at the columns' foot over their area) and of the blankest column, and
the seeds of the blankest pages.

    python bench/bench_ocr1_fill.py --pages 500
    python bench/bench_ocr1_fill.py --pages 200 --recipe manifests/ocr1_papers.yaml
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout, installed or not


def measure(seeds, config=None) -> list[tuple[int, object]]:
    """(seed, FootBlank) per seed, for pages of ``config`` (the default Config if None)."""
    from synth.ocr1 import Config
    from synth.ocr1.content import make_plan
    from synth.ocr1.fill import foot_blank
    from synth.ocr1.layout import build_pdf

    cfg = config or Config()
    out = []
    for s in seeds:
        plan = make_plan(cfg, np.random.default_rng(s))
        _pdf, drawn = build_pdf(plan)
        out.append((s, foot_blank(plan, drawn)))
    return out


def main(argv=None) -> None:
    """Measure pages of the default config and print the distribution."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=500, help="pages to lay out (seeds start..start+pages-1)")
    ap.add_argument("--start", type=int, default=0, help="first seed")
    ap.add_argument("--threshold", type=float, default=0.25, help="share counted as a blank foot")
    ap.add_argument("--worst", type=int, default=10, help="blankest pages listed")
    ap.add_argument("--recipe", default=None, help="measure this recipe's ocr1 config instead of the default")
    args = ap.parse_args(argv)

    config = None
    if args.recipe:
        from synth.recipe import load_recipe

        config = next((e.config for e in load_recipe(args.recipe).mixture if e.family == "ocr1"), None)
        if config is None:
            raise SystemExit(f"{args.recipe}: the mixture has no ocr1 entry")
    t = time.process_time()
    res = measure(range(args.start, args.start + args.pages), config)
    cpu = time.process_time() - t
    share = np.array([fb.share for _s, fb in res])
    worst = np.array([fb.worst for _s, fb in res])
    print(f"{args.recipe or 'default config'}: {len(res)} pages, seeds {args.start}..{args.start + args.pages - 1}, {cpu:.1f} s CPU")
    pct = (50, 90, 95, 99, 100)
    for name, v in (("page share", share), ("worst column", worst)):
        q = " ".join(f"p{p}={x:.3f}" for p, x in zip(pct, np.percentile(v, pct)))
        print(f"{name:>12}: {q}; > {args.threshold:.2f}: {int((v > args.threshold).sum())}"
              f" ({100 * float((v > args.threshold).mean()):.1f} %)")
    edges = (0.0, 0.05, 0.10, 0.15, 0.25, 0.40, 1.0001)
    hist = np.histogram(share, bins=edges)[0]
    print("page share histogram: " + ", ".join(f"[{a:.2f}, {min(b, 1):.2f}{']' if b > 1 else ')'}: {n}"
                                               for a, b, n in zip(edges, edges[1:], hist)))
    print("blankest pages (seed: share, columns):")
    for s, fb in sorted(res, key=lambda r: -r[1].worst)[:args.worst]:
        print(f"  {s}: {fb.share:.3f} [{', '.join(f'{c:.3f}' for c in fb.columns)}]")


if __name__ == "__main__":
    main()
