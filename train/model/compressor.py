"""The 16x token compressor: two 3x3 stride-2 convolutions (256 -> 512 -> 1024 in the paper)."""

from __future__ import annotations

import torch
from torch import nn

from train.configs import EncoderConfig


class Compressor(nn.Module):
    """[B, sam_out, h, w] -> [B, clip_width, h/4, w/4]; no activation between (as the reference)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.conv1 = nn.Conv2d(cfg.sam_out_chans, cfg.compressor_mid, 3, stride=2, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cfg.compressor_mid, cfg.clip_width, 3, stride=2, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))
