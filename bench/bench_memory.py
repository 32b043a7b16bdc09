"""Training memory of a config, measured on CPU, and the token budget that fits a GPU.

    python bench/bench_memory.py --config paper                     # stage 2, eager and compiled
    python bench/bench_memory.py --config paper --gpu-gib 139 --images-per-batch 32
    python bench/bench_memory.py --config paper --stage 1 --eager-only
    python bench/bench_memory.py --finetune                         # full vs LoRA fine-tuning table

What a training step keeps alive is known before any GPU run: the weights, AdamW's two
moments and the gradients (bytes per parameter), and the activations autograd saves for
backward, which grow with the batch's padded tokens (decoder) and images (encoder). This
script measures the saved activations directly: it runs one decoder block of each kind
(dense, MoE), one CLIP block and the loss head forward under bf16 autocast, at two
lengths, and counts the distinct storages that ``saved_tensors_hooks`` sees. The slope
is bytes per token (per image for CLIP), the intercept bytes per block (bf16 weight
copies). Without ``--eager-only`` the blocks also go through ``torch.compile`` (inductor),
as ``python -m train --compile`` does, and the compiled graphs' own choice of what to save
and what to recompute is what gets counted.

The MoE block runs on the grouped-GEMM path (what CUDA bf16 training uses; the CPU's
per-expert loop saves the same tensors in pieces). SAM and the compressor are frozen in
stage 2 and run without autograd, so they save nothing there; in stage 1 they train with
the compact decoder, and the whole SAM + compressor is measured per image of ``--mode``.
The prediction leaves out the allocator's fragmentation and the step's short-lived
buffers; the JSON gives it against a measured GPU peak when ``--measured`` names one.

``--finetune`` prints the fine-tuning table instead (docs/gpu.md): full fine-tuning against
LoRA (train/lora.py) of the released model's dimensions (``paper``, vocabulary 129,280), per
resolution mode and card, and the most pages a batch can hold. A LoRA run keeps its frozen
base in bf16 and AdamW states for the adapters only; its blocks are measured as that run
has them (bf16 weights, adapters, bf16 residual stream). At that vocabulary the loss head's
short-lived [tokens, vocab] float32 tensors outgrow what it saves, so its term is the live
peak of its forward and backward (:func:`live_peak_bytes`), not its saved bytes.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import train.model.moe as moe_mod  # noqa: E402
from train.configs import load_config, with_vocab  # noqa: E402
from train.model.clip import ClipBlock  # noqa: E402
from train.model.compressor import Compressor  # noqa: E402
from train.model.decoder import Block, rotary  # noqa: E402
from train.model.layers import RMSNorm  # noqa: E402
from train.model.ocr_model import OCRModel  # noqa: E402
from train.model.sam import SamEncoder  # noqa: E402
from train.model.vision_inputs import gundam_grid, num_image_tokens  # noqa: E402

GIB = 2 ** 30


def saved_bytes(fn, skip: frozenset[int] | set[int] = frozenset()) -> int:
    """Bytes of the distinct storages autograd saves for backward while ``fn()`` runs under
    bf16 autocast (as training on a GPU does); storages whose data pointer is in ``skip``
    (the weights, say) are not counted."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        if st.data_ptr() not in skip:
            seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
        fn()
    return sum(seen.values())


def per_unit(measure, small: int, large: int) -> tuple[float, float]:
    """(bytes per unit, bytes at zero units) from measurements at two sizes."""
    a, b = measure(small), measure(large)
    slope = (b - a) / (large - small)
    return slope, a - slope * small


