"""Training memory of a config, measured on CPU, and the token budget that fits a GPU.

    python bench/bench_memory.py --config paper                     # stage 2, eager and compiled
    python bench/bench_memory.py --config paper --gpu-gib 139 --images-per-batch 32
    python bench/bench_memory.py --config paper --stage 1 --eager-only

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
"""

from __future__ import annotations

import argparse
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


def decoder_block_inputs(cfg, rows: int, t: int) -> tuple[torch.Tensor, ...]:
    """A decoder block's inputs for ``rows`` x ``t`` tokens: the float32 residual stream
    (seeded, with grad), rotary cos and sin, and the all-valid token mask."""
    x = torch.randn(rows, t, cfg.width, generator=torch.Generator().manual_seed(0), requires_grad=True)
    cos, sin = rotary(torch.arange(t).expand(rows, t), cfg.head_dim, cfg.rope_theta)
    return x, cos, sin, torch.ones(rows, t, dtype=torch.bool)


def decoder_block_bytes(block: torch.nn.Module, cfg, tokens: int, rows: int = 2) -> int:
    """Saved bytes of one decoder block's forward on ``rows`` x ``tokens / rows`` tokens."""
    x, cos, sin, valid = decoder_block_inputs(cfg, rows, tokens // rows)
    return saved_bytes(lambda: block(x, cos, sin, None, None, valid))


def clip_block_bytes(block: torch.nn.Module, width: int, tokens: int, images: int) -> int:
    """Saved bytes of one CLIP block on ``images`` sequences of ``tokens``."""
    x = torch.randn(images, tokens, width, generator=torch.Generator().manual_seed(0), requires_grad=True)
    return saved_bytes(lambda: block(x))


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


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="paper")
    p.add_argument("--stage", type=int, choices=(1, 2), default=2)
    p.add_argument("--vocab", type=int, default=4096, help="tokenizer size (TrainArgs.vocab_size)")
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
    a = p.parse_args(argv)
    moe_mod.use_grouped_gemm = lambda xs: True  # the CUDA bf16 path (see the module docstring)
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
