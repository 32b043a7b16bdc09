"""CLIP-style ViT whose patch embeddings are the compressed SAM features (own patchify bypassed)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from train.configs import EncoderConfig
from train.model.layers import Mlp, QuickGELU, call_block, interpolate_grid


class ClipAttention(nn.Module):
    """Global multi-head self-attention through scaled_dot_product_attention."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class ClipBlock(nn.Module):
    """Pre-LN transformer block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, act: str):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = ClipAttention(dim, heads)
        self.ln2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), QuickGELU() if act == "quick_gelu" else nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class ClipVision(nn.Module):
    """[B, C, h, w] features -> [B, 1 + h*w, C] (class token first)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        c = cfg.clip_width
        self.pos_antialias = cfg.pos_antialias
        self.class_embedding = nn.Parameter(torch.zeros(c))
        self.class_pos = nn.Parameter(torch.zeros(c))
        self.pos_embed = nn.Parameter(torch.zeros(cfg.clip_pos_grid, cfg.clip_pos_grid, c))
        self.pre_ln = nn.LayerNorm(c, eps=1e-5)
        self.blocks = nn.ModuleList(
            ClipBlock(c, cfg.clip_heads, cfg.clip_mlp_ratio, cfg.clip_act) for _ in range(cfg.clip_depth)
        )
        self.grad_checkpointing = False

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        b, c, h, w = feats.shape
        x = feats.flatten(2).transpose(1, 2)
        x = x + interpolate_grid(self.pos_embed, h, w, self.pos_antialias).reshape(h * w, c).to(x.dtype)
        cls = (self.class_embedding + self.class_pos).to(x.dtype).expand(b, 1, c)
        x = self.pre_ln(torch.cat([cls, x], dim=1))
        for blk in self.blocks:
            x = call_block(blk, x, checkpoint=self.grad_checkpointing)
        return x
