"""OCR 1.0 pages against SynthDoG, whole processes on one core: the table of issue 18.

    python bench/bench_vs_synthdog.py --synthdog DIR [--venv /tmp/synthdog-venv] [--pages 20 100]

DIR is Donut's ``synthdog/`` folder (template.py, config_en.yaml, resources/); the venv
holds synthtiger. See bench/bench_vs_synthdog.md for setting both up. For each page count
the script runs, one after the other, in ``--rounds`` interleaved rounds (the best counts):
``python -m synth`` on a one-shard ocr1 recipe with clean pages, the same with every page
photographed, and ``synthtiger -o OUT -c N -w 1 -s 1 template.py SynthDoG config_en.yaml``.
Each figure is the CPU seconds of the child process (``resource.getrusage``: what the
neighbours on a shared machine do not inflate) and its wall seconds; "steady" is the
slope between the two page counts, and "start-up" what the smaller run costs beyond it.
The ratios divide SynthDoG's CPU time by ours.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout, installed or not

from bench.bench_ocr1 import installed_env  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd: list[str], cwd: str, env: dict | None = None) -> tuple[float, float]:
    """(child CPU seconds, wall seconds) of one command."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), wall


def ours(pages: int, photo: float, root: Path = ROOT) -> tuple[float, float]:
    """One ``python -m synth`` run of ``pages`` ocr1 pages (1 shard, 1 worker) by the engine
    checked out at ``root``."""
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Path(tmp) / "recipe.yaml"  # JSON is YAML
        recipe.write_text(json.dumps({"name": "vs-synthdog", "seed": 7, "shards": 1, "rows_per_shard": pages,
                                      "mixture": {"ocr1": {"weight": 1.0, "config": {"scan_prob": 0.0,
                                                                                      "photo_prob": photo}}}}))
        return _run([sys.executable, "-m", "synth", str(recipe), "--out", str(Path(tmp) / "out"), "--executor",
                     "local", "--workers", "1", "--no-progress"], str(root), installed_env(PYTHONPATH=str(root)))


def synthdog(pages: int, folder: str, venv: str) -> tuple[float, float]:
    """One synthtiger run of ``pages`` SynthDoG pages (1 worker, seed 1)."""
    with tempfile.TemporaryDirectory() as tmp:
        return _run([os.path.join(venv, "bin", "synthtiger"), "-o", tmp, "-c", str(pages), "-w", "1", "-s", "1",
                     "template.py", "SynthDoG", "config_en.yaml"], folder, installed_env())


def main(argv=None) -> None:
    """Print the table: per generator and page count, CPU (wall) seconds; steady state and ratios."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--synthdog", required=True, help="Donut's synthdog/ folder")
    ap.add_argument("--venv", default="/tmp/synthdog-venv", help="venv with synthtiger (default /tmp/synthdog-venv)")
    ap.add_argument("--pages", type=int, nargs=2, default=[20, 100], help="the two page counts (default 20 100)")
    ap.add_argument("--before", default=None, metavar="DIR",
                    help="also time the engine checked out at DIR (e.g. `git worktree add DIR OLD_COMMIT`), as 'before' rows")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each; the least CPU counts (default 1)")
    args = ap.parse_args(argv)
    if not (Path(args.synthdog) / "template.py").exists():
        sys.exit(f"--synthdog {args.synthdog}: no template.py there; give Donut's synthdog/ folder")
    if not (Path(args.venv) / "bin" / "synthtiger").exists():
        sys.exit(f"--venv {args.venv}: no bin/synthtiger; see bench/bench_vs_synthdog.md")
    small, large = args.pages
    makers = {"clean pages": lambda n: ours(n, 0.0), "every page photographed": lambda n: ours(n, 1.0)}
    if args.before:
        before = Path(args.before).resolve()
        if not (before / "synth" / "__main__.py").exists():
            sys.exit(f"--before {args.before}: no synth/__main__.py there; give a checkout of the engine")
        makers = {"clean pages, before": lambda n: ours(n, 0.0, before), "clean pages, now": makers["clean pages"],
                  "every page photographed, before": lambda n: ours(n, 1.0, before),
                  "every page photographed, now": makers["every page photographed"]}
    makers["SynthDoG (text only, no boxes)"] = lambda n: synthdog(n, args.synthdog, args.venv)
    # Interleaved: each round runs every maker once at each page count, so an hour in which
    # the machine runs slower falls on all of them alike rather than on whichever ran then.
    runs_of: dict[str, dict[int, list[tuple[float, float]]]] = {name: {small: [], large: []} for name in makers}
    for _ in range(args.rounds):
        for name, make in makers.items():
            for n in (small, large):
                runs_of[name][n].append(make(n))
    got = {name: {n: min(runs, key=lambda r: r[0]) for n, runs in by_n.items()} for name, by_n in runs_of.items()}
    sd = got["SynthDoG (text only, no boxes)"]
    sd_steady = (sd[large][0] - sd[small][0]) / (large - small)
    print(f"| | {small} pages | {large} pages | steady state | start-up | vs SynthDoG ({small} pages / steady) |")
    print("|---|---|---|---|---|---|")
    for name, runs in got.items():
        steady = (runs[large][0] - runs[small][0]) / (large - small)
        start = runs[small][0] - small * steady
        print(f"| {name} | {runs[small][0]:.1f} s CPU ({runs[small][1]:.1f} s wall) | {runs[large][0]:.1f} s CPU "
              f"({runs[large][1]:.1f} s wall) | {1000 * steady:.0f} ms/page = {1 / steady:.1f} pages/s | {start:.1f} s | "
              f"{sd[small][0] / runs[small][0]:.1f}x / {sd_steady / steady:.1f}x |")


if __name__ == "__main__":
    main()
