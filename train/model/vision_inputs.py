"""Fitting a page image to a resolution mode (pure CPU; runs in DataLoader workers).

Modes (DESIGN.md §1): ``tiny``/``small`` resize to a square (aspect not kept), ``base``/
``large`` letterbox into a grey square (aspect kept), ``gundam`` stretches the page to an
i x j grid of tiles plus a letterboxed global view, and ``gundam_m`` (the paper's Gundam-M,
n x 1024 tiles + a 1280 global view) does the same with bigger tiles and view. Pixels stay uint8 here; the encoder
normalises them (mean 0.5, std 0.5) on its device with :func:`normalise_pixels`.

As in the official code, a page whose sides are both at most a tile's side gets no tiles
in a tiled mode (its global view only, grid (0, 0)), and the letterbox centres the page at
``round(margin / 2)`` (Python's round, half to even: PIL's ``ImageOps.pad``).
``EncoderConfig.resize_kernel`` picks the resampler: "pil" runs PIL's BICUBIC resize and
``ImageOps.pad`` exactly as the official ``infer()`` does (the same bytes), "torch" the
faster uint8 kernel (within a few grey levels of PIL).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from train.configs import MODES, TILED_MODES, EncoderConfig

PAD_GREY = (127, 127, 127)
MEAN, STD = 0.5, 0.5


@dataclass
class VisionInput:
    """One image ready for the encoder.

    global_view: [3, S, S] uint8 RGB pixels (the encoder normalises them on its device:
        DataLoader workers ship a quarter of float32's bytes to the trainer and the GPU).
    tiles: [n, 3, T, T] uint8, in raster order (row by row) for gundam and gundam_m, else None
        (a tiled mode's page no bigger than a tile has none).
    grid: (nw, nh) tiles across and down; (0, 0) when there are no tiles.
    mode: the resolution mode it was fitted for; it decides how many placeholder tokens
        the image takes, so a batch may mix modes (multi-resolution training).
    """

    global_view: torch.Tensor
    tiles: torch.Tensor | None
    grid: tuple[int, int]
    mode: str

    def pin_memory(self) -> VisionInput:
        """A copy in page-locked memory (the DataLoader calls this with ``pin_memory=True``),
        so the trainer's non-blocking copies to the GPU really overlap."""
        tiles = self.tiles.pin_memory() if self.tiles is not None else None
        return VisionInput(self.global_view.pin_memory(), tiles, self.grid, self.mode)


def _pixels(img: Image.Image) -> torch.Tensor:
    """uint8 [3, H, W] view of an RGB image (channels-last strides, no copy beyond numpy's)."""
    rgb = img if img.mode == "RGB" else img.convert("RGB")
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)


def _resize(x: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """uint8 [3, H, W] -> [3, height, width] with antialiased bicubic.

    torch's uint8 kernel reproduces PIL's BICUBIC (a = -0.5, support widened when
    shrinking) to within two grey levels at about 7x its speed on one core (1.0 against
    6.7 ms for a 725x1024 page to 362x512); resizing was the loader's largest cost.
    """
    if x.shape[1:] == (height, width):
        return x
    return F.interpolate(x[None], size=(height, width), mode="bicubic", antialias=True, align_corners=False)[0]


def normalise_pixels(x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 pixels -> the encoder's input, ``(x/255 - mean)/std`` = ``x/127.5 - 1``, in ``dtype``."""
    if x.dtype != torch.uint8:
        raise TypeError(f"normalise_pixels: pixels must be uint8 (what fit_image returns), got {x.dtype}")
    return x.to(dtype).mul_(1.0 / (255.0 * STD)).sub_(MEAN / STD)


def contained_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(w, h) of a width x height page scaled to fit a ``size`` square, aspect kept
    (PIL's ``ImageOps.contain``, whose rounding the official preprocessing has)."""
    if width > height:
        return size, max(1, round(height / width * size))
    if height > width:
        return max(1, round(width / height * size)), size
    return size, size


def letterbox(x: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [3, H, W] scaled to fit a ``size`` square, aspect kept, centred on grey
    (``ImageOps.pad``'s offsets: round half to even)."""
    h, w = x.shape[1:]
    nw, nh = contained_size(w, h, size)
    canvas = torch.tensor(PAD_GREY, dtype=torch.uint8)[:, None, None].repeat(1, size, size)
    top, left = round((size - nh) / 2), round((size - nw) / 2)
    canvas[:, top:top + nh, left:left + nw] = _resize(x, nw, nh)
    return canvas


def candidate_grids(enc: EncoderConfig) -> list[tuple[int, int]]:
    """All (nw, nh) with min_tiles <= nw*nh <= max_tiles, fewest tiles first."""
    lo, hi = enc.gundam_min_tiles, enc.gundam_max_tiles
    grids = [(i, j) for i in range(1, hi + 1) for j in range(1, hi + 1) if lo <= i * j <= hi]
    return sorted(grids, key=lambda g: (g[0] * g[1], g[0], g[1]))


def gundam_grid(width: int, height: int, enc: EncoderConfig, mode: str = "gundam") -> tuple[int, int]:
    """The tiling (nw, nh) of a tiled ``mode`` whose aspect ratio nw/nh is nearest width/height.

    Ties go to the grid with more tiles when the page has more than half their pixel area
    (the InternVL / DeepSeek-OCR rule), else to the one with fewer tiles.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width}x{height}: both sides must be positive")
    tile = enc.tile_side(mode)
    aspect = width / height
    best, best_diff = None, float("inf")
    for nw, nh in candidate_grids(enc):
        diff = abs(aspect - nw / nh)
        if diff < best_diff:
            best, best_diff = (nw, nh), diff
        elif diff == best_diff and width * height > 0.5 * tile ** 2 * nw * nh:
            best = (nw, nh)
    assert best is not None
    return best


def tiling(mode: str, width: int, height: int, enc: EncoderConfig) -> tuple[int, int]:
    """The tile grid an image of ``width`` x ``height`` gets in ``mode``: :func:`gundam_grid`
    in a tiled mode, (0, 0) otherwise or when both sides fit in one tile (the official
    rule: a page of at most 640 x 640 px gets Gundam's global view only)."""
    if mode not in TILED_MODES:
        return (0, 0)
    t = enc.tile_side(mode)
    if width <= t and height <= t:
        return (0, 0)
    return gundam_grid(max(1, width), max(1, height), enc, mode)


def _pil_view(img: Image.Image, mode: str, size: int) -> torch.Tensor:
    """The official ``infer()``'s global view: a PIL BICUBIC resize to the square in Tiny
    and Small, ``ImageOps.pad`` in grey otherwise."""
    if mode in ("tiny", "small"):
        return _pixels(img.resize((size, size), Image.Resampling.BICUBIC))
    return _pixels(ImageOps.pad(img, (size, size), Image.Resampling.BICUBIC, color=PAD_GREY))


def fit_image(img: Image.Image, mode: str, enc: EncoderConfig) -> VisionInput:
    """Resize / pad / tile ``img`` for ``mode`` into uint8 tensors (see module docstring)."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: valid modes are {MODES}")
    pil = enc.resize_kernel == "pil"
    if pil and img.mode != "RGB":
        img = img.convert("RGB")
    x = None if pil else _pixels(img)
    size = enc.image_size(mode)
    if mode in ("tiny", "small"):
        view = _pil_view(img, mode, size) if pil else _resize(x, size, size)
        return VisionInput(view.contiguous(), None, (0, 0), mode)
    global_view = _pil_view(img, mode, size).contiguous() if pil else letterbox(x, size)
    nw, nh = tiling(mode, img.width, img.height, enc)
    if mode not in TILED_MODES or nw == 0:
        return VisionInput(global_view, None, (0, 0), mode)
    t = enc.tile_side(mode)
    page = _pixels(img.resize((t * nw, t * nh), Image.Resampling.BICUBIC)) if pil else _resize(x, t * nw, t * nh)
    tiles = page.reshape(3, nh, t, nw, t).permute(1, 3, 0, 2, 4).reshape(nh * nw, 3, t, t).contiguous()
    return VisionInput(global_view, tiles, (nw, nh), mode)


def num_image_tokens(mode: str, enc: EncoderConfig, grid: tuple[int, int] | None = None) -> int:
    """Placeholders one image takes in ``mode``: grid rows with a newline each, one separator.

    Tiled modes need the tiling ``grid`` = (nw, nh) (what :func:`tiling` gives) and add
    (q*nw + 1) * (q*nh) local tokens, q the tile's tokens per side (10 for Gundam, 16 for
    Gundam-M in the paper); grid (0, 0) is a page without tiles (the global view only),
    and no grid at all an error (a caller that forgot it).
    """
    q = enc.token_side(enc.image_size(mode))
    n = q * (q + 1) + 1
    if mode not in TILED_MODES:
        return n
    nw, nh = grid if grid is not None else (-1, -1)
    if (nw, nh) == (0, 0):
        return n
    if nw < 1 or nh < 1:
        raise ValueError(f"num_image_tokens: {mode} needs a tiling grid (nw, nh) >= (1, 1), or (0, 0) for no "
                         f"tiles, got {grid}")
    qt = enc.token_side(enc.tile_side(mode))
    return n + (qt * nw + 1) * (qt * nh)
