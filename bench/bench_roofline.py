"""Where a training step's GPU time goes, counted on CPU: FLOPs and memory traffic op by op.

    python bench/bench_roofline.py --config paper --rows 16 --length 1273     # eager, H200
    python bench/bench_roofline.py --config small --rows 16 --length 1073 --gpu h100
    python bench/bench_roofline.py --config paper --top 30 --json roofline.json

The script builds the model under ``FakeTensorMode`` (no weights are allocated, so the
paper config takes seconds) and runs one stage-2 (or ``--stage 1``) training step's forward
and backward on a batch of ``--rows`` rows of ``--length`` tokens with one ``--mode`` image
each, under bf16 autocast, with the MoE experts on the grouped-GEMM path that CUDA takes.
A ``TorchDispatchMode`` records every aten operator the step runs. Eager PyTorch launches
about one kernel per operator, so the record is the eager step's kernel list: for each,
its FLOPs (torch's own counting rules; grouped GEMM and attention added here) and the
bytes of the distinct tensors it reads and writes. Views cost nothing.

A roofline turns that into time: each kernel takes the longer of its FLOPs at the GPU's
matrix (or attention) rate and its bytes at the GPU's memory bandwidth, plus a launch
floor. The optimizer step is added: fused AdamW reads a trained parameter, its gradient and
two moments and writes three (28 bytes), and gradient clipping reads the gradients for the
norm and scales them in place (12). Against run 2 of docs/gpu.md (paper, batch 16, eager,
H200: 473 ms a step, 23.2 % MFU) the code of that run gives 70 % of the measured time; the
rest is what a roofline leaves out (kernels below peak bandwidth or peak FLOP/s, the sorts
of accumulating scatters, gaps between kernels).

What it is for: it says which operators move the bytes, so a change that cuts traffic is
measured here, exactly, before any GPU run; and the share of elementwise work says what
``torch.compile`` (which fuses it) can win at most.

``--compiled`` estimates the step as ``python -m train --compile`` runs it (blocks compiled
one by one). Each decoder block kind and the CLIP block is compiled by inductor on CPU at
two sizes; a hook on inductor's scheduler (a private API) reads the bytes every fused
kernel reads and writes, forward and backward, which scale to the step's tokens (images,
for CLIP). The blocks' eager elementwise, cast and gather kernels are replaced by those;
products, attention, the rest of the step (SAM, frozen and uncompiled here; the head and
loss) and the optimizer stay as counted. Inductor fuses for CPU here, not for Triton, so it
is an estimate of what fusion leaves, not of the GPU's kernels.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch._functorch.config  # noqa: E402
import torch._inductor.config  # noqa: E402
from torch._subclasses.fake_tensor import FakeTensorMode  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_leaves  # noqa: E402
from torch.utils.flop_counter import flop_registry  # noqa: E402

import train.model.moe as moe_mod  # noqa: E402
import train.model.sam as sam_mod  # noqa: E402
from train.configs import TILED_MODES, load_config  # noqa: E402
from train.model.ocr_model import OCRModel  # noqa: E402
from train.model.vision_inputs import VisionInput, num_image_tokens  # noqa: E402

# Operators that only make views, metadata or uninitialised buffers: no kernel, no traffic.
_FREE = frozenset({
    "view", "_unsafe_view", "t", "transpose", "permute", "expand", "slice", "select", "unsqueeze",
    "squeeze", "as_strided", "detach", "alias", "split", "split_with_sizes", "unbind", "chunk",
    "lift_fresh", "_reshape_alias", "empty", "empty_like", "new_empty", "empty_strided",
    "new_empty_strided", "view_as", "is_same_size", "_local_scalar_dense", "sym_size", "sym_stride",
    "sym_numel", "sym_storage_offset",
})
_MATMUL = frozenset({"mm", "addmm", "bmm", "baddbmm", "_grouped_mm", "convolution", "convolution_backward"})
_INDEX = frozenset({"index", "index_put", "index_put_", "index_add", "index_add_", "scatter", "scatter_",
                    "gather", "sort", "argsort", "index_select"})


@dataclass(frozen=True)
class GPU:
    """Rates a roofline uses: sustained, not datasheet (see the module docstring)."""

    name: str
    matmul_flops: float      # FLOP/s of bf16 GEMMs at the step's shapes
    fp32_matmul_flops: float  # FLOP/s of float32 GEMMs without TF32 (the MoE router's)
    attention_flops: float   # FLOP/s of flash attention (forward and backward alike)
    bandwidth: float         # bytes/s that elementwise kernels reach
    launch_s: float          # the least time a kernel takes

# Matrix rate: 90 % of the 781-786 TFLOP/s an 8192^3 bf16 product reached on the H200 of
# docs/gpu.md (the H100 SXM has the same tensor cores); float32 without TF32 (torch's
# default) 90 % of the datasheet's 67 TFLOP/s. Attention: FlashAttention-2 on Hopper, head
# dim 64-128. Bandwidth: 85 % of the datasheet's 3.35 (H100 SXM) and 4.8 TB/s (H200).
GPUS = {
    "h100": GPU("h100", 700e12, 60e12, 330e12, 0.85 * 3.35e12, 3e-6),
    "h200": GPU("h200", 700e12, 60e12, 330e12, 0.85 * 4.8e12, 3e-6),
}


@dataclass
class Op:
    """One recorded aten operator."""

    name: str
    kind: str
    flops: float
    bytes: int
    shapes: tuple
    dtypes: tuple


def op_kind(name: str) -> str:
    """matmul, attention, cast, index or elementwise (everything else: norms, activations,
    adds, copies, reductions)."""
    if name in _MATMUL:
        return "matmul"
    if "attention" in name:
        return "attention"
    if name == "_to_copy":
        return "cast"
    if name in _INDEX or name.startswith("index"):
        return "index"
    return "elementwise"


def _attention_flops(name: str, args: tuple, kwargs: dict) -> float:
    """QK^T and AV (forward), 2.5 times that in backward; half of it when causal."""
    if "backward" in name:
        _g, q, k = args[:3]
        causal = args[7] if len(args) > 7 else kwargs.get("is_causal", False)
        mult = 2.5
    else:
        q, k = args[:2]
        causal = args[4] if len(args) > 4 else kwargs.get("is_causal", False)
        mult = 1.0
    b, h, s, d = q.shape
    return mult * 4 * b * h * s * k.shape[2] * d * (0.5 if causal else 1.0)


class OpRecorder(TorchDispatchMode):
    """Records each aten operator's FLOPs and the bytes of the tensors it touches."""

    def __init__(self):
        super().__init__()
        self.ops: list[Op] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        if name in _FREE or func.namespace == "prim":
            return out
        ins = [x for x in tree_leaves((args, kwargs)) if isinstance(x, torch.Tensor)]
        tensors = {id(x): x for x in ins + [x for x in tree_leaves(out) if isinstance(x, torch.Tensor)]}
        nbytes = sum(x.numel() * x.element_size() for x in tensors.values())
        if func.overloadpacket in flop_registry:
            flops = float(flop_registry[func.overloadpacket](*args, **kwargs, out_val=out))
        elif name == "_grouped_mm":  # [M, K] x [G, K, N], [M, N] x [G, N, K] or [K, M] x [M, N]: 2 M K N
            flops = 2.0 * args[0].numel() * args[1].shape[-1]
        elif "flash_attention" in name:
            flops = _attention_flops(name, args, kwargs)
        else:
            flops = 0.0
        self.ops.append(Op(name, op_kind(name), flops, nbytes, tuple(tuple(x.shape) for x in ins[:3]),
                           tuple(str(x.dtype).removeprefix("torch.") for x in ins[:3])))
        return out


