"""DeepEncoder: SAM -> compressor -> CLIP, concatenation, projector, and the token layout."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from train.configs import TILED_MODES, EncoderConfig
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

        A batch may mix resolution modes: views of one size are encoded together, whichever
        image and mode they belong to (Base and Gundam share the 1024² global view; all
        Gundam tiles of a batch go through SAM at once, all Gundam-M tiles likewise).
        """
        if not vision:
            return []
        for i, v in enumerate(vision):
            # A tiled mode's small page has no tiles (grid (0, 0)); other modes never have any.
            want_tiles = v.mode in TILED_MODES and tuple(v.grid) != (0, 0)
            if want_tiles != (v.tiles is not None):
                raise ValueError(f"vision input {i}: mode {v.mode!r} grid {tuple(v.grid)} with "
                                 f"{'no ' if v.tiles is None else ''}tiles; {' and '.join(TILED_MODES)} need tiles "
                                 f"unless their grid is (0, 0), and the other modes take none")
        p = next(self.parameters())
        # (image, "global"/"tiles") -> [n, 3, S, S] pixels, grouped by S.
        by_size: dict[int, list[tuple[int, str, torch.Tensor]]] = {}
        for i, v in enumerate(vision):
            by_size.setdefault(v.global_view.shape[-1], []).append((i, "global", v.global_view[None]))
            if v.tiles is not None:
                by_size.setdefault(v.tiles.shape[-1], []).append((i, "tiles", v.tiles))
        feats: dict[tuple[int, str], torch.Tensor] = {}
        for views in by_size.values():
            out = self.encode(normalise_pixels(torch.cat([x for _i, _k, x in views]).to(p.device), p.dtype))
            t0 = 0
            for i, kind, x in views:
                feats[(i, kind)] = out[t0:t0 + x.shape[0]]
                t0 += x.shape[0]
        embeds = []
        for i, v in enumerate(vision):
            g = feats[(i, "global")][0]
            parts = []
            if v.tiles is not None:
                nw, nh = v.grid
                tiles = feats[(i, "tiles")]
                q = tiles.shape[1]
                local = tiles.reshape(nh, nw, q, q, -1).permute(0, 2, 1, 3, 4)
                parts.append(self._with_newlines(local.reshape(nh * q, nw * q, -1)))
            parts += [self._with_newlines(g), self.view_separator.to(g.dtype)[None]]
            embeds.append(torch.cat(parts))
        return embeds