def decoder_block_inputs(cfg, rows: int, t: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    """A decoder block's inputs for ``rows`` x ``t`` tokens: the residual stream (float32 as
    full training has it, bf16 in a LoRA run's bf16 base; seeded, with grad), rotary cos and
    sin, and the all-valid token mask."""
    x = torch.randn(rows, t, cfg.width, generator=torch.Generator().manual_seed(0)).to(dtype).requires_grad_()
    cos, sin = rotary(torch.arange(t).expand(rows, t), cfg.head_dim, cfg.rope_theta)
    return x, cos, sin, torch.ones(rows, t, dtype=torch.bool)


def decoder_block_bytes(block: torch.nn.Module, cfg, tokens: int, rows: int = 2,
                        dtype: torch.dtype = torch.float32) -> int:
    """Saved bytes of one decoder block's forward on ``rows`` x ``tokens / rows`` tokens
    (its own parameters not counted: they are states, and a bf16 base's weights are saved
    as themselves)."""
    x, cos, sin, valid = decoder_block_inputs(cfg, rows, tokens // rows, dtype)
    return saved_bytes(lambda: block(x, cos, sin, None, None, valid), skip=_param_ptrs(block))


def clip_block_bytes(block: torch.nn.Module, width: int, tokens: int, images: int,
                     dtype: torch.dtype = torch.float32, grad_in: bool = True) -> int:
    """Saved bytes of one CLIP block on ``images`` sequences of ``tokens`` (its parameters
    not counted); ``grad_in``: whether its input carries a gradient (not in a LoRA run,
    where nothing before CLIP trains)."""
    x = torch.randn(images, tokens, width, generator=torch.Generator().manual_seed(0)).to(dtype).requires_grad_(grad_in)
    return saved_bytes(lambda: block(x), skip=_param_ptrs(block))


def _param_ptrs(module: torch.nn.Module) -> set[int]:
    return {p.untyped_storage().data_ptr() for p in module.parameters()}


def head_bytes(cfg, tokens: int) -> int:
    """Saved bytes of the final norm, LM head and float32 cross-entropy per ``tokens``."""
    norm = RMSNorm(cfg.width, cfg.norm_eps)
    head = torch.nn.Linear(cfg.width, cfg.vocab_size, bias=False)
    x = torch.randn(1, tokens, cfg.width, generator=torch.Generator().manual_seed(0), requires_grad=True)
    labels = torch.randint(0, cfg.vocab_size, (tokens - 1,), generator=torch.Generator().manual_seed(1))
    return saved_bytes(
        lambda: F.cross_entropy(head(norm(x))[:, :-1].flatten(0, 1).float(), labels, reduction="sum"))


def sam_bytes(sam: torch.nn.Module, compressor: torch.nn.Module, size: int, images: int) -> int:
    """Saved bytes of SAM and the compressor (trained in stage 1) on ``images`` images."""
    pixels = torch.randn(images, 3, size, size, generator=torch.Generator().manual_seed(0))
    return saved_bytes(lambda: compressor(sam(pixels)))


def param_counts(cfg, vocab: int, stage: int = 2) -> dict[str, int]:
    """Parameters of the model: all, and trainable (stage 2 freezes SAM and the compressor)."""
    with torch.device("meta"):
        m = OCRModel(cfg, vocab, 3, stage=stage)
    if stage == 2:
        m.freeze_for_stage2()
    return {"all": sum(p.numel() for p in m.parameters()),
            "trainable": sum(p.numel() for p in m.parameters() if p.requires_grad)}


def measure(config: str, vocab: int, compiled: bool, image_tokens: int, stage: int = 2, mode: str = "base") -> dict:
    """Per-token, per-image and fixed saved bytes of ``config`` in ``stage``: the decoder of
    that stage, CLIP, and in stage 1 SAM and the compressor on ``mode``'s image."""
    mcfg = load_config(config)
    dec = with_vocab(mcfg.stage1_decoder if stage == 1 else mcfg.decoder, vocab)
    enc = mcfg.encoder
    torch.manual_seed(0)
    kinds = {}
    layer_of = {"dense": 0, "moe": dec.first_dense_layers}
    for kind, layer in layer_of.items():
        if kind == "moe" and not dec.n_routed:
            continue
        blk = Block(dec, layer)
        if compiled:
            blk.compile(dynamic=True)
        t0 = time.perf_counter()
        slope, icpt = per_unit(lambda n, blk=blk: decoder_block_bytes(blk, dec, n), 512, 1024)
        kinds[kind] = {"bytes_per_token": slope, "bytes_per_block": icpt, "s": time.perf_counter() - t0}
    cblk = ClipBlock(enc.clip_width, enc.clip_heads, enc.clip_mlp_ratio, enc.clip_act)
    if compiled:
        cblk.compile(dynamic=True)
    c_slope, c_icpt = per_unit(lambda n: clip_block_bytes(cblk, enc.clip_width, image_tokens, n), 2, 4)
    h_slope, _ = per_unit(lambda n: head_bytes(dec, n), 512, 1024)
    s_slope = s_icpt = 0.0
    if stage == 1:
        sam, comp = SamEncoder(enc), Compressor(enc)
        if compiled:  # as OCRModel.compile_blocks compiles them
            for blk in sam.blocks:
                blk.compile(dynamic=None)
        s_slope, s_icpt = per_unit(lambda n: sam_bytes(sam, comp, enc.image_size(mode), n), 1, 2)
    n_moe = sum(dec.is_moe_layer(i) for i in range(dec.layers))
    n_dense = dec.layers - n_moe
    per_token = n_dense * kinds["dense"]["bytes_per_token"] + h_slope
    per_block = n_dense * kinds["dense"]["bytes_per_block"]
    if n_moe:
        per_token += n_moe * kinds["moe"]["bytes_per_token"]
        per_block += n_moe * kinds["moe"]["bytes_per_block"]
    return {
        "compiled": compiled,
        "blocks": kinds,
        "head_bytes_per_token": h_slope,
        "clip_bytes_per_image": c_slope * enc.clip_depth,
        "clip_bytes_fixed": c_icpt * enc.clip_depth,
        "sam_bytes_per_image": s_slope,
        "sam_bytes_fixed": s_icpt,
        "decoder_bytes_per_token": per_token,
        "decoder_bytes_fixed": per_block,
    }


def predict(m: dict, params: dict[str, int], tokens: int, images: int) -> dict[str, float]:
    """GiB for a batch of ``tokens`` padded tokens and ``images`` images.

    ``at_forward_end``: weights (fp32), AdamW moments, every saved activation and the bf16
    weight copies kept for backward (the blocks' fixed bytes), before any gradient exists;
    ``upper``: with every gradient as well (the real peak lies between: backward frees
    activations as it makes gradients).
    """
    states = 4 * params["all"] + 8 * params["trainable"]
    act = m["decoder_bytes_per_token"] * tokens + (m["clip_bytes_per_image"] + m["sam_bytes_per_image"]) * images
    low = states + act + m["decoder_bytes_fixed"] + m["clip_bytes_fixed"] + m["sam_bytes_fixed"]
    return {"at_forward_end": low / GIB, "upper": (low + 4 * params["trainable"]) / GIB}


def budget_for(m: dict, params: dict[str, int], gib: float, images: int, headroom: float) -> int:
    """The most padded tokens a batch of ``images`` images may have under ``gib`` (upper bound
    of :func:`predict`, times ``1 + headroom`` for fragmentation and short-lived buffers)."""
    fixed = predict(m, params, 0, images)["upper"] * GIB
    room = gib * GIB / (1 + headroom) - fixed
    return max(0, int(room // m["decoder_bytes_per_token"]))


# -- fine-tuning: full against LoRA ------------------------------------------------------
# What each card lets a process allocate, GiB: its memory as CUDA reports it, less about half
# a GiB of context. 24 GB: an L4 or A10G shows 22.5 GiB (an RTX 4090 23.6); 80 GB: an H100
# 79.1; 141 GB: an H200 139.7.
CARDS = {"24 GB": 22.0, "80 GB": 78.5, "141 GB": 139.0}
METHODS = ("full", "lora")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]


_MALLINFO2 = None


def _heap_bytes() -> int:
    """Bytes the C heap has handed out now (glibc's mallinfo2: small blocks + mmapped ones):
    CPU tensors live there, and are freed the moment their last reference goes."""
    global _MALLINFO2
    if _MALLINFO2 is None:
        _MALLINFO2 = ctypes.CDLL("libc.so.6").mallinfo2
        _MALLINFO2.restype = _Mallinfo2
    m = _MALLINFO2()
    return m.uordblks + m.hblkhd


def live_peak_bytes(fn) -> int:
    """The most bytes live at once while ``fn()`` runs, above what was live before: sampled
    after every aten operator (forward and backward alike) by a dispatch mode. Unlike
    :func:`saved_bytes` this sees short-lived tensors too (glibc only)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Peak(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            self.peak = max(self.peak, _heap_bytes())
            return out

    mode = Peak()
    mode.peak = start = _heap_bytes()
    with mode:
        fn()
    return mode.peak - start


def head_peak_bytes(cfg, tokens: int, lora: bool) -> int:
    """Live peak of the final norm, LM head and float32 cross-entropy, forward and backward,
    on ``tokens`` tokens, the logits kept alive as the trainer's ModelOutput keeps them. Full
    training: a float32 head and residual; LoRA: the frozen bf16 head and a bf16 residual
    (the weight gradient of a trained head is counted with the states, not here)."""
    dtype = torch.bfloat16 if lora else torch.float32
    norm = RMSNorm(cfg.width, cfg.norm_eps).to(dtype).requires_grad_(not lora)
    head = torch.nn.Linear(cfg.width, cfg.vocab_size, bias=False).to(dtype).requires_grad_(False)
    x = torch.randn(1, tokens, cfg.width, generator=torch.Generator().manual_seed(0)).to(dtype).requires_grad_()
    labels = torch.randint(0, cfg.vocab_size, (tokens - 1,), generator=torch.Generator().manual_seed(1))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = head(norm(x))
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels, reduction="sum")
        loss.backward()
        return logits

    return live_peak_bytes(step)


def _adapted(block: torch.nn.Module, lcfg, where: str = "decoder") -> torch.nn.Module:
    """``block`` in bf16 with the LoRA adapters of ``lcfg`` applied, as a LoRA run has it."""
    from torch import nn

    from train.lora import apply_lora

    block.to(torch.bfloat16)
    holder = nn.Module()
    holder.decoder, holder.encoder = nn.Module(), nn.Module()
    holder.decoder.blocks = nn.ModuleList([block] if where == "decoder" else [])
    if where == "clip":
        holder.encoder.clip = nn.Module()
        holder.encoder.clip.blocks = nn.ModuleList([block])
        lcfg = dataclasses.replace(lcfg, targets=("vision",))
    else:
        lcfg = dataclasses.replace(lcfg, targets=tuple(t for t in lcfg.targets if t not in ("projector", "vision")))
    if lcfg.targets:
        apply_lora(holder, lcfg)
    else:
        block.requires_grad_(False)
    return block


def finetune_measure(config: str, vocab: int, method: str, lcfg=None, compiled: bool = False,
                     view_sizes: tuple[int, ...] = ()) -> dict:
    """Per-token and per-view activation bytes of a stage-2 fine-tuning step of ``method``
    ("full" or "lora" with LoraConfig ``lcfg``): decoder blocks' saved bytes, the head's live
    peak, and CLIP's saved bytes per view of each side in ``view_sizes`` (none in a LoRA run
    unless it adapts CLIP: frozen, with nothing trained before it, CLIP saves nothing)."""
    mcfg = load_config(config)
    dec, enc = with_vocab(mcfg.decoder, vocab), mcfg.encoder
    lora = method == "lora"
    dtype = torch.bfloat16 if lora else torch.float32
    torch.manual_seed(0)
    blocks = {}
    for kind, layer in {"dense": 0, "moe": dec.first_dense_layers}.items():
        if kind == "moe" and not dec.n_routed:
            continue
        blk = Block(dec, layer)
        if lora:
            blk = _adapted(blk, lcfg)
        if compiled:
            blk.compile(dynamic=True)
        slope, icpt = per_unit(lambda n, blk=blk: decoder_block_bytes(blk, dec, n, dtype=dtype), 512, 1024)
        blocks[kind] = {"bytes_per_token": slope, "bytes_per_block": icpt}
        del blk
    h_slope, h_icpt = per_unit(lambda n: head_peak_bytes(dec, n, lora), 128, 256)
    clip_per_view = {}
    if not lora or "vision" in lcfg.targets:
        cblk = ClipBlock(enc.clip_width, enc.clip_heads, enc.clip_mlp_ratio, enc.clip_act)
        if lora:
            cblk = _adapted(cblk, lcfg, "clip")
        if compiled:
            cblk.compile(dynamic=True)
        for size in view_sizes:
            tokens = enc.token_side(size) ** 2 + 1
            slope, icpt = per_unit(
                lambda n, t=tokens: clip_block_bytes(cblk, enc.clip_width, t, n, dtype, grad_in=not lora), 2, 4)
            clip_per_view[size] = {"bytes": slope * enc.clip_depth, "fixed": icpt * enc.clip_depth}
    n_moe = sum(dec.is_moe_layer(i) for i in range(dec.layers))
    counts = {"dense": dec.layers - n_moe, "moe": n_moe}
    return {
        "method": method, "compiled": compiled, "blocks": blocks,
        "head_peak_bytes_per_token": h_slope, "head_peak_fixed": max(0.0, h_icpt),
        "decoder_bytes_per_token": sum(counts[k] * b["bytes_per_token"] for k, b in blocks.items()),
        "decoder_bytes_fixed": sum(counts[k] * b["bytes_per_block"] for k, b in blocks.items()),
        "clip_per_view": clip_per_view,
    }


def finetune_states(config: str, vocab: int, method: str, lcfg=None) -> dict[str, float]:
    """Bytes of what a step holds whatever the batch: weights, gradients, AdamW moments.

    Full fine-tuning (the trainer's mixed precision): float32 weights, and a float32 gradient
    and two moments for every trained parameter (stage 2: all but SAM and the compressor).
    LoRA: the whole base in bf16, and float32 weight, gradient and moments of the adapters.
    """
    mcfg = load_config(config)
    with torch.device("meta"):
        m = OCRModel(mcfg, vocab, 3, stage=2)
    m.freeze_for_stage2()
    total = sum(p.numel() for p in m.parameters())
    if method == "full":
        trained = sum(p.numel() for p in m.parameters() if p.requires_grad)
        return {"params": total, "trained": trained, "weights": 4 * total, "grads": 4 * trained,
                "moments": 8 * trained}
    from train.lora import apply_lora, trainable_count

    apply_lora(m, lcfg)
    trained = trainable_count(m)
    return {"params": total, "trained": trained, "weights": 2 * total + 4 * trained, "grads": 4 * trained,
            "moments": 8 * trained}


@dataclasses.dataclass
class Page:
    """One training example of a mode: its padded tokens and the sides of its encoder views."""

    mode: str
    tokens: int
    views: tuple[int, ...]


def page_of(mode: str, enc, text_tokens: int, size: tuple[int, int] = (1240, 1754)) -> Page:
    """A page of ``size`` pixels (A4 at 150 dpi) in ``mode`` with ``text_tokens`` of prompt
    and target: Base one 1024 px view; Gundam the global view plus its tiles (2 x 3 for A4)."""
    if mode in ("gundam", "gundam_m"):
        grid = gundam_grid(*size, enc, mode)
        n_img = num_image_tokens(mode, enc, grid)
        return Page(mode, n_img + text_tokens, (enc.image_size(mode),) + (enc.tile_side(mode),) * (grid[0] * grid[1]))
    return Page(mode, num_image_tokens(mode, enc) + text_tokens, (enc.image_size(mode),))


def finetune_gib(m: dict, states: dict[str, float], page: Page, batch: int) -> float:
    """Predicted peak GiB of a step of ``batch`` such pages: states (every gradient
    included), the decoder's and CLIP's saved activations, and the head's live peak (the
    step's peak comes at the head's backward, before any saved activation is freed)."""
    act = (m["decoder_bytes_per_token"] + m["head_peak_bytes_per_token"]) * page.tokens * batch
    act += m["decoder_bytes_fixed"] + m["head_peak_fixed"]
    for size in page.views:
        if size in m["clip_per_view"]:
            act += m["clip_per_view"][size]["bytes"] * batch
    fixed_clip = max((v["fixed"] for v in m["clip_per_view"].values()), default=0.0)
    return (states["weights"] + states["grads"] + states["moments"] + act + fixed_clip) / GIB


def largest_batch(m: dict, states: dict[str, float], page: Page, gib: float, headroom: float) -> int:
    """The most pages a batch may hold under ``gib`` with ``headroom`` kept free (0: none fit)."""
    batch = 0
    while finetune_gib(m, states, page, batch + 1) * (1 + headroom) <= gib and batch < 4096:
        batch += 1
    return batch


def finetune_table(config: str, vocab: int, lcfg, modes: list[str], text_tokens: int, cards: dict[str, float],
                   headroom: float, compiled: bool) -> dict:
    """Measure full and LoRA fine-tuning, and the largest batch of pages per mode and card."""
    enc = load_config(config).encoder
    pages = {mode: page_of(mode, enc, text_tokens) for mode in modes}
    sizes = tuple(sorted({s for p in pages.values() for s in p.views}))
    report = {"config": config, "vocab": vocab, "lora": dataclasses.asdict(lcfg), "text_tokens": text_tokens,
              "cards_gib": cards, "headroom": headroom, "compiled": compiled,
              "pages": {k: dataclasses.asdict(p) for k, p in pages.items()}, "methods": {}, "rows": []}
    for method in METHODS:
        t0 = time.perf_counter()
        m = finetune_measure(config, vocab, method, lcfg if method == "lora" else None, compiled, sizes)
        m["s"] = time.perf_counter() - t0
        m["states"] = finetune_states(config, vocab, method, lcfg if method == "lora" else None)
        report["methods"][method] = m
        for mode, page in pages.items():
            row = {"method": method, "mode": mode, "page_tokens": page.tokens, "views": len(page.views),
                   "gib_per_page": finetune_gib(m, m["states"], page, 1) - finetune_gib(m, m["states"], page, 0),
                   "gib_fixed": finetune_gib(m, m["states"], page, 0)}
            for card, gib in cards.items():
                row[card] = largest_batch(m, m["states"], page, gib, headroom)
            report["rows"].append(row)
    return report


def print_finetune(report: dict) -> None:
    """The table as markdown, and what its columns are made of."""
    cards = list(report["cards_gib"])
    lc = report["lora"]
    print(f"{report['config']}, vocabulary {report['vocab']:,}, bf16 autocast, "
          f"{'compiled blocks' if report['compiled'] else 'eager'}; pages of {report['text_tokens']:,} text tokens "
          f"+ their image tokens; LoRA rank {lc['rank']} on {', '.join(lc['targets'])}; "
          f"{report['headroom']:.0%} of each card kept free")
    for method, m in report["methods"].items():
        st = m["states"]
        print(f"  {method}: {st['trained'] / 1e6:,.1f}M of {st['params'] / 1e9:.2f}B parameters trained; "
              f"weights {st['weights'] / GIB:.1f} GiB, gradients {st['grads'] / GIB:.2f}, AdamW moments "
              f"{st['moments'] / GIB:.2f}; decoder {m['decoder_bytes_per_token'] / 2 ** 10:,.0f} KiB/token saved, "
              f"loss head {m['head_peak_bytes_per_token'] / 2 ** 10:,.0f} KiB/token at its peak"
              + "".join(f", CLIP {v['bytes'] / 2 ** 20:.0f} MiB per {s} px view" for s, v in m["clip_per_view"].items()))
    print()
    print("| method | mode | tokens a page | fixed GiB | GiB a page | " + " | ".join(f"pages, {c}" for c in cards) + " |")
    print("|---|---|---:|---:|---:|" + "---:|" * len(cards))
    for r in report["rows"]:
        print(f"| {'full fine-tuning' if r['method'] == 'full' else 'LoRA'} | {r['mode']} | {r['page_tokens']:,} | "
              f"{r['gib_fixed']:.1f} | {r['gib_per_page']:.2f} | "
              + " | ".join(str(r[c]) if r[c] else "does not fit" for c in cards) + " |")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="paper")
    p.add_argument("--stage", type=int, choices=(1, 2), default=2)
    p.add_argument("--vocab", type=int, default=None, help="tokenizer size (default: TrainArgs.vocab_size's "
                   "4096; with --finetune the config's, the official 129,280 for paper)")
    p.add_argument("--mode", default="base", help="resolution mode whose image the per-image cost is for")
    p.add_argument("--eager-only", action="store_true", help="skip the compiled measurement")
    p.add_argument("--tokens", type=int, nargs="*", default=[20640, 65536, 98304],
                   help="padded tokens per batch to predict for")
    p.add_argument("--images-per-batch", type=int, default=16)
    p.add_argument("--gpu-gib", type=float, default=139.0, help="GPU memory for the token budget (H200: 139)")
    p.add_argument("--headroom", type=float, default=0.1, help="fraction kept free for fragmentation")
    p.add_argument("--measured", type=float, nargs=3, metavar=("TOKENS", "IMAGES", "GIB"),
                   help="a GPU run's peak to set the prediction against (eager)")
    p.add_argument("--json", default="bench_memory.json")
    ft = p.add_argument_group("fine-tuning table (--finetune)")
    ft.add_argument("--finetune", action="store_true", help="full vs LoRA fine-tuning of --config at the official "
                    "vocabulary: the largest batch of pages per mode and card")
    ft.add_argument("--modes", nargs="+", default=["base", "gundam"])
    ft.add_argument("--text-tokens", type=int, default=1000, help="prompt + target tokens of a page")
    ft.add_argument("--cards", nargs="+", default=list(CARDS), choices=list(CARDS))
    ft.add_argument("--lora-rank", type=int, default=16)
    ft.add_argument("--lora-targets", nargs="+", default=None, help="default: train.lora.DEFAULT_TARGETS")
    ft.add_argument("--compiled", action="store_true", help="measure the blocks compiled (default eager)")
    a = p.parse_args(argv)
    moe_mod.use_grouped_gemm = lambda xs: True  # the CUDA bf16 path (see the module docstring)
    if a.finetune:
        from train.lora import DEFAULT_TARGETS, LoraConfig

        vocab = a.vocab or load_config(a.config).decoder.vocab_size
        lcfg = LoraConfig(rank=a.lora_rank, alpha=2 * a.lora_rank, targets=tuple(a.lora_targets or DEFAULT_TARGETS))
        report = finetune_table(a.config, vocab, lcfg, a.modes, a.text_tokens, {c: CARDS[c] for c in a.cards},
                                a.headroom, a.compiled)
        print_finetune(report)
        Path(a.json).write_text(json.dumps(report, indent=1))
        return 0
    a.vocab = a.vocab or 4096
    mcfg = load_config(a.config)
    image_tokens = mcfg.encoder.token_side(mcfg.encoder.image_size(a.mode)) ** 2 + 1
    params = param_counts(mcfg, a.vocab, a.stage)
    report = {"config": a.config, "stage": a.stage, "vocab": a.vocab, "mode": a.mode, "params": params, "gpu_gib": a.gpu_gib,
              "headroom": a.headroom, "images_per_batch": a.images_per_batch, "runs": []}
    for compiled in (False,) if a.eager_only else (False, True):
        m = measure(a.config, a.vocab, compiled, image_tokens, a.stage, a.mode)
        m["predicted_gib"] = {str(t): predict(m, params, t, a.images_per_batch) for t in a.tokens}
        m["token_budget"] = budget_for(m, params, a.gpu_gib, a.images_per_batch, a.headroom)
        if a.measured and not compiled:
            tokens, images, gib = a.measured
            m["against_measured"] = {"tokens": tokens, "images": images, "measured_gib": gib,
                                     **predict(m, params, int(tokens), int(images))}
        report["runs"].append(m)
        name = "compiled" if compiled else "eager"
        print(f"{a.config} {name}: decoder {m['decoder_bytes_per_token'] / 2 ** 10:.0f} KiB/token "
              + ", ".join(f"{k} block {v['bytes_per_token'] / 2 ** 10:.1f} KiB/token" for k, v in m["blocks"].items())
              + f", head {m['head_bytes_per_token'] / 2 ** 10:.1f} KiB/token; CLIP {m['clip_bytes_per_image'] / 2 ** 20:.0f} MiB/image"
              + (f", SAM + compressor {m['sam_bytes_per_image'] / 2 ** 20:.0f} MiB/image" if a.stage == 1 else ""))
        for t, g in m["predicted_gib"].items():
            print(f"  {t} tokens, {a.images_per_batch} images: {g['at_forward_end']:.1f}-{g['upper']:.1f} GiB")
        if "against_measured" in m:
            am = m["against_measured"]
            print(f"  measured {am['measured_gib']} GiB at {int(am['tokens'])} tokens, {int(am['images'])} images; "
                  f"predicted {am['at_forward_end']:.1f}-{am['upper']:.1f} GiB")
        print(f"  token budget for {a.gpu_gib:g} GiB, {a.images_per_batch} images, {a.headroom:.0%} headroom: {m['token_budget']}")
    print(f"parameters: {params['all'] / 1e9:.2f}B, trainable in stage {a.stage} {params['trainable'] / 1e9:.2f}B")
    Path(a.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
