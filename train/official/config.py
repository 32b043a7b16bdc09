"""The released checkpoint's ``config.json`` <-> our :class:`~train.configs.ModelConfig`.

The official HF code reads the decoder's settings from config.json's top level (vLLM
from its ``language_config``, which repeats them); the vision tower is hard-coded there
(SAM ViT-B, CLIP-L/14, a linear projector to 1280), and ``vision_config`` only describes
it. So the decoder comes from config.json, and the encoder from the checkpoint's own
tensor shapes (widths, depths, windows, global blocks, position grids), cross-checked
with ``vision_config`` where it says something. A reduced checkpoint (the parity
fixture's 3-layer decoder, or the walkthrough's small vision tower) thus loads through
the same path as the real 3.3B one.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from train.configs import DecoderConfig, EncoderConfig, ModelConfig, get_config

ARCHITECTURE = "DeepseekOCRForCausalLM"
# Recognised and refused with their reason: checkpoints that are not DeepSeek-OCR.
OTHER_MODELS = {
    "DeepseekOCR2ForCausalLM": "DeepSeek-OCR-2, whose vision encoder differs (a Qwen2-style encoder in place of "
                               "CLIP, other key names and token layout)",
    "DeepseekVLV2ForCausalLM": "DeepSeek-VL2 (SigLIP encoder, MLA decoder)",
}
# DeepseekV2Config's defaults, for keys the released config.json leaves out.
LM_DEFAULTS: dict[str, Any] = {
    "n_routed_experts": None, "n_shared_experts": None, "first_k_dense_replace": 0, "moe_layer_freq": 1,
    "norm_topk_prob": False, "routed_scaling_factor": 1.0, "topk_method": "greedy", "scoring_func": "softmax",
    "n_group": 1, "topk_group": 1, "use_mla": False, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
    "rope_scaling": None, "tie_word_embeddings": False, "aux_loss_alpha": 0.001, "seq_aux": True,
    "attention_bias": False, "hidden_act": "silu", "max_position_embeddings": 8192,
}
LM_REQUIRED = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
# Settings our decoder has no other value for: (key, the only value it implements).
LM_FIXED = (("moe_layer_freq", 1), ("topk_method", "greedy"), ("scoring_func", "softmax"),
            ("routed_scaling_factor", 1.0), ("use_mla", False), ("rope_scaling", None),
            ("attention_bias", False), ("hidden_act", "silu"))


class OfficialFormatError(ValueError):
    """A snapshot, checkpoint or tokenizer that cannot be used; the message is one line
    naming the file, field and value at fault."""


def read_config_json(snapshot: Path) -> dict[str, Any]:
    """``snapshot/config.json``, refused unless it describes DeepSeek-OCR."""
    path = snapshot / "config.json"
    if not path.is_file():
        raise OfficialFormatError(f"{snapshot}: no config.json (expected a local snapshot of deepseek-ai/DeepSeek-OCR, "
                                  f"e.g. from `hf download deepseek-ai/DeepSeek-OCR --local-dir {snapshot}`)")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OfficialFormatError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise OfficialFormatError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    archs = raw.get("architectures") or []
    auto = str((raw.get("auto_map") or {}).get("AutoModel", ""))
    for arch, why in OTHER_MODELS.items():
        if arch in archs or auto.endswith("." + arch):
            raise OfficialFormatError(f"{path}: architectures {archs} is {why}; only DeepSeek-OCR ({ARCHITECTURE}) "
                                      f"checkpoints can be loaded")
    if ARCHITECTURE not in archs:
        raise OfficialFormatError(f"{path}: architectures = {archs}: not a DeepSeek-OCR checkpoint "
                                  f"(expected [{ARCHITECTURE!r}])")
    return raw


def language_fields(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """The decoder's settings: config.json's top level (what the HF code reads), else its
    ``language_config``, else DeepseekV2Config's defaults. The two places must agree."""
    nested = raw.get("language_config") or {}
    out: dict[str, Any] = {}
    for key in (*LM_REQUIRED, *LM_DEFAULTS, "num_key_value_heads", "moe_intermediate_size", "num_experts_per_tok"):
        top, low = raw.get(key), nested.get(key)
        if top is not None and low is not None and top != low:
            raise OfficialFormatError(f"{source}: {key} = {top} at the top level but {low} in language_config")
        value = top if top is not None else low
        if value is None:
            if key in LM_REQUIRED:
                raise OfficialFormatError(f"{source}: {key} missing (needed at the top level or in language_config)")
            value = LM_DEFAULTS.get(key)
        out[key] = value
    return out


