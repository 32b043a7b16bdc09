"""SAM attention with the relative-position bias: key-dim form against the [L, L] mask form.

    python bench/bench_sam_attention.py                        # CPU: paper SAM at 512 px
    python bench/bench_sam_attention.py --size 1024 1280 --batch 8 --device cuda --dtype bf16

Runs one SAM block's attention (global, so L = (size/16)^2 tokens) forward and backward in
both forms, and reports time and peak memory per form: the mask form
(``mask_rel_pos_attention``, SAM's own) materialises a
[batch, heads, L, L] bias and keeps it for backward; the key-dim form never builds it.

``--forward-only`` times the forward without autograd, as frozen SAM runs in stage 2, and
adds the FlexAttention form (``flex_rel_pos_attention``: the bias added in the kernel, at
the head dim of 64 instead of the key-dim form's 192 for a 1024 px page), which the trainer
uses there on CUDA. Its first call compiles the kernel, outside the timed repetitions.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from train.configs import get_config  # noqa: E402
from train.model.sam import flex_rel_pos_attention, mask_rel_pos_attention, rel_pos_attention  # noqa: E402


FORMS = {"mask": mask_rel_pos_attention, "keydims": rel_pos_attention, "flex": flex_rel_pos_attention}


def run_one(form: str, size: int, batch: int, device: str, dtype: str, reps: int, forward_only: bool = False) -> dict:
    """Time and peak memory of one form (call in a fresh process for a clean CPU peak)."""
    enc = get_config("paper").encoder
    g, nh, d = size // enc.patch_size, enc.sam_heads, enc.sam_width // enc.sam_heads
    dt = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype]
    dev = torch.device(device)
    grad = not forward_only
    q, k, v = (torch.randn(batch, nh, g * g, d, device=dev, dtype=dt, requires_grad=grad) for _ in range(3))
    tabs = [torch.randn(2 * g - 1, d, device=dev, dtype=dt, requires_grad=grad) for _ in range(2)]
    fn = FORMS[form]
    times = []
    for i in range(reps + 1):
        if dev.type == "cuda":
            torch.cuda.synchronize()
            if i == 1:
                torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        if forward_only:
            with torch.no_grad():
                fn(q, k, v, tabs[0], tabs[1], g, g)
        else:
            fn(q, k, v, tabs[0], tabs[1], g, g).float().sum().backward()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first is warm-up
            times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"form": form, "size": size, "tokens": g * g, "batch": batch, "device": device, "dtype": dtype,
            "pass": "forward" if forward_only else "forward+backward",
            "ms": 1e3 * sorted(times)[len(times) // 2], "peak_gib": peak / 2 ** 30}


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: each (size, form) runs in its own process."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, nargs="+", default=[512])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--forward-only", action="store_true", help="forward without autograd; adds the flex form")
    p.add_argument("--json", default="")
    p.add_argument("--one", nargs=2, metavar=("FORM", "SIZE"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.one:
        print(json.dumps(run_one(a.one[0], int(a.one[1]), a.batch, a.device, a.dtype, a.reps, a.forward_only)))
        return 0
    rows = []
    for size in a.size:
        for form in ("mask", "keydims", "flex") if a.forward_only else ("mask", "keydims"):
            cmd = [sys.executable, __file__, "--one", form, str(size), "--batch", str(a.batch), "--device", a.device,
                   "--dtype", a.dtype, "--reps", str(a.reps)] + (["--forward-only"] if a.forward_only else [])
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode:
                rows.append({"form": form, "size": size, "error": res.stderr.strip().splitlines()[-1]})
            else:
                rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    print(f"{'size':>6}{'tokens':>8}{'form':>9}{'ms fwd' if a.forward_only else 'ms fwd+bwd':>12}{'peak GiB':>10}")
    for r in rows:
        if "error" in r:
            print(f"{r['size']:>6}{'':>8}{r['form']:>9}  failed: {r['error']}")
        else:
            print(f"{r['size']:>6}{r['tokens']:>8}{r['form']:>9}{r['ms']:>12.1f}{r['peak_gib']:>10.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