def _flex_stand_in(q, k, v, rel_h, rel_w, h, w):
    """What FlexAttention does for SAM, in operators the tracer can run on fake tensors: the
    two bias products, then attention at the head dim (the kernel reads the bias as it goes)."""
    sam_mod._rel_pos_bias(q, rel_h, rel_w, h, w)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v)


@contextlib.contextmanager
def cuda_paths():
    """Within: the model takes the paths a CUDA bf16 step takes (grouped-GEMM experts, and
    FlexAttention for frozen SAM, stood in for), on CPU tensors."""
    saved = moe_mod.use_grouped_gemm, sam_mod.flex_rel_pos_attention
    moe_mod.use_grouped_gemm = lambda xs: True
    sam_mod.flex_rel_pos_attention = _flex_stand_in
    try:
        yield
    finally:
        moe_mod.use_grouped_gemm, sam_mod.flex_rel_pos_attention = saved


def trace_step(config: str, rows: int, length: int, mode: str = "base", stage: int = 2, vocab: int = 4096,
               grid: tuple[int, int] = (0, 0), sam_flex: bool = False) -> tuple[list[Op], dict]:
    """Every operator of one training step's forward and backward, and the step's model
    FLOPs and trained parameters (as the trainer counts them for MFU). ``sam_flex``: frozen
    SAM's long attention as ``TrainArgs.sam_flex_attention`` runs it on CUDA (FlexAttention,
    stood in for by attention at the head dim), else SDPA's key-dim form (the default)."""
    cfg = load_config(config)
    enc = cfg.encoder
    if mode in TILED_MODES and min(grid) < 1:
        raise ValueError(f"--mode {mode} needs --grid NW NH (tiles across and down), got {grid}")
    n_img = num_image_tokens(mode, enc, grid)
    if length < n_img + 2:
        raise ValueError(f"--length {length}: a {mode} image takes {n_img} tokens; need at least {n_img + 2}")
    with cuda_paths():
        with FakeTensorMode(allow_non_fake_inputs=True):
            model = OCRModel(cfg, vocab, 5, stage=stage)
            if stage == 2:
                model.freeze_for_stage2()
                model.set_sam_flex_attention(sam_flex)
            ids = torch.full((rows, length), 7, dtype=torch.long)
            ids[:, 1:1 + n_img] = 5
            mask = torch.ones(rows, length, dtype=torch.long)
            labels = ids.clone()
            labels[:, :1 + n_img] = -100
            side = enc.image_size(mode)
            tiles = None
            if mode in TILED_MODES:
                t = enc.tile_size if mode == "gundam" else enc.gundam_m_tile_size
                tiles = torch.zeros(grid[0] * grid[1], 3, t, t, dtype=torch.uint8)
            vision = [VisionInput(torch.zeros(3, side, side, dtype=torch.uint8), tiles, grid, mode)
                      for _ in range(rows)]
            rec = OpRecorder()
            with rec:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = model(ids, mask, vision, labels=labels, causal=True).loss
                loss.backward()
    model_flops = rows * (model.flops_per_token(length) * length + model.encoder_flops(mode, grid))
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return rec.ops, {"model_flops": float(model_flops), "trained_params": trained}


