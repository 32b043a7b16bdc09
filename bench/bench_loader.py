"""Loader throughput: images/s of the training DataLoader for N workers and a mode.

    python bench/bench_loader.py --data DIR --mode base --workers 0 2 4 --batches 20
    python bench/bench_loader.py --recipe manifests/ocr1_demo.yaml --mode gundam --workers 2

With --recipe the shards are generated first (into --shard-dir). Each worker count reads
``--batches`` batches after one warm-up batch and prints images/s and examples/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.configs import get_config  # noqa: E402
from train.data import BucketBatchSampler, DataConfig, EpochStream, OCRDataset, ShardSet, iter_texts, make_loader  # noqa: E402
from train.tokenizer import OCRTokenizer, train_tokenizer  # noqa: E402


def ensure_shards(recipe: str, root: str, rows: int) -> str:
    """Generate ``rows`` rows of the recipe under ``root`` (in-process, 2 workers) and return the folder.

    The folder is named after the recipe, its fingerprint and the row count, so runs of
    other sizes, or of a recipe whose resolved options changed, never collide, and a
    finished folder is reused (the runner skips shards already written).
    """
    from synth.recipe import load_recipe
    from synth.runner import generate_dataset

    rec = load_recipe(recipe, overrides={"shards": 2, "rows_per_shard": max(1, rows // 2)})
    out = str(Path(root) / f"{Path(recipe).stem}-{rec.fingerprint()[:12]}-{rows}")
    generate_dataset(rec, out, workers=2, executor="local", progress=False)
    return out


def measure(ds: OCRDataset, batch_size: int, workers: int, batches: int) -> dict[str, float]:
    """Images/s and examples/s of a fresh loader over ``batches`` batches (after one warm-up),
    across epochs as the trainer reads them (one loader, its workers kept)."""
    sampler = BucketBatchSampler(ds.lengths, ds.groups, batch_size, seed=0)
    it = iter(make_loader(ds, EpochStream(sampler, 0), workers))
    next(it)
    n_img = n_ex = 0
    t0 = time.perf_counter()
    for _ in range(batches):
        b = next(it)
        n_img += b["n_images"]
        n_ex += len(b["index"])
    dt = time.perf_counter() - t0
    return {"workers": workers, "images_per_s": n_img / dt, "examples_per_s": n_ex / dt, "seconds": dt}


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="*", default=[])
    p.add_argument("--recipe", default="", help="generate shards from this recipe first")
    p.add_argument("--shard-dir", default="/tmp/bench_shards", help="generated shards go to a subfolder of this")
    p.add_argument("--rows", type=int, default=32)
    p.add_argument("--config", default="small")
    p.add_argument("--mode", nargs="+", default=["base"], help="resolution mode(s); several are drawn per example")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--tokenizer", default="", help="tokenizer.json (default: train a 4k BPE on the data)")
    p.add_argument("--json", default="", help="also write results here")
    a = p.parse_args(argv)
    data = a.data or [ensure_shards(a.recipe or "manifests/ocr1_demo.yaml", a.shard_dir, a.rows)]
    shards = ShardSet(data)
    tok = OCRTokenizer.load(a.tokenizer) if a.tokenizer else train_tokenizer(iter_texts(shards), 4096)
    ds = OCRDataset(shards, tok, get_config(a.config).encoder, DataConfig(modes=tuple(a.mode)))
    results = []
    for w in a.workers:
        r = measure(ds, a.batch_size, w, a.batches)
        results.append(r)
        print(f"mode {'+'.join(a.mode):>6} config {a.config} workers {w:>2}: {r['images_per_s']:8.1f} images/s "
              f"{r['examples_per_s']:8.1f} examples/s", flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps({"mode": a.mode, "config": a.config, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
