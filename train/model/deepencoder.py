"""DeepEncoder: SAM -> compressor -> CLIP, concatenation, projector, and the token layout."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from train.configs import EncoderConfig
from train.model.clip import ClipVision
from train.model.compressor import Compressor
from train.model.sam import SamEncoder
from train.model.vision_inputs import VisionInput, normalise_pixels


class DeepEncoder(nn.Module):
    """Images -> decoder-width vision embeddings laid out as DESIGN.md §1 item 5."""

    def __init__(self, cfg: EncoderConfig, out_width: int):
        super().__init__()
        self.cfg = cfg
        self.sam = SamEncoder(cfg)
        self.compressor = Compressor(cfg)
        self.clip = ClipVision(cfg)
        self.projector = nn.Linear(2 * cfg.clip_width, out_width)
        std = out_width ** -0.5
        self.image_newline = nn.Parameter(torch.randn(out_width) * std)
        self.view_separator = nn.Parameter(torch.randn(out_width) * std)

    def _sam_frozen(self) -> bool:
        return not any(p.requires_grad for p in (*self.sam.parameters(), *self.compressor.parameters()))

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] normalised pixels -> [B, S/64, S/64, out_width] projected features."""
        # A frozen SAM sits at the input end: no gradient can flow through it, so skip autograd.
        ctx = torch.no_grad() if self._sam_frozen() else contextlib.nullcontext()
        with ctx:
            feats = self.compressor(self.sam(pixels))  # [B, C, h, w]
        b, c, h, w = feats.shape
        clip = self.clip(feats)[:, 1:]
        x = torch.cat([clip, feats.flatten(2).transpose(1, 2)], dim=-1)
        return self.projector(x).reshape(b, h, w, -1)

    def _with_newlines(self, grid: torch.Tensor) -> torch.Tensor:
        """[h, w, D] -> [h*(w+1), D]: each row followed by image_newline."""
        h, w, d = grid.shape
        nl = self.image_newline.to(grid.dtype).expand(h, 1, d)
        return torch.cat([grid, nl], dim=1).reshape(h * (w + 1), d)

    def forward(self, vision: list[VisionInput]) -> list[torch.Tensor]:
        """Per image, its [num_image_tokens, D] embeddings: (stitched tiles), global view, separator.

        A batch may mix resolution modes: global views of one size (Base and Gundam share
        1024²) are encoded together, and every Gundam tile in one batch.
        """
        if not vision:
            return []
        for i, v in enumerate(vision):
            if (v.mode == "gundam") != (v.tiles is not None):
                raise ValueError(f"vision input {i}: mode {v.mode!r} with {'no ' if v.tiles is None else ''}tiles; "
                                 "gundam needs tiles and the other modes take none")
        p = next(self.parameters())
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, v in enumerate(vision):
            by_size.setdefault(tuple(v.global_view.shape), []).append(i)
        glob: list[torch.Tensor | None] = [None] * len(vision)
        for idx in by_size.values():
            feats = self.encode(normalise_pixels(torch.stack([vision[i].global_view for i in idx]).to(p.device), p.dtype))
            for k, i in enumerate(idx):
                glob[i] = feats[k]
        tiled = [v.tiles for v in vision if v.tiles is not None]
        tiles = self.encode(normalise_pixels(torch.cat(tiled).to(p.device), p.dtype)) if tiled else None
        out, t0 = [], 0
        for i, v in enumerate(vision):
            g = glob[i]
            assert g is not None
            parts = []
            if v.tiles is not None:
                assert tiles is not None
                nw, nh = v.grid
                q = tiles.shape[1]
                local = tiles[t0:t0 + nw * nh].reshape(nh, nw, q, q, -1).permute(0, 2, 1, 3, 4)
                parts.append(self._with_newlines(local.reshape(nh * q, nw * q, -1)))
                t0 += nw * nh
            parts += [self._with_newlines(g), self.view_separator.to(g.dtype)[None]]
            out.append(torch.cat(parts))
        return out
