"""Training throughput: tokens/s, MFU, and loader images/s against step images/s.

    python bench/bench_train.py --steps 40 --batch-size 16                 # GPU: small, bf16
    python bench/bench_train.py --config tiny --steps 3 --batch-size 2 \\
        --rows 8 --device cpu                                              # CPU smoke check

Generates shards in-process from a recipe (synth.runner.generate_dataset), trains
``--config`` (stage 2 from scratch) for ``--steps`` with ``python -m train``'s loop (bf16
autocast on CUDA), and reports the second half of the run (the first half is warm-up).
Writes everything to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_loader import ensure_shards, measure  # noqa: E402
from train.loop import LOG_FILE, TrainArgs, Trainer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="manifests/ocr1_demo.yaml")
    p.add_argument("--rows", type=int, default=64, help="rows to generate")
    p.add_argument("--shard-dir", default="/tmp/bench_shards", help="generated shards go to a subfolder of this")
    p.add_argument("--data", nargs="*", default=[], help="use these shards instead of generating")
    p.add_argument("--config", default="small")
    p.add_argument("--stage", type=int, default=2)
    p.add_argument("--mode", default="base")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--max-len", type=int, default=4096)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--peak-flops", type=float, default=790e12)
    p.add_argument("--out", default="/tmp/bench_train_run")
    p.add_argument("--json", default="bench_train.json")
    a = p.parse_args(argv)
    data = a.data or [ensure_shards(a.recipe, a.shard_dir, a.rows)]
    shutil.rmtree(a.out, ignore_errors=True)
    half = max(1, a.steps // 2)
    args = TrainArgs(config=a.config, stage=a.stage, data=data, out=a.out, mode=a.mode, batch_size=a.batch_size,
                     steps=a.steps, warmup=max(1, a.steps // 10), lr=3e-4, workers=a.workers, max_len=a.max_len,
                     log_every=half, save_every=10 ** 9, compile=a.compile, device=a.device,
                     peak_flops=a.peak_flops)
    trainer = Trainer(args)
    loader = measure(trainer.dataset, a.batch_size, a.workers, batches=max(4, half))
    trainer.fit()
    logs = [json.loads(x) for x in (Path(a.out) / LOG_FILE).read_text().splitlines()]
    last = logs[-1]
    m = trainer.model
    report = {
        "device": str(trainer.dev) + (f" ({__import__('torch').cuda.get_device_name()})" if trainer.dev.type == "cuda" else ""),
        "config": a.config, "stage": a.stage, "mode": a.mode, "batch_size": a.batch_size, "steps": a.steps,
        "params": m.num_params(False), "active_params": m.num_params(True),
        "tokens_per_s": last["tokens_per_s"], "target_tokens_per_s": last["target_tokens_per_s"],
        "mfu": last["mfu"], "step_images_per_s": last["images_per_s"], "loader_images_per_s": loader["images_per_s"],
        "data_wait_frac": last["data_wait_frac"], "step_s": last["step_s"], "final_loss": last["loss"],
        "peak_flops": a.peak_flops, "log": logs,
    }
    Path(a.json).write_text(json.dumps(report, indent=1))
    print(f"{report['device']}: {report['tokens_per_s']:.0f} tokens/s, MFU {report['mfu']:.3%}, "
          f"step {report['step_images_per_s']:.1f} images/s vs loader {report['loader_images_per_s']:.1f} images/s "
          f"({a.workers} workers), data wait {report['data_wait_frac']:.0%} -> {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
