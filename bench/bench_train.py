"""Training throughput: tokens/s, MFU, and loader images/s against step images/s.

    python bench/bench_train.py --steps 40 --batch-size 16                 # GPU: small, bf16
    python bench/bench_train.py --config tiny --steps 4 --batch-size 2 \\
        --rows 8 --device cpu                                              # CPU smoke check

Generates shards in-process from a recipe (synth.runner.generate_dataset), trains
``--config`` (stage 2 from scratch unless ``--stage 1``) for ``--steps`` with
``python -m train``'s loop (bf16 autocast on CUDA), and reports the second half of the run
(the first half is warm-up and compilation).

MFU is given against three denominators, so no reader has to guess which was used:
``--peak-flops`` (DESIGN.md §5's anchor, 790 TFLOP/s: what dense bf16 products reach on
this workplace's H100/H200), the card's datasheet dense bf16 peak, and a bf16 8192³ matrix
product timed on the card just before training. ``--profile`` adds a table of the
costliest kernels of a few steps. Writes everything to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.bench_loader import ensure_shards, measure  # noqa: E402
from train.loop import LOG_FILE, RUN_FILE, TrainArgs, Trainer  # noqa: E402

# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's datasheets, FLOP/s, by the
# substring of torch.cuda.get_device_name() that identifies the part.
DATASHEET_BF16 = (
    ("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989.4e12), ("H200", 989.4e12), ("H800", 989.4e12),
    ("GH200", 989.4e12), ("B200", 2250e12), ("A100", 312e12), ("L40S", 362e12), ("A10G", 70e12),
)


def datasheet_peak(name: str) -> float | None:
    """The datasheet dense bf16 FLOP/s of a CUDA device name, or None when not listed."""
    for key, peak in DATASHEET_BF16:
        if key in name:
            return peak
    return None


def gemm_peak(device: torch.device, n: int = 8192, reps: int = 20) -> float:
    """FLOP/s of an n³ bf16 matrix product on ``device`` (random operands, median of reps)."""
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16, generator=gen)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16, generator=gen)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    times.sort()
    return 2 * n ** 3 / times[len(times) // 2]


def profile_steps(trainer: Trainer, steps: int, rows: int) -> str:
    """torch.profiler table of the ``rows`` costliest ops over ``steps`` more training steps."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if trainer.dev.type == "cuda" else [])
    it = trainer.batches()
    with profile(activities=acts) as prof:
        for _ in range(steps):
            trainer.train_step([next(it) for _ in range(trainer.args.grad_accum)])
        if trainer.dev.type == "cuda":
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if trainer.dev.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def compiled_graphs() -> int:
    """Graphs torch.compile has built in this process so far (0 without --compile)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def host_syncs(trainer: Trainer) -> list[str]:
    """The synchronizing CUDA calls one more training step makes (torch's sync debug mode);
    empty when the host can queue the next step while the device runs this one."""
    import warnings

    it = trainer.batches()
    micro = [next(it) for _ in range(trainer.args.grad_accum)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            trainer._step(micro)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        torch.cuda.synchronize()
    return sorted({f"{Path(w.filename).name}:{w.lineno}: {str(w.message).splitlines()[0]}"
                   for w in caught if "called a synchronizing" in str(w.message)})


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="manifests/ocr1_demo.yaml")
    p.add_argument("--rows", type=int, default=64, help="rows to generate")
    p.add_argument("--shard-dir", default="/tmp/bench_shards", help="generated shards go to a subfolder of this")
    p.add_argument("--data", nargs="*", default=[], help="use these shards instead of generating")
    p.add_argument("--config", default="small")
    p.add_argument("--stage", type=int, default=2)
    p.add_argument("--mode", nargs="+", default=["base"], help="resolution mode(s); several are drawn per example")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--max-batch-tokens", type=int, default=0, help="token budget per batch (TrainArgs)")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--max-len", type=int, default=4096)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--compile-scope", default="blocks", help="blocks or model (TrainArgs.compile_scope)")
    p.add_argument("--grad-checkpoint", action="store_true", help="recompute blocks in backward")
    p.add_argument("--cudnn-attention", action="store_true", help="let SDPA use cuDNN attention (TrainArgs)")
    p.add_argument("--sam-flex", action="store_true",
                   help="frozen SAM's global attention through FlexAttention, not SDPA's key-dim form (TrainArgs)")
    p.add_argument("--device", default="auto")
    p.add_argument("--peak-flops", type=float, default=790e12, help="MFU denominator (DESIGN.md §5 anchor)")
    p.add_argument("--profile", type=int, default=0, metavar="STEPS", help="profile this many extra steps")
    p.add_argument("--out", default="/tmp/bench_train_run")
    p.add_argument("--json", default="bench_train.json")
    a = p.parse_args(argv)
    data = a.data or [ensure_shards(a.recipe, a.shard_dir, a.rows)]
    shutil.rmtree(a.out, ignore_errors=True)
    half = max(1, a.steps // 2)
    args = TrainArgs(config=a.config, stage=a.stage, data=data, out=a.out, mode=a.mode, batch_size=a.batch_size,
                     grad_accum=a.grad_accum, steps=a.steps, warmup=max(1, a.steps // 10), lr=3e-4,
                     workers=a.workers, max_len=a.max_len, log_every=half, compile=a.compile, compile_scope=a.compile_scope, grad_checkpoint=a.grad_checkpoint,
                     cudnn_attention=a.cudnn_attention, sam_flex_attention=a.sam_flex, checkpoints=False,
                     max_batch_tokens=a.max_batch_tokens, device=a.device, peak_flops=a.peak_flops)
    trainer = Trainer(args)
    cuda = trainer.dev.type == "cuda"
    name = torch.cuda.get_device_name(trainer.dev) if cuda else platform.processor() or "cpu"
    measured = gemm_peak(trainer.dev) if cuda else None
    sheet = datasheet_peak(name) if cuda else None
    loader = measure(trainer.dataset, a.batch_size, a.workers, batches=max(4, half))
    # Every batch's padded tokens and images (fit, the sync check and the profile): the
    # peak memory belongs to the largest, which bench/bench_memory.py predicts.
    shapes: list[tuple[int, int]] = []
    batches = trainer.batches

    def recorded():
        for b in batches():
            shapes.append((b["input_ids"].numel(), b["n_images"]))
            yield b

    trainer.batches = recorded
    # Graphs built by each log step: a rise in the second half means the measured window
    # paid for a compilation.
    graphs_at_log: list[int] = []
    log = trainer._log
    trainer._log = lambda *args: (graphs_at_log.append(compiled_graphs()), log(*args))[1]
    t0 = time.perf_counter()
    trainer.fit()
    wall = time.perf_counter() - t0
    logs = [json.loads(x) for x in (Path(a.out) / LOG_FILE).read_text().splitlines()]
    last = logs[-1]
    model_flops_per_s = last["model_flops_per_s"]
    m = trainer.model
    report = {
        "device": f"{trainer.dev} ({name})", "torch": torch.__version__,
        **{k: json.loads((Path(a.out) / RUN_FILE).read_text())[k] for k in ("moe_kernel", "sam_attention")},
        "config": a.config, "stage": a.stage, "mode": a.mode, "batch_size": a.batch_size,
        "grad_accum": a.grad_accum, "steps": a.steps, "compile": a.compile,
        "compile_scope": a.compile_scope if a.compile else None, "compiled_graphs_at_log": graphs_at_log,
        "workers": a.workers,
        "grad_checkpoint": a.grad_checkpoint, "cudnn_attention": a.cudnn_attention,
        "max_batch_tokens": a.max_batch_tokens,
        "params": m.num_params(False), "active_params": m.num_params(True),
        "tokens_per_s": last["tokens_per_s"], "target_tokens_per_s": last["target_tokens_per_s"],
        "model_tflops_per_s": model_flops_per_s / 1e12,
        "mfu": last.get("mfu"), "peak_flops": a.peak_flops,  # no MFU on CPU (no known peak)
        "mfu_vs_datasheet": model_flops_per_s / sheet if sheet else None, "datasheet_peak_flops": sheet,
        "mfu_vs_measured_gemm": model_flops_per_s / measured if measured else None, "measured_gemm_flops": measured,
        "step_images_per_s": last["images_per_s"], "loader_images_per_s": loader["images_per_s"],
        "data_wait_frac": last["data_wait_frac"], "step_s": last["step_s"], "final_loss": last["loss"],
        "max_memory_gib": torch.cuda.max_memory_allocated(trainer.dev) / 2 ** 30 if cuda else None,
        "fit_wall_s": wall, "log": logs,
    }
    if cuda:
        report["host_syncs_per_step"] = host_syncs(trainer)
    if a.profile:
        report["profile"] = profile_steps(trainer, a.profile, 25)
    report["batches"] = len(shapes)
    report["max_batch_padded_tokens"] = max((t for t, _ in shapes), default=0)
    report["max_batch_images"] = max((n for _, n in shapes), default=0)
    Path(a.json).write_text(json.dumps(report, indent=1))
    sheet_txt = f", {report['mfu_vs_datasheet']:.1%} of datasheet" if sheet else ""
    gemm_txt = f", {report['mfu_vs_measured_gemm']:.1%} of a measured {measured / 1e12:.0f} TFLOP/s GEMM" if measured else ""
    print(f"{report['device']}: {report['tokens_per_s']:.0f} tokens/s, {report['model_tflops_per_s']:.1f} model TFLOP/s, "
          + (f"MFU {report['mfu']:.1%} of {a.peak_flops / 1e12:.0f} TFLOP/s{sheet_txt}{gemm_txt}; "
             if report["mfu"] is not None else "")
          + f"step {report['step_images_per_s']:.1f} images/s vs loader {report['loader_images_per_s']:.1f} images/s "
          f"({a.workers} workers), data wait {report['data_wait_frac']:.0%} -> {a.json}")
    if cuda:
        print(f"synchronizing calls in a step: {report['host_syncs_per_step'] or 'none'}")
    if a.profile:
        print(report["profile"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
