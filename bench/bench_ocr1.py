"""Benchmark of the ocr1 family: steady state per stage, whole-process start-up, workers.

    python bench/bench_ocr1.py                      # clean pages: steady state + start-up
    python bench/bench_ocr1.py --photo-prob 1       # every page photographed
    python bench/bench_ocr1.py --workers 2          # also 200 pages on 1 and on 2 workers
    python bench/bench_ocr1.py --cold               # start-up on a node whose cache is empty
    python bench/bench_ocr1.py --ink 20             # do line boxes hold their glyphs? (per font)
    python bench/bench_ocr1.py --bytes 30           # bytes per page and legibility per JPEG quality
    python bench/bench_ocr1.py --memory 3000        # a worker's memory as it makes 3,000 pages

What each figure is:
- **steady state** (in this process, after a warm-up of ``--warmup`` pages): CPU ms per
  page of each stage of ``synth.ocr1.generate`` (its ``timings``): plan (content drawn
  from the rng), layout (reportlab), read-back (PyMuPDF text, regions, markdown, located
  phrases), raster (PyMuPDF pixmap), realism (scan/photo looks), boxes (binning, truth),
  encode (JPEG/PNG); then rows (annotate.ocr1.records + synth.rows.sample_to_row +
  the Arrow encoding of the shard). **floor** = raster + encode only: the least a page
  can cost when it must be drawn and stored. CPU time (``time.process_time``) is what
  neighbours on a shared machine do not inflate; wall time is printed beside it.
- **start-up** (whole processes, ``python -m synth RECIPE --executor local --workers 1``
  on a one-shard recipe of 20 and of 100 pages): CPU seconds of each child process
  (``resource.getrusage``) and wall seconds. The per-page cost is the slope between the
  two runs, and start-up is what the 20-page run costs beyond 20 such pages. The
  bytes per page are the shards' bytes from the run's manifest.json.
- **workers** (``--workers 2``): wall seconds of 200 pages (4 shards of 50; ``--worker-pages
  N`` for N pages in shards of 50) on 1 and on 2 local workers and the speed-up, which
  only a quiet machine with two free cores gives truly; beside it the speed-up those cores
  would give by CPU time: the 1-worker run's CPU over (the driver's CPU, measured by
  running it again on the finished output, plus the rest of the 2-worker run's CPU
  halved). Every process pays its start-up once (about 0.5 s of imports, then its first
  pages' warm-up) however many pages it makes, so the speed-up grows with the run. With
  the start-up runs too, it prints the **ceiling** that start-up S and page cost t allow
  k workers on N pages even with free cores and a perfect split: (S + N t) / (S + N t / k);
  and, as the 1-worker run is made in the driver while k workers are spawned processes, the
  ceiling of the local pool itself: (S + N t) / (S + P + N t / k), where P is what a spawned
  worker pays before its first task (an interpreter and the imports the driver already
  holds; measured by spawning one, as the pool does, and timing an empty task).

- **ink** (``--ink N``): N pages per language (no sideways blocks, no margin notes),
  every line box against the ink of the page rendered at 2 px per point
  (``synth.ocr1.inkcheck``): the share of lines whose own glyphs cross the box's top or
  bottom edge, and the most points left out, per language and font.

- **bytes** (``--bytes N``): N clean pages (the default language mix) stored at each JPEG
  quality of ``--qualities``: KB of the image and of the rest of the row (annotations),
  and legibility against the lossless raster: SSIM (7x7 windows, grey) over the page and
  over its word boxes only, and with ``--tesseract`` (if the binary and its eng and
  chi_sim data are installed) Tesseract's recall of the page's words (English) or
  ideographs (Chinese) from the free-OCR text, against the same for the lossless image.

- **memory** (``--memory N``): N pages made in this process as a worker makes them (rows
  included, its long-lived objects settled after the first), with the process's private
  resident memory (``RssAnon``) every ``N / 10`` pages: what a worker holds as a long run
  goes on. Caches fill up to their bounds in the first thousand pages or so; after
  that the figure should level off.

Each figure is the best of ``--repeat`` runs (other processes only ever slow a run down).
``--cold`` points ``SYNTH_CACHE_DIR`` at an empty directory before each whole-process
run, so start-up includes building the node's cache (word chain, lexicon, pools as used).
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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def installed_env(**extra: str) -> dict[str, str]:
    """This environment as an installed program sees it: Python writes and reuses its
    bytecode caches (a shell with PYTHONDONTWRITEBYTECODE would make every run compile the
    project's modules afresh, about 0.05 s, which no user pays twice)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **extra}


STAGES = ("plan", "layout", "read-back", "raster", "realism", "boxes", "encode", "rows")


def _config(args):
    from synth.ocr1 import Config

    cfg = Config(long_side=args.long_side, image_format=args.format, scan_prob=args.scan_prob,
                 photo_prob=args.photo_prob)
    if args.jpeg_quality is not None:
        cfg.jpeg_quality = args.jpeg_quality
    return cfg


def steady(cfg, pages: int, warmup: int, seed0: int = 0) -> tuple[dict[str, float], float, float]:
    """(CPU seconds per stage, total CPU s, total wall s) of ``pages`` pages after ``warmup``."""
    from annotate.ocr1 import records
    from synth.ocr1 import generate
    from synth.rows import sample_to_row
    from synth.shards import encode_table
    from synth.worker import settle_gc

    def run(seeds, timings):
        rows = []
        for s in seeds:
            sample = generate(cfg, np.random.default_rng(s), timings)
            c = time.process_time()
            rows.append(sample_to_row(f"bench/00000/{s:05d}", sample, records(sample)))
            timings["rows"] = timings.get("rows", 0.0) + time.process_time() - c
        c = time.process_time()
        encode_table(rows)
        timings["rows"] = timings.get("rows", 0.0) + time.process_time() - c

    if warmup:
        run(range(100_000, 100_000 + warmup), {})
    settle_gc(force=True)  # as a worker does after its first row
    timings: dict[str, float] = {}
    t, c = time.perf_counter(), time.process_time()
    run(range(seed0, seed0 + pages), timings)
    return timings, time.process_time() - c, time.perf_counter() - t


def _recipe(path: Path, pages: int, shards: int, args) -> None:
    cfg = {"scan_prob": args.scan_prob, "photo_prob": args.photo_prob, "long_side": args.long_side,
           "image_format": args.format}
    if args.jpeg_quality is not None:
        cfg["jpeg_quality"] = args.jpeg_quality
    path.write_text(json.dumps({"name": "bench-ocr1", "seed": 7, "shards": shards, "rows_per_shard": pages // shards,
                                "mixture": {"ocr1": {"weight": 1.0, "config": cfg}}}))


def whole_process(pages: int, shards: int, workers: int, args, again: bool = False) -> tuple[float, float, float]:
    """(child CPU s, wall s, bytes per page) of one ``python -m synth`` run; with ``again``,
    of a second run on the finished output instead (the driver alone: nothing to make)."""
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Path(tmp) / "recipe.yaml"  # JSON is YAML
        _recipe(recipe, pages, shards, args)
        env = installed_env(PYTHONPATH=str(ROOT))
        if args.cold:
            env["SYNTH_CACHE_DIR"] = str(Path(tmp) / "cache")
        cmd = [sys.executable, "-m", "synth", str(recipe), "--out", str(Path(tmp) / "out"), "--executor", "local",
               "--workers", str(workers), "--no-progress"]
        for _ in range(2 if again else 1):
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(cmd, env=env, cwd=str(ROOT), check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - t
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        manifest = json.loads((Path(tmp) / "out" / "manifest.json").read_text())
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return cpu, wall, manifest["totals"]["bytes"] / pages


_SPAWN_PROBE = """
import concurrent.futures as cf, multiprocessing as mp, sys, time
import synth.worker as W
from synth.threads import one_thread_children
if __name__ == "__main__":
    best = None
    for _ in range(int(sys.argv[1])):
        t = time.perf_counter()
        with one_thread_children():
            ex = cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=W.watch_parent)
            fut = ex.submit(W.dedicate_process)
        fut.result()
        dt = time.perf_counter() - t
        ex.shutdown()
        best = dt if best is None else min(best, dt)
    print(best)
"""


def spawn_cost(repeat: int) -> float:
    """Wall seconds until a spawned pool worker (as ``--workers k`` starts them) has run a
    first, empty task: what it pays that a 1-worker run, made in the driver, does not (an
    interpreter, and the imports the driver already holds)."""
    out = subprocess.run([sys.executable, "-c", _SPAWN_PROBE, str(max(3, repeat))], env=installed_env(PYTHONPATH=str(ROOT)),
                         cwd=str(ROOT), check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def _ssim_map(a: np.ndarray, b: np.ndarray, k: int = 7) -> np.ndarray:
    """Per-pixel SSIM of two grey images over k x k windows (box means from integral images)."""
    def box(x):
        c = np.pad(x, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
        return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)

    a, b = a.astype(np.float64), b.astype(np.float64)
    ma, mb = box(a), box(b)
    va, vb, cov = box(a * a) - ma ** 2, box(b * b) - mb ** 2, box(a * b) - ma * mb
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))


def _tesseract_recall(img, text: str, lang: str) -> float:
    """Share of the page's words (ideographs in Chinese) that Tesseract reads in ``img``."""
    import collections
    import re
    import shutil

    if shutil.which("tesseract") is None:
        raise SystemExit("--tesseract: the tesseract binary is not installed (apt-get install tesseract-ocr "
                         "tesseract-ocr-chi-sim)")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "page.png")
        img.save(path)
        got = subprocess.run(["tesseract", path, "-", "--psm", "3", "-l", "chi_sim" if lang == "zh" else "eng"],
                             capture_output=True, text=True).stdout
    pick = (lambda t: [c for c in t if "\u4e00" <= c <= "\u9fff"]) if lang == "zh" else \
        (lambda t: re.findall(r"[A-Za-z]{3,}", t))
    want, seen = collections.Counter(pick(text)), collections.Counter(pick(got))
    return sum((want & seen).values()) / max(1, sum(want.values()))


