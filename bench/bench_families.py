"""Samples/s per core for each family: what a shard worker does per row, one process.

    python bench/bench_families.py                 # every family, 40 samples each
    python bench/bench_families.py --family chart --n 200 --repeat 3

Per family, one JSON line:
- ``warmup_cpu_s``: CPU seconds of importing the family and making its first
  ``--warmup`` samples (fonts, RDKit fragments, pools and text models loaded from the node
  cache); a worker pays it once, so it is reported apart from the rate.
- ``per_core_per_s`` and ``ms_per_sample``: the steady rate over ``--n`` samples of
  everything a shard row costs: ``generate`` + the annotator's ``records`` +
  ``synth.rows.sample_to_row`` + the Arrow encoding of the rows (``encode_table``),
  measured in this process's CPU time (``time.process_time``), which neighbours on a
  shared machine do not inflate; ``wall_per_s`` beside it. Best of ``--repeat`` runs.
- ``target`` and ``meets_target``: the per-core targets of issues 3 and 18.

The process is pinned to one CPU, so "per core" is literal (library threads included).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout, installed or not

from synth import families
from synth.recipe import build_config
from synth.rows import sample_to_row
from synth.shards import encode_table

TARGETS = {"chart": 25.0, "molecule": 60.0, "geometry": 40.0, "ocr1": 40.0}


def bench_family(name: str, n: int, repeat: int, warmup: int = 5, seed: int = 0) -> dict:
    """Warm one family up, then time ``n`` samples ``repeat`` times; the best run's rates."""
    c0 = time.process_time()
    fam = families.load(name)
    cfg = build_config(fam.generator.Config, {}, f"bench.{name}")

    def rows(seeds) -> list[dict]:
        out = []
        for i in seeds:
            rng = np.random.default_rng(np.random.SeedSequence([seed, 0, i]))
            sample = fam.generator.generate(cfg, rng)
            out.append(sample_to_row(f"bench/00000/{i:05d}", sample, fam.annotator.records(sample)))
        return out

    encode_table(rows(range(10_000, 10_000 + warmup)))
    warm = time.process_time() - c0
    best_cpu = best_wall = float("inf")
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        encode_table(rows(range(n)))
        best_cpu = min(best_cpu, time.process_time() - c)
        best_wall = min(best_wall, time.perf_counter() - t)
    rate = n / best_cpu
    return {"family": name, "samples": n, "warmup_cpu_s": round(warm, 2), "ms_per_sample": round(1000 * best_cpu / n, 2),
            "per_core_per_s": round(rate, 1), "wall_per_s": round(n / best_wall, 1), "target": TARGETS.get(name),
            "meets_target": None if name not in TARGETS else rate >= TARGETS[name]}


def main() -> None:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", action="append", help="family to time (repeatable); default all")
    ap.add_argument("--n", type=int, default=40, help="samples per timed run (default 40)")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs; the best is reported (default 2)")
    ap.add_argument("--warmup", type=int, default=5, help="samples made before timing (default 5)")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        # "per core" literally: the process (and any library threads) gets one CPU.
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    for name in args.family or families.known():
        print(json.dumps(bench_family(name, args.n, args.repeat, args.warmup)), flush=True)


if __name__ == "__main__":
    main()