def decoder_from_official(raw: dict[str, Any], source: str) -> DecoderConfig:
    """The MoE decoder config.json describes."""
    lm = language_fields(raw, source)
    for key, only in LM_FIXED:
        if lm[key] != only:
            raise OfficialFormatError(f"{source}: {key} = {lm[key]!r}: this trainer implements only {only!r}")
    heads = int(lm["num_attention_heads"])
    kv = lm["num_key_value_heads"]
    if kv is not None and int(kv) != heads:
        raise OfficialFormatError(f"{source}: num_key_value_heads = {kv} differs from num_attention_heads = {heads}: "
                                  f"only plain multi-head attention is implemented")
    width = int(lm["hidden_size"])
    if width % heads:
        raise OfficialFormatError(f"{source}: hidden_size = {width} is not divisible by num_attention_heads = {heads}")
    routed = int(lm["n_routed_experts"] or 0)
    try:
        return DecoderConfig(
            width=width, layers=int(lm["num_hidden_layers"]), heads=heads, head_dim=width // heads,
            dense_inter=int(lm["intermediate_size"]), first_dense_layers=int(lm["first_k_dense_replace"] or 0),
            n_routed=routed, n_shared=int(lm["n_shared_experts"] or 0),
            top_k=int(lm["num_experts_per_tok"] or 1), moe_inter=int(lm["moe_intermediate_size"] or 0),
            norm_topk_prob=bool(lm["norm_topk_prob"]), vocab_size=int(lm["vocab_size"]),
            max_seq_len=int(lm["max_position_embeddings"]), rope_theta=float(lm["rope_theta"]),
            aux_loss_coef=float(lm["aux_loss_alpha"]), aux_loss_per_sequence=bool(lm["seq_aux"]),
            norm_eps=float(lm["rms_norm_eps"]),
            tie_embeddings=bool(lm["tie_word_embeddings"]),
        )
    except ValueError as exc:
        raise OfficialFormatError(f"{source}: {exc}") from None


def _need(shapes: dict[str, tuple[int, ...]], key: str, ndim: int, source: str) -> tuple[int, ...]:
    if key not in shapes:
        raise OfficialFormatError(f"{source}: the checkpoint has no {key} (missing key; is this DeepSeek-OCR?)")
    shape = shapes[key]
    if len(shape) != ndim:
        raise OfficialFormatError(f"{source}: {key} has shape {list(shape)}, expected {ndim} dimensions")
    return shape


def _count(shapes: dict[str, tuple[int, ...]], prefix: str) -> int:
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in shapes if (m := pat.match(k))}
    return max(found) + 1 if found else 0