def stored_bytes(pages: int, qualities: list[int], tesseract: bool) -> None:
    """Print bytes per page and legibility per JPEG quality (see the module's doc)."""
    import io

    from PIL import Image

    from annotate.ocr1 import records
    from synth.ocr1 import Config, generate
    from synth.rows import sample_to_row
    from synth.shards import encode_table
    from formats.bins import bins_to_box

    acc: dict = {q: {"img": [], "rest": [], "ssim": [], "ssim_text": [], "ocr": []} for q in ["lossless", *qualities]}
    schema_only = len(encode_table([]))  # written once per shard, not per page
    for seed in range(pages):
        page = generate(Config(image_format="png"), np.random.default_rng(seed))
        ref = Image.open(io.BytesIO(page.image)).convert("RGB")
        grey_ref = np.asarray(ref.convert("L"))
        text_mask = np.zeros(grey_ref.shape, dtype=bool)
        h, w = grey_ref.shape
        for _t, box in page.truth["words"]:
            x0, y0, x1, y1 = bins_to_box(box, w, h)
            text_mask[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))] = True
        text_mask = text_mask[3:-3, 3:-3]  # the SSIM map's valid area (7x7 windows)
        for q in acc:
            if q == "lossless":
                img, data = ref, page.image
            else:
                buf = io.BytesIO()
                ref.save(buf, format="JPEG", quality=q, subsampling=2, optimize=False, progressive=False)
                data = buf.getvalue()
                img = Image.open(io.BytesIO(data)).convert("RGB")
            row = sample_to_row("bench/00000/00000", page, records(page))
            row["image"] = {"bytes": data, "path": row["image"]["path"]}
            acc[q]["rest"].append(len(encode_table([dict(row, image=None)])) - schema_only)
            acc[q]["img"].append(len(data))
            smap = _ssim_map(grey_ref, np.asarray(img.convert("L")))
            acc[q]["ssim"].append(float(smap.mean()))
            acc[q]["ssim_text"].append(float(smap[text_mask].mean()) if text_mask.any() else 1.0)
            if tesseract:
                acc[q]["ocr"].append(_tesseract_recall(img, page.text, page.lang))
    print(f"stored bytes and legibility: {pages} clean pages (default language mix), JPEG 4:2:0 vs the lossless PNG")
    for q, a in acc.items():
        label = "PNG (lossless)" if q == "lossless" else f"JPEG q{q}"
        ocr = f", Tesseract recall {np.mean(a['ocr']):.3f}" if a["ocr"] else ""
        print(f"  {label:15s} image {np.mean(a['img']) / 1e3:6.1f} KB + rest of row {np.mean(a['rest']) / 1e3:5.1f} KB "
              f"= {(np.mean(a['img']) + np.mean(a['rest'])) / 1e3:6.1f} KB; SSIM page {np.mean(a['ssim']):.4f}, "
              f"text {np.mean(a['ssim_text']):.4f}{ocr}")


