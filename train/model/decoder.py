"""DeepSeek-MoE-style decoder: RMSNorm, rotary MHA (SDPA, causal + padding), dense/MoE MLPs, KV cache."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from train.configs import DecoderConfig
from train.model.layers import RMSNorm, call_block
from train.model.moe import MoE, SwiGLU


class KVCache:
    """Preallocated per-layer keys/values [B, H, max_len, D]; ``length`` positions are filled.

    Buffers are allocated on the first update with that step's dtype, so the cache agrees
    with autocast (bf16 keys from fp32 weights) as well as with a bf16 model.
    """

    def __init__(self, cfg: DecoderConfig, batch: int, max_len: int):
        self.shape = (batch, cfg.heads, max_len, cfg.head_dim)
        self.k: list[torch.Tensor | None] = [None] * cfg.layers
        self.v: list[torch.Tensor | None] = [None] * cfg.layers
        self.length = 0
        self.max_len = max_len

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's k, v [B, H, T, D] after the filled part; return all keys/values so far."""
        end = self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache overflow: {end} positions > max_len {self.max_len}")
        if self.k[layer] is None:
            self.k[layer] = k.new_zeros(self.shape)
            self.v[layer] = v.new_zeros(self.shape)
        self.k[layer][:, :, self.length:end] = k
        self.v[layer][:, :, self.length:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


def rotary(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [B, 1, T, head_dim/2] for integer positions [B, T] (float32)."""
    inv = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    ang = positions.float()[..., None] * inv
    return ang.cos()[:, None], ang.sin()[:, None]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the two halves of each head (rotate-half convention), in x's dtype.

    Under bf16 autocast q and k arrive in bf16; rotating them in float32 moved three times
    the bytes (casts both ways, float32 products) for a precision SDPA drops right after.
    """
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def right_padded(key_valid: torch.Tensor) -> bool:
    """Whether no row of ``key_valid`` [B, T] has a pad before a real token."""
    return bool((key_valid[:, 1:] <= key_valid[:, :-1]).all())


def attention_mask(key_valid: torch.Tensor | None, q_len: int, past: int,
                   causal: bool | None = None) -> torch.Tensor | None:
    """Boolean [B, 1, q_len, past+q_len] mask (True = attend), or None when plain causal suffices.

    ``key_valid`` [B, past+q_len] marks real tokens. Plain causal (SDPA's fast path) is exact
    when there is no cache and no row has a pad before a real token (right padding only
    pads positions whose outputs carry no loss); ``causal`` is that answer when the caller
    already has it (None: read it from ``key_valid``, a device sync on CUDA). Rows of pad
    queries that would see no key may attend to themselves so SDPA never returns NaN.
    """
    if past == 0 and (key_valid is None or (causal if causal is not None else right_padded(key_valid))):
        return None
    total = past + q_len
    qpos = torch.arange(past, total, device=key_valid.device)[:, None]
    kpos = torch.arange(total, device=key_valid.device)[None, :]
    mask = (kpos <= qpos)[None] & key_valid[:, None, :]
    mask = mask | (kpos == qpos)[None]
    return mask[:, None]


class Attention(nn.Module):
    """Plain multi-head attention with rotary positions."""

    def __init__(self, cfg: DecoderConfig, layer: int):
        super().__init__()
        self.layer, self.heads, self.head_dim = layer, cfg.heads, cfg.head_dim
        inner = cfg.heads * cfg.head_dim
        self.q = nn.Linear(cfg.width, inner, bias=False)
        self.k = nn.Linear(cfg.width, inner, bias=False)
        self.v = nn.Linear(cfg.width, inner, bias=False)
        self.o = nn.Linear(inner, cfg.width, bias=False)

    def forward(self, x, cos, sin, mask, cache: KVCache | None) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (p(x).view(b, t, self.heads, self.head_dim).transpose(1, 2) for p in (self.q, self.k, self.v))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)
        if mask is None:
            # No mask only without past keys (attention_mask), so queries and keys are the
            # same positions and plain causal is exact, one token included. (A flag such as
            # t > 1 is symbolic under dynamic shapes, and SDPA's is_causal then breaks the
            # compiled graph at every attention call.)
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.o(out.transpose(1, 2).reshape(b, t, -1))


class Block(nn.Module):
    """Pre-norm block: attention then a dense SwiGLU or MoE MLP."""

    def __init__(self, cfg: DecoderConfig, layer: int):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.width, cfg.norm_eps)
        self.attn = Attention(cfg, layer)
        self.mlp_norm = RMSNorm(cfg.width, cfg.norm_eps)
        self.is_moe = cfg.is_moe_layer(layer)
        if self.is_moe:
            self.mlp = MoE(cfg.width, cfg.n_routed, cfg.n_shared, cfg.top_k, cfg.moe_inter, cfg.norm_topk_prob,
                           cfg.aux_loss_per_sequence)
        else:
            self.mlp = SwiGLU(cfg.width, cfg.dense_inter)

    def forward(self, x, cos, sin, mask, cache, valid) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = x + self.attn(self.attn_norm(x), cos, sin, mask, cache)
        h = self.mlp_norm(x)
        if self.is_moe:
            y, aux = self.mlp(h, valid)
            return x + y, aux
        return x + self.mlp(h), None


class Decoder(nn.Module):
    """Token embeddings -> blocks -> norm -> logits."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.width)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.layers))
        self.norm = RMSNorm(cfg.width, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.width, cfg.vocab_size, bias=False)
        self.grad_checkpointing = False
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight

    def forward(self, embeds: torch.Tensor, positions: torch.Tensor, key_valid: torch.Tensor | None,
                cache: KVCache | None = None, causal: bool | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """embeds [B, T, D], positions [B, T], key_valid [B, past+T] bool -> (logits, summed aux loss).

        With a cache, the T new positions are appended after ``cache.length`` and the
        cache length advances by T. ``causal``: whether ``key_valid`` is right-padded only,
        when the caller knows (see :func:`attention_mask`).
        """
        past = cache.length if cache is not None else 0
        t = embeds.shape[1]
        if key_valid is None and past:
            key_valid = torch.ones(embeds.shape[0], past + t, dtype=torch.bool, device=embeds.device)
        mask = attention_mask(key_valid, t, past, causal)
        cos, sin = rotary(positions, self.cfg.head_dim, self.cfg.rope_theta)
        valid = key_valid[:, past:] if key_valid is not None else None
        x, aux = embeds, None
        for blk in self.blocks:
            x, a = call_block(blk, x, cos, sin, mask, cache, valid, checkpoint=self.grad_checkpointing and cache is None)
            if a is not None:
                aux = a if aux is None else aux + a
        if cache is not None:
            cache.length += t
        return self.lm_head(self.norm(x)), aux
