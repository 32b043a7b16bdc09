"""Our parameter names and layouts <-> the released DeepSeek-OCR checkpoint's.

One table, :func:`pieces`, relates the two: each :class:`Piece` says that a region of an
official tensor equals a region of one of our parameters, reshaped. Loading copies every
official tensor's pieces into our parameters, exporting fills every official tensor from
ours, and both check that the pieces cover each tensor exactly once, so no element is
left at random init or written twice.

The layouts that differ (everything else is a rename):

* decoder dense and shared-expert MLPs: our ``gate_up`` Linear holds the official
  ``gate_proj`` rows, then ``up_proj``'s;
* routed experts: ours are stacked, ``w_gate_up`` [E, 2I, D] (gate rows, then up) and
  ``w_down`` [E, D, I]; the official ones are per expert ``experts.{e}.{gate,up,down}_proj``;
* SAM's ``pos_embed`` is [G, G, C] here, [1, G, G, C] there;
* CLIP's ``position_embedding`` [1 + G*G, C] is our ``class_pos`` (row 0, the class
  token's position) and ``pos_embed`` [G, G, C] (rows 1...);
* CLIP's ``patch_embedding`` is in the checkpoint but unused (CLIP takes SAM's features),
  so it has no piece: the loader keeps it aside and the exporter writes it back.

:func:`official_targets` maps a module (or parameter) path of our model to the official
module(s) it becomes, with the expert index and output rows of each: what an export of
LoRA adapters needs to split a fused or stacked adapter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from train.configs import DecoderConfig, EncoderConfig, ModelConfig
from train.model.ocr_model import OCRModel

# The one official tensor our model has no parameter for (see the module docstring).
CLIP_PATCH_EMBEDDING = "model.vision_model.embeddings.patch_embedding.weight"
CLIP_PATCH = 14  # CLIP-L/14's patch side, the unused patch embedding's kernel
CLIP_POSITIONS = "model.vision_model.embeddings.position_embedding.weight"


@dataclass(frozen=True)
class Piece:
    """``official[official_index]`` equals ``ours[ours_index]`` viewed with the official region's shape.

    An index is a tuple of ints / (start, stop) pairs, one per leading axis, () for all.
    """

    official: str
    ours: str
    official_index: tuple = ()
    ours_index: tuple = ()


@dataclass(frozen=True)
class OfficialTarget:
    """Where (part of) one of our modules goes in the official model.

    module: the official module path (its parameter is ``module + ".weight"``/``".bias"``).
    expert: for our stacked expert weights, the expert (index into our dim 0); else None.
    rows: (start, stop) of our (expert's) output rows that form this module, for fused
        gate/up weights; None when the module takes all of them.
    """

    module: str
    expert: int | None = None
    rows: tuple[int, int] | None = None


def region(t: torch.Tensor, index: tuple) -> torch.Tensor:
    """The region (a view) of tensor ``t`` that a Piece index names: ints pick, (start, stop) pairs slice."""
    return t[tuple(slice(*i) if isinstance(i, tuple) else i for i in index)] if index else t


def _encoder_pieces(enc: EncoderConfig) -> list[Piece]:
    s, o = "model.sam_model.", "encoder.sam."
    out = [Piece(s + "pos_embed", o + "pos_embed", (0,)),
           Piece(s + "patch_embed.proj.weight", o + "patch_embed.weight"),
           Piece(s + "patch_embed.proj.bias", o + "patch_embed.bias")]
    for i in range(enc.sam_depth):
        b, ob = f"{s}blocks.{i}.", f"{o}blocks.{i}."
        for name in ("norm1.weight", "norm1.bias", "attn.rel_pos_h", "attn.rel_pos_w", "attn.qkv.weight",
                     "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias", "norm2.weight", "norm2.bias"):
            if enc.sam_rel_pos or "rel_pos" not in name:
                out.append(Piece(b + name, ob + name))
        for theirs, ours in (("lin1", "fc1"), ("lin2", "fc2")):
            for leaf in ("weight", "bias"):
                out.append(Piece(f"{b}mlp.{theirs}.{leaf}", f"{ob}mlp.{ours}.{leaf}"))
    for name in ("neck.0.weight", "neck.1.weight", "neck.1.bias", "neck.2.weight", "neck.3.weight", "neck.3.bias"):
        out.append(Piece(s + name, o + name))
    out += [Piece(s + "net_2.weight", "encoder.compressor.conv1.weight"),
            Piece(s + "net_3.weight", "encoder.compressor.conv2.weight")]
    v, c = "model.vision_model.", "encoder.clip."
    out += [Piece(v + "embeddings.class_embedding", c + "class_embedding"),
            Piece(CLIP_POSITIONS, c + "class_pos", (0,)),
            Piece(CLIP_POSITIONS, c + "pos_embed", ((1, 1 + enc.clip_pos_grid ** 2),)),
            Piece(v + "pre_layrnorm.weight", c + "pre_ln.weight"),
            Piece(v + "pre_layrnorm.bias", c + "pre_ln.bias")]
    for i in range(enc.clip_depth):
        b, ob = f"{v}transformer.layers.{i}.", f"{c}blocks.{i}."
        for theirs, ours in (("self_attn.qkv_proj", "attn.qkv"), ("self_attn.out_proj", "attn.proj"),
                             ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2"), ("layer_norm1", "ln1"),
                             ("layer_norm2", "ln2")):
            for leaf in ("weight", "bias"):
                out.append(Piece(f"{b}{theirs}.{leaf}", f"{ob}{ours}.{leaf}"))
    out += [Piece("model.projector.layers.weight", "encoder.projector.weight"),
            Piece("model.projector.layers.bias", "encoder.projector.bias"),
            Piece("model.image_newline", "encoder.image_newline"),
            Piece("model.view_seperator", "encoder.view_separator")]  # (sic): the official spelling
    return out


def _swiglu(theirs: str, ours: str, inter: int) -> list[Piece]:
    """A dense SwiGLU: our gate_up rows [0, inter) are gate_proj, [inter, 2 inter) up_proj."""
    return [Piece(f"{theirs}.gate_proj.weight", f"{ours}.gate_up.weight", (), ((0, inter),)),
            Piece(f"{theirs}.up_proj.weight", f"{ours}.gate_up.weight", (), ((inter, 2 * inter),)),
            Piece(f"{theirs}.down_proj.weight", f"{ours}.down.weight")]


def _decoder_pieces(dec: DecoderConfig) -> list[Piece]:
    out = [Piece("model.embed_tokens.weight", "decoder.embed.weight")]
    for i in range(dec.layers):
        t, o = f"model.layers.{i}.", f"decoder.blocks.{i}."
        out += [Piece(t + "input_layernorm.weight", o + "attn_norm.weight"),
                Piece(t + "post_attention_layernorm.weight", o + "mlp_norm.weight")]
        for p in "qkvo":
            out.append(Piece(f"{t}self_attn.{p}_proj.weight", f"{o}attn.{p}.weight"))
        if not dec.is_moe_layer(i):
            out += _swiglu(t + "mlp", o + "mlp", dec.dense_inter)
            continue
        inter = dec.moe_inter
        out.append(Piece(t + "mlp.gate.weight", o + "mlp.gate.weight"))
        for e in range(dec.n_routed):
            x = f"{t}mlp.experts.{e}."
            out += [Piece(x + "gate_proj.weight", o + "mlp.w_gate_up", (), (e, (0, inter))),
                    Piece(x + "up_proj.weight", o + "mlp.w_gate_up", (), (e, (inter, 2 * inter))),
                    Piece(x + "down_proj.weight", o + "mlp.w_down", (), (e,))]
        if dec.n_shared:
            out += _swiglu(t + "mlp.shared_experts", o + "mlp.shared", dec.n_shared * inter)
    out.append(Piece("model.norm.weight", "decoder.norm.weight"))
    if not dec.tie_embeddings:
        out.append(Piece("lm_head.weight", "decoder.lm_head.weight"))
    return out


_CACHE: dict[str, list[Piece]] = {}


def pieces(cfg: ModelConfig) -> list[Piece]:
    """Every piece of a stage-2 model of ``cfg``: decoder, then encoder."""
    key = repr(cfg)  # configs hold lists (unhashable); their repr is exact
    if key not in _CACHE:
        _CACHE[key] = _decoder_pieces(cfg.decoder) + _encoder_pieces(cfg.encoder)
    return _CACHE[key]


def official_shapes(cfg: ModelConfig, vocab_size: int | None = None) -> dict[str, tuple[int, ...]]:
    """Every official checkpoint key of a model of ``cfg`` with its shape (the unused CLIP
    patch embedding included): what a checkpoint must hold and what an export writes."""
    enc = cfg.encoder
    with torch.device("meta"):  # shapes only: nothing allocated
        model = OCRModel(cfg, vocab_size or cfg.decoder.vocab_size, 0)
    ours = dict(model.named_parameters())
    shapes: dict[str, tuple[int, ...]] = {}
    for p in pieces(cfg):
        ours_shape = tuple(region(ours[p.ours], p.ours_index).shape)
        if p.official == CLIP_POSITIONS:  # two pieces: the class row and the grid's rows
            shapes[p.official] = (1 + enc.clip_pos_grid ** 2, enc.clip_width)
        elif p.official_index:  # SAM's pos_embed: ours with a leading 1
            shapes[p.official] = (1, *ours_shape)
        else:
            shapes[p.official] = ours_shape
    shapes[CLIP_PATCH_EMBEDDING] = (enc.clip_width, 3, CLIP_PATCH, CLIP_PATCH)
    return shapes


# -- module paths, for adapters ---------------------------------------------------------
_LEAF = re.compile(r"\.(weight|bias)$")


def official_targets(path: str, cfg: ModelConfig) -> list[OfficialTarget]:
    """The official module(s) that our module (or parameter) ``path`` becomes.

    ``"decoder.blocks.3.attn.q"`` -> ``[model.layers.3.self_attn.q_proj]``;
    ``"decoder.blocks.0.mlp.gate_up"`` -> gate_proj (rows 0..I) and up_proj (rows I..2I);
    ``"decoder.blocks.1.mlp.w_gate_up"`` -> per expert e, ``experts.{e}.gate_proj`` and
    ``experts.{e}.up_proj`` with ``expert=e`` and their rows. A path that names no
    parameter of ``cfg``'s model raises ValueError.
    """
    want = {path + ".weight", path + ".bias", path}
    out: list[OfficialTarget] = []
    seen = set()
    for p in pieces(cfg):
        if p.ours not in want:
            continue
        module = _LEAF.sub("", p.official)
        expert = p.ours_index[0] if p.ours_index and isinstance(p.ours_index[0], int) else None
        rows_idx = p.ours_index[1:] if expert is not None else p.ours_index
        rows = rows_idx[0] if rows_idx and isinstance(rows_idx[0], tuple) else None
        t = OfficialTarget(module, expert, rows)
        if t not in seen:
            seen.add(t)
            out.append(t)
    if not out:
        raise ValueError(f"official_targets: {path!r} is no module or parameter of the model "
                         f"(e.g. 'decoder.blocks.0.attn.q', 'encoder.clip.blocks.0.attn.qkv')")
    return out