def _anon_mb() -> float:
    """This process's private resident memory (``RssAnon``), MB; 0 where /proc has no such line."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def memory(cfg, pages: int) -> None:
    """Print the process's private memory every ``pages // 10`` pages of ``pages``."""
    from annotate.ocr1 import records
    from synth.ocr1 import generate
    from synth.rows import sample_to_row
    from synth.worker import settle_gc

    step = max(1, pages // 10)
    print(f"memory: private resident memory (RssAnon) after every {step} pages")
    for i in range(pages):
        sample = generate(cfg, np.random.default_rng(i))
        sample_to_row(f"bench/00000/{i:05d}", sample, records(sample))
        if i == 0:
            settle_gc(force=True)
        if (i + 1) % step == 0:
            print(f"  {i + 1:6d} pages: {_anon_mb():6.0f} MB", flush=True)


def ink(pages: int) -> None:
    """Print, per language and font, the share of lines whose glyphs cross their box."""
    from synth.ocr1 import Config
    from synth.ocr1.config import BLOCK_KINDS
    from synth.ocr1.inkcheck import survey

    blocks = {k: v for k, v in Config().blocks.items() if k in BLOCK_KINDS and not k.startswith("sideways")}
    print(f"ink check: {pages} pages per language, line boxes (PyMuPDF's glyph cells) against the ink "
          "at 2 px/pt")
    for lang in ("en", "zh"):
        cfg = Config(langs={lang: 1.0}, blocks=blocks, margin_note_prob=0.0)
        for (lg, family), st in sorted(survey(cfg, range(pages)).items()):
            n = max(1, st["lines"])
            print(f"  {lg} {family:18s} {st['lines']:5d} lines: ink above the box {100 * st['above'] / n:5.1f} % "
                  f"(at most {st['max_above_pt']:.1f} pt), below {100 * st['below'] / n:5.1f} % "
                  f"(at most {st['max_below_pt']:.1f} pt)")


def main(argv=None) -> None:
    """Print the steady state per stage, the start-up, and (asked) the 2-worker speed-up."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=100, help="pages per timed steady-state run (default 100)")
    ap.add_argument("--warmup", type=int, default=100, help="pages generated before timing (default 100)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each figure; the best is reported (default 3)")
    ap.add_argument("--long-side", type=int, default=1024)
    ap.add_argument("--format", default="jpeg", choices=("jpeg", "png"))
    ap.add_argument("--jpeg-quality", type=int, default=None, help="override Config.jpeg_quality")
    ap.add_argument("--scan-prob", type=float, default=0.0, help="share of pages with the scan look (default 0)")
    ap.add_argument("--photo-prob", type=float, default=0.0, help="share of pages photographed (default 0)")
    ap.add_argument("--no-steady", action="store_true", help="skip the in-process steady state")
    ap.add_argument("--no-startup", action="store_true", help="skip the whole-process runs of 20 and 100 pages")
    ap.add_argument("--cold", action="store_true", help="whole-process runs start with an empty node cache")
    ap.add_argument("--workers", type=int, default=0, help="also time 200 pages on 1 and on this many workers")
    ap.add_argument("--worker-pages", type=int, default=200,
                    help="pages of the --workers runs, in shards of 50 (default 200)")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of one steady-state run")
    ap.add_argument("--ink", type=int, default=0, metavar="N",
                    help="only measure line boxes against their ink on N pages per language")
    ap.add_argument("--bytes", type=int, default=0, metavar="N",
                    help="only measure bytes per page and legibility per JPEG quality on N pages")
    ap.add_argument("--memory", type=int, default=0, metavar="N",
                    help="only print this process's memory as it makes N pages")
    ap.add_argument("--qualities", default="90,80,75,70,65,60", help="JPEG qualities for --bytes")
    ap.add_argument("--tesseract", action="store_true", help="--bytes: also OCR every page with Tesseract")
    args = ap.parse_args(argv)
    if args.worker_pages < 50 or args.worker_pages % 50:
        ap.error(f"--worker-pages {args.worker_pages}: give a multiple of 50 (shards of 50 pages)")
    sys.path.insert(0, str(ROOT))
    if args.ink:
        ink(args.ink)
        return
    if args.bytes:
        stored_bytes(args.bytes, [int(q) for q in args.qualities.split(",")], args.tesseract)
        return
    cfg = _config(args)
    if args.memory:
        memory(cfg, args.memory)
        return
    look = "photographed" if args.photo_prob >= 1 else "scanned" if args.scan_prob >= 1 else \
        f"scan_prob {args.scan_prob}, photo_prob {args.photo_prob}"
    print(f"ocr1 bench: {look}, {args.format} q{cfg.jpeg_quality}, long side {args.long_side}, "
          f"{args.pages} pages x {args.repeat} runs after {args.warmup} warm-up pages")

    if not args.no_steady:
        best = None
        for _ in range(args.repeat):
            got = steady(cfg, args.pages, args.warmup if best is None else 0)
            if best is None or got[1] < best[1]:
                best = got
        timings, cpu, wall = best
        n = args.pages
        print("steady state, CPU ms per page by stage:")
        for stage in STAGES:
            print(f"  {stage:10s} {1000 * timings.get(stage, 0.0) / n:6.2f}")
        floor = timings.get("raster", 0.0) + timings.get("encode", 0.0)
        print(f"  {'total':10s} {1000 * cpu / n:6.2f}  = {n / cpu:5.1f} pages/s/core CPU "
              f"(wall {1000 * wall / n:.2f} ms = {n / wall:.1f} pages/s)")
        print(f"floor (raster + encode): {1000 * floor / n:.2f} ms CPU = {n / floor:.1f} pages/s; "
              f"full / floor = {cpu / floor:.2f}")

    if not args.no_startup:
        runs = {p: min((whole_process(p, 1, 1, args) for _ in range(args.repeat)), key=lambda r: r[0]) for p in (20, 100)}
        (c20, w20, b20), (c100, w100, b100) = runs[20], runs[100]
        per_page = (c100 - c20) / 80
        print(f"whole process ({'cold' if args.cold else 'warm'} node cache), python -m synth, 1 worker:")
        print(f"  20 pages: {c20:.2f} s CPU ({w20:.2f} s wall); 100 pages: {c100:.2f} s CPU ({w100:.2f} s wall)")
        print(f"  per page {1000 * per_page:.1f} ms CPU; start-up {c20 - 20 * per_page:.2f} s CPU "
              f"(20-page run less 20 pages)")
        print(f"  bytes per page: {b20 / 1e3:.1f} KB (20 pages), {b100 / 1e3:.1f} KB (100 pages)")
    if args.workers > 1:
        k, n = args.workers, args.worker_pages
        one = [whole_process(n, n // 50, 1, args) for _ in range(args.repeat)]
        many = [whole_process(n, n // 50, k, args) for _ in range(args.repeat)]
        driver = min(whole_process(n, n // 50, k, args, again=True)[0] for _ in range(args.repeat))
        w1, wk = min(r[1] for r in one), min(r[1] for r in many)
        c1, ck = min(r[0] for r in one), min(r[0] for r in many)
        # On k free cores the run lasts the driver plus one worker's share of the rest.
        est = c1 / (driver + (ck - driver) / k)
        print(f"{n} pages ({n // 50} shards of 50): 1 worker {w1:.2f} s wall ({c1:.2f} s CPU), {k} workers {wk:.2f} s wall "
              f"({ck:.2f} s CPU over all processes): {w1 / wk:.2f}x by wall time; the driver alone {driver:.2f} s CPU, "
              f"so on {k} free cores {est:.2f}x (1-worker CPU / (driver + the rest's CPU / {k}))")
        if not args.no_startup:
            # Each process pays the start-up once (in parallel), then the pages split: even
            # with free cores and a perfect split, k workers cannot beat this.
            startup = c20 - 20 * per_page
            ceiling = (startup + n * per_page) / (startup + n * per_page / k)
            print(f"  ceiling: a start-up of {startup:.2f} s and {1000 * per_page:.1f} ms a page allow at most "
                  f"{ceiling:.2f}x on {k} workers ((start-up + {n} pages) / (start-up + {n} pages / {k}))")
            # The 1-worker run is made in the driver; k workers are spawned, and each first
            # pays an interpreter and the imports the driver holds (in parallel, so once).
            spawn = spawn_cost(args.repeat)
            pool = (startup + n * per_page) / (startup + spawn + n * per_page / k)
            print(f"  a spawned worker's own start: {spawn:.2f} s, so spawned workers allow at most {pool:.2f}x "
                  f"((start-up + {n} pages) / (start-up + spawn + {n} pages / {k}))")
    if args.profile:
        import cProfile
        import pstats

        pr = cProfile.Profile()
        pr.enable()
        steady(cfg, args.pages, 0)
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