def _fused_kernel_bytes(fn) -> list[int]:
    """Bytes each fused (non-extern) kernel reads and writes in the graphs inductor builds
    while ``fn()`` runs (forward and backward)."""
    from torch._inductor import scheduler as sched

    found: list[int] = []
    codegen = sched.Scheduler._codegen

    def hook(self, nodes, *args, **kwargs):
        found.extend(n.get_read_write_buffers_sizes() for n in nodes
                     if not isinstance(n, (sched.ExternKernelSchedulerNode, sched.NopKernelSchedulerNode)))
        return codegen(self, nodes, *args, **kwargs)

    sched.Scheduler._codegen = hook
    try:
        # A graph served from inductor's caches is not scheduled again: turn them off.
        with torch._inductor.config.patch(fx_graph_cache=False, fx_graph_remote_cache=False), \
                torch._functorch.config.patch(enable_autograd_cache=False):
            fn()
    finally:
        sched.Scheduler._codegen = codegen
    if not found:
        raise RuntimeError(f"inductor scheduled no fused kernel (torch {torch.__version__}): the scheduler hook "
                           "(Scheduler._codegen) no longer sees them")
    return found


def _block_step(kind: str, cfg, rows: int, tokens: int):
    """(block, a function running it forward and backward on ``rows`` x ``tokens``) for a
    decoder block (``dense``/``moe``: tokens per row) or ``clip`` (rows = images)."""
    from bench.bench_memory import decoder_block_inputs
    from train.model.clip import ClipBlock
    from train.model.decoder import Block

    if kind == "clip":
        enc = cfg.encoder
        block = ClipBlock(enc.clip_width, enc.clip_heads, enc.clip_mlp_ratio, enc.clip_act)
        x = torch.randn(rows, tokens, enc.clip_width, requires_grad=True)
        return block, lambda blk: blk(x).float().sum().backward()
    dec = cfg.decoder
    block = Block(dec, 0 if kind == "dense" else dec.first_dense_layers)
    x, cos, sin, valid = decoder_block_inputs(dec, rows, tokens)

    def run(blk):
        y, aux = blk(x, cos, sin, None, None, valid)
        (y.float().sum() + (aux if aux is not None else 0)).backward()
    return block, run


