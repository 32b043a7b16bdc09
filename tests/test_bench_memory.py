"""bench/bench_memory.py's method: bytes per token and per image, measured on single blocks,
predict what a whole model's forward keeps for backward."""

from __future__ import annotations

import pytest
import torch

import train.model.moe as moe_mod
from bench import bench_memory as bm
from train.configs import get_config
from train.model.ocr_model import OCRModel
from train.model.vision_inputs import fit_image, num_image_tokens
from tests.test_model import _page

VOCAB, IMG = 512, 3


def _whole_forward_saved_bytes(m: OCRModel, rows: int, text: int) -> tuple[int, int, int]:
    """(saved bytes, padded tokens, images) of one forward of ``rows`` Base pages."""
    enc = m.cfg.encoder
    vis = [fit_image(_page(160, 200, s), "base", enc) for s in range(rows)]
    n_img = num_image_tokens("base", enc, vis[0].grid)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, VOCAB, (rows, 1 + n_img + text), generator=g)
    ids[:, 1:1 + n_img] = IMG
    mask = torch.ones_like(ids)
    labels = ids.clone()
    labels[:, :1 + n_img] = -100
    weights = {p.untyped_storage().data_ptr() for p in m.parameters()}  # states, not activations
    saved = bm.saved_bytes(lambda: m(ids, mask, vis, labels=labels), skip=weights)
    return saved, ids.numel(), rows


@pytest.mark.parametrize("stage, compiled", [(2, False), pytest.param(2, True, marks=pytest.mark.slow), (1, False)])
def test_block_measurements_predict_a_whole_forward(monkeypatch, stage, compiled):
    """Eager, and with inductor (blocks compiled on their own, the whole model through
    compile_blocks): what the GPU run's token budgets were sized by. Stage 1 adds SAM and
    the compressor, trained there, per image."""
    monkeypatch.setattr(moe_mod, "use_grouped_gemm", lambda xs: True)  # as bench_memory does
    cfg = get_config("tiny")
    enc = cfg.encoder
    clip_tokens = enc.token_side(enc.image_size("base")) ** 2 + 1
    torch._dynamo.reset()
    est = bm.measure("tiny", VOCAB, compiled=compiled, image_tokens=clip_tokens, stage=stage)
    assert est["decoder_bytes_per_token"] > 0 and est["clip_bytes_per_image"] > 0
    assert (est["sam_bytes_per_image"] > 0) == (stage == 1)
    torch.manual_seed(0)
    m = OCRModel(cfg, VOCAB, IMG, stage=stage)
    if stage == 2:
        m.freeze_for_stage2()
    if compiled:
        m.compile_blocks()
    for rows, text in ((4, 300), (8, 500)):
        got, tokens, images = _whole_forward_saved_bytes(m, rows, text)
        want = (est["decoder_bytes_per_token"] * tokens + (est["clip_bytes_per_image"] + est["sam_bytes_per_image"]) * images
                + est["decoder_bytes_fixed"] + est["clip_bytes_fixed"] + est["sam_bytes_fixed"])
        assert abs(got - want) < 0.03 * got, (rows, text, got, want)  # 0.4 % (0.5 % compiled) when written
