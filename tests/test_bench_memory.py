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


@pytest.mark.parametrize("method", ["full", "lora"])
def test_finetune_prediction_is_the_live_peak_of_a_whole_step(monkeypatch, method):
    """The fine-tuning table's method: states, blocks' saved bytes and the loss head's live
    peak, measured apart, give the live peak of a whole stage-2 step (forward and backward,
    every gradient included) of Base pages, full fine-tuning (float32 weights) and LoRA
    (bf16 base, adapters). A larger vocabulary than tiny's makes the head weigh as it does
    at the official 129,280."""
    from train.lora import LoraConfig, apply_lora

    monkeypatch.setattr(moe_mod, "use_grouped_gemm", lambda xs: True)
    vocab, lcfg = 8192, LoraConfig(rank=8, alpha=16)
    cfg = get_config("tiny")
    enc = cfg.encoder
    lc = lcfg if method == "lora" else None
    est = bm.finetune_measure("tiny", vocab, method, lc, view_sizes=(enc.image_size("base"),))
    states = bm.finetune_states("tiny", vocab, method, lc)
    torch.manual_seed(0)
    m = OCRModel(cfg, vocab, IMG, stage=2)
    m.freeze_for_stage2()
    if method == "lora":
        m.to(torch.bfloat16)
        apply_lora(m, lcfg)
    # (rows, text tokens): LoRA's bf16 products are slow on CPU, so its batches are smaller.
    for rows, text in ((2, 200), (5, 400)) if method == "lora" else ((4, 300), (8, 500)):
        vis = [fit_image(_page(160, 200, s), "base", enc) for s in range(rows)]
        n_img = num_image_tokens("base", enc, vis[0].grid)
        ids = torch.randint(10, vocab, (rows, 1 + n_img + text), generator=torch.Generator().manual_seed(0))
        ids[:, 1:1 + n_img] = IMG
        labels = ids.clone()
        labels[:, :1 + n_img] = -100

        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = m(ids, torch.ones_like(ids), vis, labels=labels)
            out.loss.backward()
            return out  # the trainer keeps the output (its logits) alive through backward

        for _ in range(2):  # the first bf16 products fill CPU kernel caches: not the step's memory
            for p in m.parameters():
                p.grad = None
            got = bm.live_peak_bytes(step)
        page = bm.Page("base", ids.shape[1], (enc.image_size("base"),))
        want = bm.finetune_gib(est, states, page, rows) * bm.GIB - states["weights"] - states["moments"]
        assert abs(got - want) < 0.05 * got, (rows, text, got, want)  # 0.2 % (LoRA), 3 % (full) when written