def compiled_blocks(config: str, rows: int, length: int, mode: str = "base", gpu: GPU = GPUS["h200"],
                    sizes: tuple[int, int] = (512, 1024), only: tuple[str, ...] = ("dense", "moe", "clip"),
                    ) -> dict[str, dict]:
    """Per block kind: how many the model has, and eager against inductor-fused traffic at
    the step's shape (``rows`` x ``length`` decoder tokens, ``rows`` Base images for CLIP):
    ms of the eager elementwise, cast and gather kernels, and ms, GB and kernels of the
    fused ones (measured at two sizes, scaled linearly)."""
    cfg = load_config(config)
    dec, enc = cfg.decoder, cfg.encoder
    clip_tokens = enc.token_side(enc.image_size(mode)) ** 2 + 1
    n_moe = sum(dec.is_moe_layer(i) for i in range(dec.layers))
    kinds = {"dense": (dec.layers - n_moe, rows, length), "moe": (n_moe, rows, length),
             "clip": (enc.clip_depth, rows, clip_tokens)}
    out = {}
    with cuda_paths():
        for kind, (count, step_rows, step_tokens) in kinds.items():
            if not count or kind not in only:
                continue
            # Eager kernels of one block at the step's shape, on fake tensors.
            with FakeTensorMode(allow_non_fake_inputs=True):
                torch.manual_seed(0)
                block, run = _block_step(kind, cfg, step_rows, step_tokens)
                rec = OpRecorder()
                with rec, torch.autocast("cpu", dtype=torch.bfloat16):
                    run(block)
            eager_ms = sum(kernel_seconds(op, gpu) for op in rec.ops if op.kind in ("elementwise", "cast", "index")) * 1e3
            # Fused kernels at two sizes (tokens for the decoder, images for CLIP), real tensors.
            # The unit traffic grows with: tokens of one row (decoder), images (CLIP).
            clip = kind == "clip"
            at = (1, 2) if clip else sizes
            totals, kernels = [], 0
            for n in at:
                torch._dynamo.reset()
                torch.manual_seed(0)
                block, run = _block_step(kind, cfg, n if clip else 1, step_tokens if clip else n)
                compiled = torch.compile(block, dynamic=False)

                def go(compiled=compiled, run=run):
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        run(compiled)
                found = _fused_kernel_bytes(go)
                totals.append(sum(found))
                kernels = len(found)
            per_unit = (totals[1] - totals[0]) / (at[1] - at[0])
            fixed = totals[0] - per_unit * at[0]
            fused_bytes = fixed + per_unit * (step_rows if clip else step_rows * step_tokens)
            out[kind] = {"blocks": count, "eager_nonproduct_ms": eager_ms,
                         "fused_gb": fused_bytes / 1e9, "fused_kernels": kernels,
                         "fused_ms": (fused_bytes / gpu.bandwidth + kernels * gpu.launch_s) * 1e3,
                         "fused_bytes_per_unit": per_unit, "fused_bytes_fixed": fixed}
    return out


def kernel_seconds(op: Op, gpu: GPU) -> float:
    """The roofline time of one operator's kernel."""
    if op.kind != "matmul":
        rate = gpu.attention_flops
    else:
        rate = gpu.fp32_matmul_flops if "float32" in op.dtypes else gpu.matmul_flops
    return max(op.flops / rate, op.bytes / gpu.bandwidth) + gpu.launch_s


def estimate(ops: list[Op], step: dict, gpu: GPU) -> dict:
    """Per kind of operator: kernels, bytes, FLOPs, roofline ms and share; the optimizer;
    the predicted step time and MFU against ``peak`` 790 TFLOP/s (DESIGN.md §5)."""
    kinds: dict[str, dict] = defaultdict(lambda: {"kernels": 0, "gbytes": 0.0, "tflops": 0.0, "ms": 0.0})
    for op in ops:
        k = kinds[op.kind]
        k["kernels"] += 1
        k["gbytes"] += op.bytes / 1e9
        k["tflops"] += op.flops / 1e12
        k["ms"] += kernel_seconds(op, gpu) * 1e3
    # Fused AdamW reads param, grad and two moments and writes three (28 B, fp32);
    # clip_grad_norm_ reads the gradients for the norm, then scales them in place (12 B).
    opt_bytes = 40 * step["trained_params"]
    kinds["optimizer"] = {"kernels": 0, "gbytes": opt_bytes / 1e9, "tflops": 0.0, "ms": opt_bytes / gpu.bandwidth * 1e3}
    total_ms = sum(k["ms"] for k in kinds.values())
    for k in kinds.values():
        k["share"] = k["ms"] / total_ms
    return {"gpu": asdict(gpu), "kinds": dict(kinds), "step_ms": total_ms,
            "mfu_790": step["model_flops"] / (total_ms / 1e3) / 790e12,
            "model_tflops": step["model_flops"] / 1e12,
            "executed_tflops": sum(op.flops for op in ops) / 1e12}


