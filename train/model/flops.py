"""Analytic forward FLOPs (2 x multiply-adds of matrix products, attention included).

Norms, activations and softmax are left out (a few percent at most), as is customary for
model-FLOPs utilisation.
"""

from __future__ import annotations

import math

from train.configs import DecoderConfig, EncoderConfig


def _sam_attention_shapes(cfg: EncoderConfig, size: int) -> list[tuple[int, int, int]]:
    """Per SAM block: (sequences, tokens per sequence, grid side of a sequence)."""
    g = size // cfg.patch_size
    glob = set(cfg.sam_global_blocks)
    w = cfg.sam_window
    return [(1, g * g, g) if i in glob else (math.ceil(g / w) ** 2, w * w, w) for i in range(cfg.sam_depth)]


def sam_attention_flops(cfg: EncoderConfig, size: int) -> int:
    """QK^T and AV of every SAM block at head width (the extra key dims that carry the
    relative position bias are implementation, not model FLOPs)."""
    return sum(seqs * 4 * tokens * tokens * cfg.sam_width for seqs, tokens, _ in _sam_attention_shapes(cfg, size))


def sam_flops(cfg: EncoderConfig, size: int) -> int:
    """SAM encoder (patch embedding, blocks, neck) on one ``size`` x ``size`` image."""
    g = size // cfg.patch_size
    n, d = g * g, cfg.sam_width
    hidden = int(d * cfg.sam_mlp_ratio)
    total = 2 * n * 3 * cfg.patch_size ** 2 * d + sam_attention_flops(cfg, size)
    for seqs, tokens, side in _sam_attention_shapes(cfg, size):
        total += 2 * n * (4 * d * d + 2 * d * hidden)
        if cfg.sam_rel_pos:
            total += seqs * 2 * tokens * 2 * side * d  # the two decomposed bias einsums
    o = cfg.sam_out_chans
    return total + 2 * n * d * o + 2 * n * o * o * 9


def compressor_flops(cfg: EncoderConfig, size: int) -> int:
    """The two stride-2 3x3 convolutions."""
    n = (size // cfg.patch_size) ** 2
    return 2 * (n // 4) * cfg.sam_out_chans * 9 * cfg.compressor_mid + 2 * (n // 16) * cfg.compressor_mid * 9 * cfg.clip_width


def clip_flops(cfg: EncoderConfig, size: int) -> int:
    """CLIP blocks over the compressed tokens plus the class token."""
    m = cfg.token_side(size) ** 2 + 1
    c = cfg.clip_width
    hidden = int(c * cfg.clip_mlp_ratio)
    return cfg.clip_depth * (2 * m * (4 * c * c + 2 * c * hidden) + 4 * m * m * c)


def projector_flops(cfg: EncoderConfig, size: int, out_width: int) -> int:
    """The linear projector from 2 x clip_width to the decoder width."""
    return 2 * cfg.token_side(size) ** 2 * 2 * cfg.clip_width * out_width


def decoder_active_params(cfg: DecoderConfig) -> int:
    """Parameters one token's forward uses, without the input embedding (a lookup)."""
    inner = cfg.heads * cfg.head_dim
    per_attn = 4 * cfg.width * inner + 2 * cfg.width
    total = cfg.layers * per_attn + cfg.width + cfg.width * cfg.vocab_size
    for i in range(cfg.layers):
        if cfg.is_moe_layer(i):
            total += cfg.width * cfg.n_routed + (cfg.top_k + cfg.n_shared) * 3 * cfg.width * cfg.moe_inter
        else:
            total += 3 * cfg.width * cfg.dense_inter
    return total


def decoder_train_flops_per_token(cfg: DecoderConfig, seq_len: int) -> int:
    """6 x active params + 12 x layers x heads x head_dim x seq_len (PaLM's convention)."""
    return 6 * decoder_active_params(cfg) + 12 * cfg.layers * cfg.heads * cfg.head_dim * seq_len