def encoder_from_official(raw: dict[str, Any], shapes: dict[str, tuple[int, ...]], source: str) -> EncoderConfig:
    """DeepEncoder's dimensions from the checkpoint's tensor shapes (``shapes``: key -> shape),
    checked against config.json's ``vision_config`` where it gives a value; the official
    preprocessing and position-table resize switched on."""
    vis = (raw.get("vision_config") or {}).get("width") or {}
    sam_cfg, clip_cfg = vis.get("sam_vit_b") or {}, vis.get("clip-l-14-224") or {}
    s, v = "model.sam_model.", "model.vision_model."
    _, g, _, sam_width = _need(shapes, s + "pos_embed", 4, source)
    patch = _need(shapes, s + "patch_embed.proj.weight", 4, source)[-1]
    depth = _count(shapes, s + "blocks.")
    rel = [_need(shapes, f"{s}blocks.{i}.attn.rel_pos_h", 2, source)[0] if f"{s}blocks.{i}.attn.rel_pos_h" in shapes
           else 0 for i in range(depth)]
    glob = [i for i, n in enumerate(rel) if n == 2 * g - 1]
    windows = {(n + 1) // 2 for i, n in enumerate(rel) if i not in glob and n}
    if len(windows) > 1:
        raise OfficialFormatError(f"{source}: SAM's windowed blocks have rel_pos tables of different lengths {sorted(windows)}")
    sam_mlp = _need(shapes, s + "blocks.0.mlp.lin1.weight", 2, source)[0]
    out_chans = _need(shapes, s + "neck.0.weight", 4, source)[0]
    mid = _need(shapes, s + "net_2.weight", 4, source)[0]
    clip_width = _need(shapes, s + "net_3.weight", 4, source)[0]
    clip_depth = _count(shapes, v + "transformer.layers.")
    pos_rows = _need(shapes, v + "embeddings.position_embedding.weight", 2, source)[0]
    grid = math.isqrt(pos_rows - 1)
    if grid * grid + 1 != pos_rows:
        raise OfficialFormatError(f"{source}: {v}embeddings.position_embedding.weight has {pos_rows} rows, "
                                  f"expected 1 + a square grid (257 = 1 + 16 x 16)")
    clip_mlp = _need(shapes, v + "transformer.layers.0.mlp.fc1.weight", 2, source)[0]
    derived = {("sam_vit_b", "width"): sam_width, ("sam_vit_b", "layers"): depth,
               ("sam_vit_b", "global_attn_indexes"): glob, ("sam_vit_b", "downsample_channels"): [mid, clip_width],
               ("clip-l-14-224", "width"): clip_width, ("clip-l-14-224", "layers"): clip_depth}
    for (part, key), value in derived.items():
        said = (vis.get(part) or {}).get(key)
        if said is not None and (list(said) if isinstance(said, list) else said) != value:
            raise OfficialFormatError(f"{source}: vision_config.width.{part}.{key} = {said} but the checkpoint's "
                                      f"tensors give {value}")
    defaults = EncoderConfig()
    try:
        return replace(
            defaults, patch_size=patch, sam_width=sam_width, sam_depth=depth,
            sam_heads=int(sam_cfg.get("heads", defaults.sam_heads)), sam_mlp_ratio=sam_mlp / sam_width,
            sam_window=windows.pop() if windows else defaults.sam_window, sam_global_blocks=glob,
            sam_img_size=g * patch, sam_rel_pos=any(rel), sam_out_chans=out_chans, compressor_mid=mid,
            clip_width=clip_width, clip_depth=clip_depth, clip_heads=int(clip_cfg.get("heads", defaults.clip_heads)),
            clip_mlp_ratio=clip_mlp / clip_width, clip_pos_grid=grid, pos_antialias=True, resize_kernel="pil",
        )
    except ValueError as exc:
        raise OfficialFormatError(f"{source}: {exc}") from None


def model_config_from_official(raw: dict[str, Any], shapes: dict[str, tuple[int, ...]], source: str,
                               name: str = "deepseek-ocr") -> ModelConfig:
    """The ModelConfig of a snapshot: decoder from config.json, encoder from the tensors."""
    dec = decoder_from_official(raw, source)
    enc = encoder_from_official(raw, shapes, source)
    proj = (raw.get("projector_config") or {})
    if proj.get("projector_type", "linear") != "linear":
        raise OfficialFormatError(f"{source}: projector_config.projector_type = {proj.get('projector_type')!r}: "
                                  f"only 'linear' (DeepSeek-OCR's) is implemented")
    if proj.get("n_embed", dec.width) != dec.width:
        raise OfficialFormatError(f"{source}: projector_config.n_embed = {proj['n_embed']} differs from "
                                  f"hidden_size = {dec.width}")
    stage1 = replace(get_config("paper").stage1_decoder, vocab_size=dec.vocab_size)
    return ModelConfig(name, enc, dec, stage1)


def official_config_json(cfg: ModelConfig, vocab_size: int, base: dict[str, Any] | None = None,
                         dtype: str = "bfloat16") -> dict[str, Any]:
    """config.json for an export of a model of ``cfg``: ``base`` (the snapshot's own,
    kept whole: auto_map, candidate resolutions...) with the decoder's settings and the
    vision tower's description written from ``cfg``."""
    enc, dec = cfg.encoder, cfg.decoder
    lm = {"vocab_size": vocab_size, "hidden_size": dec.width, "intermediate_size": dec.dense_inter,
          "moe_intermediate_size": dec.moe_inter, "num_hidden_layers": dec.layers,
          "num_attention_heads": dec.heads, "num_key_value_heads": dec.heads,
          "n_routed_experts": dec.n_routed or None, "n_shared_experts": dec.n_shared or None,
          "num_experts_per_tok": dec.top_k if dec.n_routed else None, "first_k_dense_replace": dec.first_dense_layers,
          "norm_topk_prob": dec.norm_topk_prob, "max_position_embeddings": dec.max_seq_len,
          "rope_theta": dec.rope_theta, "rms_norm_eps": dec.norm_eps, "tie_word_embeddings": dec.tie_embeddings,
          "aux_loss_alpha": dec.aux_loss_coef, "seq_aux": dec.aux_loss_per_sequence, "bos_token_id": 0,
          "eos_token_id": 1, "use_mla": False,
          "topk_method": "greedy", "lm_head": True}
    out = json.loads(json.dumps(base)) if base else {
        "architectures": [ARCHITECTURE], "model_type": "deepseek_vl_v2", "candidate_resolutions": [[1024, 1024]],
        "global_view_pos": "head", "tile_tag": "2D", "language_config": {}}
    out.update(lm)
    if isinstance(out.get("language_config"), dict):
        out["language_config"].update(lm)
        out["language_config"]["torch_dtype"] = dtype
    out["torch_dtype"] = dtype
    out["projector_config"] = {**(out.get("projector_config") or {}), "input_dim": 2 * enc.clip_width,
                               "n_embed": dec.width, "projector_type": "linear"}
    vis = out.setdefault("vision_config", {})
    width = vis.setdefault("width", {})
    width["sam_vit_b"] = {**width.get("sam_vit_b", {}), "width": enc.sam_width, "layers": enc.sam_depth,
                          "heads": enc.sam_heads, "global_attn_indexes": list(enc.sam_global_blocks),
                          "downsample_channels": [enc.compressor_mid, enc.clip_width]}
    width["clip-l-14-224"] = {**width.get("clip-l-14-224", {}), "width": enc.clip_width, "layers": enc.clip_depth,
                              "heads": enc.clip_heads}
    return out