def top_ops(ops: list[Op], gpu: GPU, n: int) -> list[dict]:
    """The ``n`` (operator, input shapes, dtypes) groups that take the most roofline time."""
    groups: dict[tuple, dict] = {}
    for op in ops:
        g = groups.setdefault((op.name, op.shapes, op.dtypes), {"calls": 0, "ms": 0.0, "gbytes": 0.0, "tflops": 0.0})
        g["calls"] += 1
        g["ms"] += kernel_seconds(op, gpu) * 1e3
        g["gbytes"] += op.bytes / 1e9
        g["tflops"] += op.flops / 1e12
    best = sorted(groups.items(), key=lambda kv: -kv[1]["ms"])[:n]
    return [{"op": name, "shapes": [list(s) for s in shapes], "dtypes": list(dtypes), **g}
            for (name, shapes, dtypes), g in best]


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="paper")
    p.add_argument("--stage", type=int, choices=(1, 2), default=2)
    p.add_argument("--rows", type=int, default=16, help="examples in the batch")
    p.add_argument("--length", type=int, default=1273, help="tokens per row, image placeholders included "
                   "(1,273 is the median of manifests/ocr1_demo.yaml's pages in Base mode)")
    p.add_argument("--mode", default="base")
    p.add_argument("--grid", type=int, nargs=2, default=(0, 0), metavar=("NW", "NH"), help="tiles of gundam modes")
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--sam-flex", action="store_true",
                   help="frozen SAM's global attention through FlexAttention (stood in for at the head dim), "
                        "not SDPA's key-dim form (TrainArgs)")
    p.add_argument("--gpu", choices=sorted(GPUS), default="h200")
    p.add_argument("--top", type=int, default=15, help="operator groups to list")
    p.add_argument("--compiled", action="store_true",
                   help="also estimate the step with blocks compiled (inductor on CPU: a few minutes for paper)")
    p.add_argument("--json", default="bench_roofline.json")
    a = p.parse_args(argv)
    gpu = GPUS[a.gpu]
    ops, step = trace_step(a.config, a.rows, a.length, a.mode, a.stage, a.vocab, tuple(a.grid), a.sam_flex)
    est = estimate(ops, step, gpu)
    tops = top_ops(ops, gpu, a.top)
    print(f"{a.config} stage {a.stage}: {a.rows} rows x {a.length} tokens, {a.mode}; eager kernels on {gpu.name}")
    print(f"{'kind':12s} {'kernels':>8s} {'GB':>8s} {'TFLOP':>8s} {'ms':>8s} {'share':>6s}")
    for name, k in sorted(est["kinds"].items(), key=lambda kv: -kv[1]["ms"]):
        print(f"{name:12s} {k['kernels']:8d} {k['gbytes']:8.1f} {k['tflops']:8.2f} {k['ms']:8.1f} {k['share']:6.1%}")
    print(f"step {est['step_ms']:.1f} ms; model {est['model_tflops']:.1f} TFLOP (executed {est['executed_tflops']:.1f}); "
          f"MFU at this roofline {est['mfu_790']:.1%} of 790 TFLOP/s")
    print(f"\ntop {a.top} operator groups by roofline time:")
    for t in tops:
        shapes = " ".join("x".join(map(str, s)) for s in t["shapes"])
        print(f"  {t['ms']:7.1f} ms {t['gbytes']:7.1f} GB {t['calls']:5d}x {t['op']:28s} {shapes} ({', '.join(t['dtypes'])})")
    if a.compiled:
        blocks = compiled_blocks(a.config, a.rows, a.length, a.mode, gpu)
        saved = sum(b["blocks"] * (b["eager_nonproduct_ms"] - b["fused_ms"]) for b in blocks.values())
        est["compiled"] = {"blocks": blocks, "step_ms": est["step_ms"] - saved,
                           "mfu_790": step["model_flops"] / ((est["step_ms"] - saved) / 1e3) / 790e12}
        print("\ncompiled blocks (inductor's fused kernels in place of the eager elementwise, cast and gather ones):")
        for kind, b in blocks.items():
            print(f"  {kind:6s} x{b['blocks']:3d}: eager {b['eager_nonproduct_ms']:6.2f} ms -> fused "
                  f"{b['fused_ms']:6.2f} ms ({b['fused_gb']:.2f} GB, {b['fused_kernels']} kernels) per block")
        print(f"compiled step {est['compiled']['step_ms']:.1f} ms; MFU at this roofline {est['compiled']['mfu_790']:.1%}")
    report = {"config": a.config, "stage": a.stage, "rows": a.rows, "length": a.length, "mode": a.mode,
              "grid": list(a.grid), "vocab": a.vocab, "sam_flex": a.sam_flex, **est, "top": tops}
    Path(a.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
