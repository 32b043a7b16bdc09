"""The official name/layout mapping (train.official.names) and config.json reading."""

from __future__ import annotations

import json

import pytest
import torch

from tests.official_snapshot import SMALL_DECODER, SMALL_VISION, fixture_config, fixture_dir, official_config
from train.official.config import model_config_from_official
from train.official.names import CLIP_PATCH_EMBEDDING, official_shapes, official_targets, pieces, region


def _fixture_keys() -> dict[str, tuple[int, ...]]:
    return {n: tuple(s) for n, s in json.loads((fixture_dir() / "keys.json").read_text())}


def _fixture_cfg():
    keys = _fixture_keys()
    return model_config_from_official(official_config(fixture_config()["reduced_decoder"]), keys, "fixture")


def test_the_fixture_config_and_keys_give_its_exact_key_list():
    """config.json's decoder and the tensors' vision shapes give the model whose official
    keys and shapes are keys.json's, all 556 (429,520,640 values)."""
    cfg = _fixture_cfg()
    dec = cfg.decoder
    assert (dec.layers, dec.n_routed, dec.top_k, dec.moe_inter, dec.dense_inter, dec.vocab_size) == (3, 8, 3, 64, 256, 1000)
    assert (dec.width, dec.heads, dec.head_dim, dec.n_shared, dec.first_dense_layers) == (1280, 10, 128, 2, 1)
    enc = cfg.encoder
    assert (enc.sam_width, enc.sam_depth, enc.sam_global_blocks, enc.sam_window, enc.clip_depth, enc.clip_pos_grid) == \
        (768, 12, [2, 5, 8, 11], 14, 24, 16)
    shapes = official_shapes(cfg)
    assert shapes == _fixture_keys()
    assert sum(torch.Size(s).numel() for s in shapes.values()) == fixture_config()["weights"]["n_params"]


def test_the_released_config_gives_the_released_checkpoints_size():
    """The real decoder (12 layers, 64 experts, top-6, vocab 129,280) maps to 2,710 official
    tensors of 3,336,106,240 parameters: the hub checkpoint's count (6,672,212,480 bytes in bf16)."""
    real = dict(fixture_config()["reduced_decoder"], **fixture_config()["official_decoder_values_replaced"])
    keys = _fixture_keys()  # the vision tower is the same as the fixture's
    cfg = model_config_from_official(official_config(real), keys, "released")
    shapes = official_shapes(cfg)
    assert len(shapes) == 2710
    assert sum(torch.Size(s).numel() for s in shapes.values()) * 2 == 6_672_212_480
    assert shapes["model.layers.11.mlp.experts.63.down_proj.weight"] == (1280, 896)
    assert shapes["lm_head.weight"] == (129280, 1280)


def test_pieces_cover_every_element_exactly_once_both_ways():
    """Each of our parameters and each official tensor is covered by the pieces exactly
    once, element by element (counted, not just sized)."""
    from tests.official_snapshot import small_model_config
    from train.model.ocr_model import OCRModel

    cfg = small_model_config()
    model = OCRModel(cfg, 1000, 815)
    ours = {n: torch.zeros(p.shape, dtype=torch.int32) for n, p in model.named_parameters()}
    theirs = {k: torch.zeros(s, dtype=torch.int32) for k, s in official_shapes(cfg).items()}
    for p in pieces(cfg):
        a, b = region(ours[p.ours], p.ours_index), region(theirs[p.official], p.official_index)
        assert a.numel() == b.numel(), p
        a += 1
        b += 1
    for name, t in {**ours, **theirs}.items():
        if name != CLIP_PATCH_EMBEDDING:
            assert (t == 1).all(), name
    assert (theirs[CLIP_PATCH_EMBEDDING] == 0).all()  # no parameter of ours: kept aside


def test_official_targets_split_fused_and_stacked_modules():
    from tests.official_snapshot import small_model_config

    cfg = small_model_config()
    inter, moe = cfg.decoder.dense_inter, cfg.decoder.moe_inter
    [q] = official_targets("decoder.blocks.1.attn.q", cfg)
    assert (q.module, q.expert, q.rows) == ("model.layers.1.self_attn.q_proj", None, None)
    gate, up, down = (official_targets("decoder.blocks.0.mlp.gate_up", cfg)
                      + official_targets("decoder.blocks.0.mlp.down", cfg))
    assert (gate.module, gate.rows) == ("model.layers.0.mlp.gate_proj", (0, inter))
    assert (up.module, up.rows) == ("model.layers.0.mlp.up_proj", (inter, 2 * inter))
    assert down.module == "model.layers.0.mlp.down_proj" and down.rows is None
    stacked = official_targets("decoder.blocks.1.mlp.w_gate_up", cfg)
    assert len(stacked) == 2 * cfg.decoder.n_routed
    assert stacked[2].module == "model.layers.1.mlp.experts.1.gate_proj" and stacked[2].expert == 1
    assert stacked[3].rows == (moe, 2 * moe)
    [shared_up] = [t for t in official_targets("decoder.blocks.1.mlp.shared.gate_up", cfg) if "up_proj" in t.module]
    assert shared_up.module == "model.layers.1.mlp.shared_experts.up_proj"
    [qkv] = official_targets("encoder.clip.blocks.1.attn.qkv", cfg)
    assert qkv.module == "model.vision_model.transformer.layers.1.self_attn.qkv_proj"
    with pytest.raises(ValueError, match="no module"):
        official_targets("decoder.blocks.9.attn.q", cfg)


def test_vision_config_that_contradicts_the_tensors_is_refused():
    from tests.official_snapshot import small_model_config
    from train.official.config import OfficialFormatError

    shapes = official_shapes(small_model_config())
    bad = json.loads(json.dumps(SMALL_VISION))
    bad["width"]["sam_vit_b"]["layers"] = 12
    with pytest.raises(OfficialFormatError, match="sam_vit_b.layers = 12 but the checkpoint's tensors give 2"):
        model_config_from_official(official_config(SMALL_DECODER, bad), shapes, "snap")
    mla = official_config(dict(SMALL_DECODER, use_mla=True), SMALL_VISION)
    with pytest.raises(OfficialFormatError, match="use_mla = True"):
        model_config_from_official(mla, shapes, "snap")
    split = official_config(SMALL_DECODER, SMALL_VISION)
    split["language_config"]["num_hidden_layers"] = 3
    with pytest.raises(OfficialFormatError, match="num_hidden_layers = 2 at the top level but 3 in language_config"):
        model_config_from_official(split, shapes, "snap")


def test_a_run_config_saved_before_the_official_switches_keeps_the_old_numerics():
    """run.json of a run trained before pos_antialias / resize_kernel existed has neither
    field: it must load with plain bicubic and the torch resize, as it trained."""
    import dataclasses

    from train.configs import config_from_dict, get_config

    old = dataclasses.asdict(get_config("paper"))
    for f in ("pos_antialias", "resize_kernel"):
        del old["encoder"][f]
    cfg = config_from_dict(old, "run.json")
    assert cfg.encoder.pos_antialias is False and cfg.encoder.resize_kernel == "torch"
    assert get_config("tiny").encoder.pos_antialias is False  # named configs: the old behaviour too
    with pytest.raises(ValueError, match="resize_kernel='cv2'"):
        config_from_dict({"encoder": {"resize_kernel": "cv2"}})
