"""Model configurations as data: ``tiny`` (CPU tests), ``small`` (one GPU) and ``paper``.

Every field is a simple, defaulted type, so a YAML (or JSON) file can start from a named
config and override any field (:func:`load_config`); ``run.json`` stores the resolved
config in the same shape, so a run can be rebuilt exactly. The defaults of
:class:`EncoderConfig` and :class:`DecoderConfig` are the paper's reference dimensions
(DESIGN.md §1); ``tiny`` and ``small`` shrink widths, depths and image sizes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields as dc_fields, replace
from pathlib import Path
from typing import Any

from synth.suggest import did_you_mean

MODES = ("tiny", "small", "base", "large", "gundam", "gundam_m")
# Modes that add local tiles to a padded global view: Gundam (n x 640 + 1024 in the paper)
# and Gundam-M, the "master" mode the paper reaches by continued training (n x 1024 + 1280).
TILED_MODES = ("gundam", "gundam_m")

RESIZE_KERNELS = ("torch", "pil")

# Two stride-2 convolutions after the 16 px patches: one vision token per 64 px.
COMPRESSION_STRIDE = 4


@dataclass
class EncoderConfig:
    """DeepEncoder: SAM-style ViTDet -> 16x compressor -> CLIP-style ViT -> projector.

    Fields:
        patch_size: pixels per SAM patch side.
        sam_width: SAM transformer width.
        sam_depth: number of SAM blocks.
        sam_heads: SAM attention heads.
        sam_mlp_ratio: SAM MLP hidden size / width.
        sam_window: side of SAM's attention windows, in patches (grid padded to multiples).
        sam_global_blocks: 0-based indices of SAM blocks with global attention.
        sam_img_size: image side SAM's absolute position embeddings (and the global blocks'
            relative position tables) are sized for; other sizes interpolate them.
        sam_rel_pos: add SAM's decomposed relative position bias in attention.
        sam_out_chans: channels of SAM's neck output.
        compressor_mid: channels after the first stride-2 conv (the second outputs clip_width).
        clip_width: CLIP transformer width (also the compressor's output channels).
        clip_depth: number of CLIP blocks.
        clip_heads: CLIP attention heads.
        clip_mlp_ratio: CLIP MLP hidden size / width.
        clip_pos_grid: side of CLIP's learned position-embedding grid (interpolated).
        clip_act: CLIP MLP activation, "quick_gelu" or "gelu".
        tiny_size: input side of mode "tiny" (resized).
        small_size: input side of mode "small" (resized).
        base_size: input side of mode "base" (padded).
        large_size: input side of mode "large" (padded).
        tile_size: side of a Gundam local tile.
        gundam_global_size: side of Gundam's padded global view.
        gundam_min_tiles: fewest Gundam tiles (i*j).
        gundam_max_tiles: most Gundam tiles (i*j): 9 in the official HF code (the default),
            6 in its vLLM config (``MAX_CROPS``); either is a valid choice for released weights.
        gundam_tokens_per_tile_side: q of DESIGN.md §1 (vision tokens per tile side); must
            equal tile_size / 64. Kept explicit so configs state the paper's q = 10.
        gundam_m_tile_size: side of a Gundam-M local tile (same tiling rule as Gundam).
        gundam_m_global_size: side of Gundam-M's padded global view.
        pos_antialias: resize SAM's and CLIP's absolute position tables (learned for
            sam_img_size and clip_pos_grid) to other grids with antialiased bicubic, as the
            official code does. False is the project's earlier plain bicubic: a config
            without this field (every run trained before it existed) keeps that behaviour.
            Official weights set it (train.official); Base mode (the learned grid) is the same either way.
        resize_kernel: how pages are resized to views: "torch" (the uint8 antialiased
            bicubic kernel, about 7x faster than PIL, within a few grey levels of it) or "pil"
            (PIL's BICUBIC and ImageOps.pad, the official preprocessing pixel for pixel).
    """

    patch_size: int = 16
    sam_width: int = 768
    sam_depth: int = 12
    sam_heads: int = 12
    sam_mlp_ratio: float = 4.0
    sam_window: int = 14
    sam_global_blocks: list[int] = field(default_factory=lambda: [2, 5, 8, 11])
    sam_img_size: int = 1024
    sam_rel_pos: bool = True
    sam_out_chans: int = 256
    compressor_mid: int = 512
    clip_width: int = 1024
    clip_depth: int = 24
    clip_heads: int = 16
    clip_mlp_ratio: float = 4.0
    clip_pos_grid: int = 16
    clip_act: str = "quick_gelu"
    tiny_size: int = 512
    small_size: int = 640
    base_size: int = 1024
    large_size: int = 1280
    tile_size: int = 640
    gundam_global_size: int = 1024
    gundam_min_tiles: int = 2
    gundam_max_tiles: int = 9
    gundam_tokens_per_tile_side: int = 10
    gundam_m_tile_size: int = 1024
    gundam_m_global_size: int = 1280
    pos_antialias: bool = False
    resize_kernel: str = "torch"

    def __post_init__(self) -> None:
        unit = self.patch_size * COMPRESSION_STRIDE
        for name in ("tiny_size", "small_size", "base_size", "large_size", "tile_size",
                     "gundam_global_size", "gundam_m_tile_size", "gundam_m_global_size", "sam_img_size"):
            v = getattr(self, name)
            if v <= 0 or v % unit:
                raise ValueError(f"EncoderConfig.{name}={v}: must be a positive multiple of "
                                 f"{unit} (patch_size {self.patch_size} x compression {COMPRESSION_STRIDE})")
        if self.tile_size // unit != self.gundam_tokens_per_tile_side:
            raise ValueError(f"EncoderConfig.gundam_tokens_per_tile_side={self.gundam_tokens_per_tile_side}: "
                             f"must equal tile_size/{unit} = {self.tile_size // unit}")
        bad = [i for i in self.sam_global_blocks if not 0 <= i < self.sam_depth]
        if bad:
            raise ValueError(f"EncoderConfig.sam_global_blocks={self.sam_global_blocks}: indices {bad} "
                             f"outside 0..{self.sam_depth - 1}")
        if self.resize_kernel not in RESIZE_KERNELS:
            raise ValueError(f"EncoderConfig.resize_kernel={self.resize_kernel!r}: valid are {', '.join(RESIZE_KERNELS)}")
        if self.clip_act not in ("quick_gelu", "gelu"):
            raise ValueError(f"EncoderConfig.clip_act={self.clip_act!r}: valid are 'quick_gelu', 'gelu'")
        for name, w, h in (("sam", self.sam_width, self.sam_heads), ("clip", self.clip_width, self.clip_heads)):
            if w % h:
                raise ValueError(f"EncoderConfig.{name}_width={w} not divisible by {name}_heads={h}")
        if not 1 <= self.gundam_min_tiles <= self.gundam_max_tiles:
            raise ValueError(f"EncoderConfig.gundam_min_tiles={self.gundam_min_tiles}, gundam_max_tiles="
                             f"{self.gundam_max_tiles}: need 1 <= min <= max")

    def image_size(self, mode: str) -> int:
        """Side of the (global) view fed to the encoder in ``mode``."""
        sizes = {"tiny": self.tiny_size, "small": self.small_size, "base": self.base_size,
                 "large": self.large_size, "gundam": self.gundam_global_size,
                 "gundam_m": self.gundam_m_global_size}
        if mode not in sizes:
            raise ValueError(f"mode={mode!r}: valid modes are {MODES}")
        return sizes[mode]

    def tile_side(self, mode: str) -> int:
        """Side of one local tile in a tiled mode (``TILED_MODES``)."""
        if mode == "gundam":
            return self.tile_size
        if mode == "gundam_m":
            return self.gundam_m_tile_size
        raise ValueError(f"mode={mode!r} has no tiles: tiled modes are {TILED_MODES}")

    def token_side(self, size: int) -> int:
        """Vision tokens per side for an input of ``size`` pixels."""
        return size // (self.patch_size * COMPRESSION_STRIDE)


@dataclass
class DecoderConfig:
    """DeepSeek-MoE-style decoder (n_routed = 0 gives a dense decoder).

    Fields:
        width: hidden size.
        layers: number of transformer blocks.
        heads: attention heads (plain multi-head attention).
        head_dim: per-head size (heads * head_dim need not equal width).
        dense_inter: SwiGLU intermediate size of the dense layers.
        first_dense_layers: how many leading layers use the dense MLP (the rest are MoE).
        n_routed: routed experts per MoE layer (0: every layer dense).
        n_shared: shared experts per MoE layer (fused into one SwiGLU of n_shared*moe_inter).
        top_k: routed experts per token.
        moe_inter: intermediate size of one expert.
        norm_topk_prob: renormalise the top-k routing weights to sum to 1.
        vocab_size: vocabulary size (the model constructor's vocab_size overrides it).
        max_seq_len: longest sequence (prompt + generation) the model is meant for.
        rope_theta: rotary embedding base.
        aux_loss_coef: weight of the load-balancing loss, summed over MoE layers.
        aux_loss_per_sequence: take the balance loss per sequence and average it over the
            batch (the official DeepSeek-V2 ``seq_aux``, on in the released checkpoint's
            config and so for ``--init-official`` runs), instead of over the batch's tokens.
        norm_eps: RMSNorm epsilon.
        tie_embeddings: share the input embedding with the output head.
    """

    width: int = 1280
    layers: int = 12
    heads: int = 10
    head_dim: int = 128
    dense_inter: int = 6848
    first_dense_layers: int = 1
    n_routed: int = 64
    n_shared: int = 2
    top_k: int = 6
    moe_inter: int = 896
    norm_topk_prob: bool = False
    vocab_size: int = 129280
    max_seq_len: int = 8192
    rope_theta: float = 10000.0
    aux_loss_coef: float = 0.001
    aux_loss_per_sequence: bool = False
    norm_eps: float = 1e-6
    tie_embeddings: bool = False

    def __post_init__(self) -> None:
        if self.n_routed and not 1 <= self.top_k <= self.n_routed:
            raise ValueError(f"DecoderConfig.top_k={self.top_k}: must be in 1..n_routed={self.n_routed}")
        if self.head_dim % 2:
            raise ValueError(f"DecoderConfig.head_dim={self.head_dim}: must be even for rotary embeddings")
        for name in ("width", "layers", "heads", "head_dim", "dense_inter", "vocab_size", "max_seq_len"):
            if getattr(self, name) <= 0:
                raise ValueError(f"DecoderConfig.{name}={getattr(self, name)}: must be positive")

    def is_moe_layer(self, i: int) -> bool:
        """Whether block ``i`` uses the MoE MLP."""
        return self.n_routed > 0 and i >= self.first_dense_layers


@dataclass
class ModelConfig:
    """A whole model: encoder, stage-2 decoder, and the compact stage-1 decoder."""

    name: str
    encoder: EncoderConfig
    decoder: DecoderConfig
    stage1_decoder: DecoderConfig


def _tiny() -> ModelConfig:
    enc = EncoderConfig(
        sam_width=32, sam_depth=2, sam_heads=2, sam_window=4, sam_global_blocks=[1], sam_img_size=128,
        sam_out_chans=16, compressor_mid=32, clip_width=32, clip_depth=2, clip_heads=2, clip_pos_grid=2,
        tiny_size=64, small_size=128, base_size=192, large_size=256, tile_size=128,
        gundam_global_size=192, gundam_tokens_per_tile_side=2, gundam_m_tile_size=192, gundam_m_global_size=256,
    )
    dec = DecoderConfig(width=64, layers=2, heads=4, head_dim=16, dense_inter=128, n_routed=8, n_shared=1,
                        top_k=2, moe_inter=32, vocab_size=512, max_seq_len=1024, aux_loss_coef=0.01)
    s1 = DecoderConfig(width=48, layers=2, heads=4, head_dim=12, dense_inter=96, n_routed=0, n_shared=0,
                       top_k=1, moe_inter=0, vocab_size=512, max_seq_len=1024)
    return ModelConfig("tiny", enc, dec, s1)


def _small() -> ModelConfig:
    # Half the paper's image sides: base 512 px gives 8x8 tokens (73 with newlines).
    # Window 8 tiles the 16/32/40-patch grids of tiny/base/large exactly: no padded tokens
    # are computed (window 14 would pad base's 32x32 grid to 42x42, 1.7x the work).
    enc = EncoderConfig(
        sam_width=384, sam_depth=6, sam_heads=6, sam_window=8, sam_global_blocks=[1, 3, 5], sam_img_size=512,
        sam_out_chans=128, compressor_mid=256, clip_width=384, clip_depth=6, clip_heads=6, clip_pos_grid=8,
        tiny_size=256, small_size=320, base_size=512, large_size=640, tile_size=320,
        gundam_global_size=512, gundam_tokens_per_tile_side=5, gundam_m_tile_size=512, gundam_m_global_size=640,
    )
    dec = DecoderConfig(width=512, layers=8, heads=8, head_dim=64, dense_inter=1408, n_routed=8, n_shared=1,
                        top_k=2, moe_inter=256, vocab_size=8192, max_seq_len=4096)
    s1 = DecoderConfig(width=384, layers=4, heads=6, head_dim=64, dense_inter=1536, n_routed=0, n_shared=0,
                       top_k=1, moe_inter=0, vocab_size=8192, max_seq_len=4096)
    return ModelConfig("small", enc, dec, s1)


def _paper() -> ModelConfig:
    # Stage 1's compact LM follows Vary (an OPT-125M-sized dense decoder).
    s1 = DecoderConfig(width=768, layers=12, heads=12, head_dim=64, dense_inter=3072, n_routed=0, n_shared=0,
                       top_k=1, moe_inter=0)
    return ModelConfig("paper", EncoderConfig(), DecoderConfig(), s1)


_CONFIGS = {"tiny": _tiny, "small": _small, "paper": _paper}
CONFIG_NAMES = tuple(_CONFIGS)


def get_config(name: str) -> ModelConfig:
    """A fresh ModelConfig by name: one of ``tiny``, ``small``, ``paper``."""
    if name not in _CONFIGS:
        raise ValueError(f"model config {name!r} unknown{did_you_mean(name, _CONFIGS)}: valid names are "
                         f"{', '.join(sorted(_CONFIGS))}")
    return _CONFIGS[name]()


_SECTIONS = {"encoder": EncoderConfig, "decoder": DecoderConfig, "stage1_decoder": DecoderConfig}


def config_from_dict(data: dict[str, Any], source: str = "config") -> ModelConfig:
    """A ModelConfig from a mapping: ``base`` (a named config, default ``paper``), an optional
    ``name``, and ``encoder`` / ``decoder`` / ``stage1_decoder`` mappings of fields to override.

    ``dataclasses.asdict(cfg)`` (what run.json stores) is such a mapping and gives ``cfg``
    back. Errors name ``source``, the key and the value, and list what would be valid.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping with keys base, name, {', '.join(_SECTIONS)}; "
                         f"got {type(data).__name__}")
    keys = ("base", "name", *_SECTIONS)
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise ValueError(f"{source}: unknown key {unknown[0]!r}{did_you_mean(unknown[0], keys)}; "
                         f"valid keys are {', '.join(keys)}")
    base_name = data.get("base", "paper")
    if base_name not in _CONFIGS:
        raise ValueError(f"{source}: base = {base_name!r}{did_you_mean(str(base_name), _CONFIGS)}: "
                         f"valid names are {', '.join(sorted(_CONFIGS))}")
    from synth.recipe import check_options  # the recipe loader's field checks, shared

    base = get_config(base_name)
    sections = {}
    for key, cls in _SECTIONS.items():
        given = data.get(key) or {}
        fields = [f.name for f in dc_fields(cls)]
        bad = sorted(set(given) - set(fields)) if isinstance(given, dict) else []
        if bad:
            raise ValueError(f"{source}: {key}.{bad[0]}: unknown option{did_you_mean(bad[0], fields)}; "
                             f"valid options: {', '.join(sorted(fields))}")
        values = check_options(cls, given, f"{source}: {key}")
        try:
            sections[key] = replace(getattr(base, key), **values)
        except ValueError as err:  # __post_init__'s own checks
            raise ValueError(f"{source}: {err}") from None
    name = data.get("name", base_name if source == "config" else Path(source).stem)
    if not isinstance(name, str):
        raise ValueError(f"{source}: name = {name!r}: expected a string")
    return ModelConfig(name, sections["encoder"], sections["decoder"], sections["stage1_decoder"])


def load_config(spec: str) -> ModelConfig:
    """A named config (``tiny``/``small``/``paper``) or a YAML/JSON file read by :func:`config_from_dict`."""
    if spec in _CONFIGS:
        return get_config(spec)
    path = Path(spec)
    if path.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise ValueError(f"model config {spec!r} unknown{did_you_mean(spec, _CONFIGS)}: give one of "
                         f"{', '.join(sorted(_CONFIGS))} or a .yaml/.json file")
    if not path.is_file():
        raise FileNotFoundError(f"model config file {spec!r} does not exist")
    text = path.read_text()
    if path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    return config_from_dict(data if data is not None else {}, source=str(path))


def with_vocab(dec: DecoderConfig, vocab_size: int) -> DecoderConfig:
    """A copy of ``dec`` with the tokenizer's vocabulary size."""
    return replace(dec, vocab_size=vocab_size)
