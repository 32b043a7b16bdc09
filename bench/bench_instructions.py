"""Instructions per OCR 1.0 page, counted by Valgrind: a speed figure the machine's drift cannot move.

Timings on a shared 2-core machine wander by 15 % over an hour (docs/ocr1.md, "Where it
stands"), so two versions timed an hour apart, or even one after the other, can differ
by more than a change makes. The instructions a process executes do not wander: this
script counts them (``valgrind --tool=cachegrind --cache-sim=no``, about 30x slower
than a plain run) for a process that makes ``--warmup`` pages and for one that makes
``--warmup`` + ``--pages`` pages of the same recipe; the difference over ``--pages`` is
what a steady page costs, and the first count is start-up plus the warm-up pages.
Instructions are not time (a cache miss costs more than an add, and system calls are
not counted at all), so a change that saves time in the kernel (file writes) or in
memory traffic shows less here than on the clock.

    python bench/bench_instructions.py                          # this checkout
    python bench/bench_instructions.py --before /tmp/old        # and an older checkout beside it
    python bench/bench_instructions.py --photo-prob 1           # every page photographed

``--before DIR`` is a checkout of another commit (``git worktree add DIR COMMIT``); both
are counted at the same time, one process per core. Needs Valgrind (``apt-get install
valgrind``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The pages a worker makes: generate, the row and its annotations, then the shard's Arrow
# encoding; the process's memo of long-lived objects is settled after its first page, as
# a worker's is (synth.worker.settle_gc).
_SCRIPT = """
import sys
import numpy as np
from synth.threads import one_thread_here
one_thread_here()
from annotate.ocr1 import records
from synth.ocr1 import Config, generate
from synth.rows import sample_to_row
from synth.shards import encode_table
from synth.worker import settle_gc
warmup, pages, photo = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
cfg = Config(scan_prob=0.0, photo_prob=photo)
rows = []
for i, seed in enumerate(list(range(100_000, 100_000 + warmup)) + list(range(pages))):
    sample = generate(cfg, np.random.default_rng(seed))
    rows.append(sample_to_row(f"bench/00000/{seed:06d}", sample, records(sample)))
    if i == 0:
        settle_gc(force=True)
encode_table(rows)
"""


def count(checkout: Path, warmup: int, pages: int, photo: float) -> int:
    """Instructions (Ir) of one process making ``warmup`` + ``pages`` pages with ``checkout``'s code."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "pages.py"
        script.write_text(_SCRIPT)
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
               sys.executable, str(script), str(warmup), str(pages), str(photo)]
        run = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", run.stderr)
    if run.returncode != 0 or not found:
        raise SystemExit(f"valgrind run of {checkout} failed (exit {run.returncode}):\n{run.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pages", type=int, default=20, help="pages counted after the warm-up (default 20)")
    p.add_argument("--warmup", type=int, default=20, help="pages made first (default 20)")
    p.add_argument("--photo-prob", type=float, default=0.0, help="share of pages photographed (default 0)")
    p.add_argument("--before", type=Path, help="a checkout of another commit, counted beside this one")
    args = p.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("bench_instructions: valgrind is not installed (apt-get install valgrind)")
    checkouts = [("this checkout", ROOT)] + ([("before", args.before.resolve())] if args.before else [])
    jobs = [(name, path, n) for name, path in checkouts for n in (0, args.pages)]
    with ThreadPoolExecutor(max_workers=2) as pool:  # one valgrind per core
        counts = list(pool.map(lambda j: count(j[1], args.warmup, j[2], args.photo_prob), jobs))
    got = {(name, n): c for (name, _path, n), c in zip(jobs, counts)}
    print(f"ocr1, photo_prob {args.photo_prob}: {args.warmup} warm-up pages, then {args.pages} counted "
          f"(valgrind cachegrind, instructions)")
    steady = {}
    for name, path in checkouts:
        warm = got[(name, 0)]
        steady[name] = (got[(name, args.pages)] - warm) / args.pages
        print(f"  {name:14s} {steady[name] / 1e6:8.1f} M a steady page   {warm / 1e9:6.2f} G for start-up and "
              f"the warm-up pages   ({path})")
    if args.before:
        print(f"  this checkout / before: {steady['this checkout'] / steady['before']:.3f} a steady page")


if __name__ == "__main__":
    main()
