"""Small building blocks shared by the encoder and the decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn


def call_block(block: nn.Module, *args, checkpoint: bool = False):
    """``block(*args)``; with ``checkpoint`` (and autograd recording) the block's activations
    are recomputed in backward instead of stored: one more forward for a block's worth of
    memory."""
    if checkpoint and torch.is_grad_enabled():
        return torch.utils.checkpoint.checkpoint(block, *args, use_reentrant=False)
    return block(*args)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a [B, C, H, W] map (SAM's neck norm)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class RMSNorm(nn.Module):
    """Root-mean-square norm, computed in float32 for bf16 stability."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # F.rms_norm: one fused kernel where the backend has one, instead of five elementwise ones.
        return F.rms_norm(x.float(), self.weight.shape, self.weight.float(), self.eps).to(x.dtype)


class QuickGELU(nn.Module):
    """CLIP's x * sigmoid(1.702 x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class Mlp(nn.Module):
    """Two-layer transformer MLP."""

    def __init__(self, dim: int, hidden: int, act: nn.Module):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def interpolate_grid(table: torch.Tensor, h: int, w: int, antialias: bool = False) -> torch.Tensor:
    """Bicubically resize a [G, G, C] (or [Gh, Gw, C]) embedding grid to [h, w, C], in float32.

    ``antialias`` is the official DeepSeek-OCR resize (EncoderConfig.pos_antialias): its
    kernel is widened when shrinking and is the a = -0.5 cubic (PIL's) when enlarging, so
    it differs from plain bicubic (a = -0.75) either way.
    """
    if table.shape[0] == h and table.shape[1] == w:
        return table
    x = table.permute(2, 0, 1).unsqueeze(0).float()
    x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False, antialias=antialias)
    return x[0].permute(1, 2, 0).to(table.dtype)
