"""Samples/s per core for each family: generate + annotate + row building, one process.

    python bench/bench_families.py                 # every family, 40 samples each
    python bench/bench_families.py --family chart --n 200 --repeat 3

Each family is warmed up first (fonts, RDKit fragments, matplotlib caches are per-process
and persist across tasks in real runs too), then timed; the best of ``--repeat`` runs is
reported, since other processes on the machine only ever make a run slower.
Targets (issue 3): charts >= 25/s, molecules >= 60/s, geometry >= 40/s per core.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from synth import families
from synth.recipe import build_config
from synth.rows import sample_to_row

TARGETS = {"chart": 25.0, "molecule": 60.0, "geometry": 40.0, "ocr1": 30.0}


def bench_family(name: str, n: int, repeat: int, seed: int = 0) -> dict:
    """Time ``n`` samples of one family; return the best rate of ``repeat`` runs."""
    fam = families.load(name)
    cfg = build_config(fam.generator.Config, {}, f"bench.{name}")

    def one(i: int) -> None:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0, i]))
        sample = fam.generator.generate(cfg, rng)
        sample_to_row(f"bench/{i}", sample, fam.annotator.records(sample))

    for i in range(min(5, n)):
        one(10_000 + i)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for i in range(n):
            one(i)
        best = min(best, time.perf_counter() - t0)
    rate = n / best
    return {"family": name, "samples": n, "seconds": round(best, 3), "per_core_per_s": round(rate, 1),
            "target": TARGETS.get(name), "meets_target": None if name not in TARGETS else rate >= TARGETS[name]}


def main() -> None:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", action="append", help="family to time (repeatable); default all")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        # "per core" literally: the process (and any library threads) gets one CPU.
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    for name in args.family or families.known():
        print(json.dumps(bench_family(name, args.n, args.repeat)), flush=True)


if __name__ == "__main__":
    main()
