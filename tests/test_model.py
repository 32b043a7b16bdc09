"""Model tests: token counts, Gundam tiling, parameter counts, training, generation, MoE, freezing."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from train.configs import MODES, get_config
from train.model import flops as fl
from train.model.generation import NgramBlocker
from train.model.moe import MoE
from train.model.ocr_model import OCRModel
from train.model.vision_inputs import PAD_GREY, fit_image, gundam_grid, normalise_pixels, num_image_tokens

VOCAB, IMG, BOS, EOS = 64, 3, 1, 2


def _page(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _model(stage: int = 2, seed: int = 0) -> OCRModel:
    torch.manual_seed(seed)
    return OCRModel(get_config("tiny"), VOCAB, IMG, stage=stage)


def _row(mode, vision, text, enc):
    return [BOS] + [IMG] * num_image_tokens(mode, enc, vision.grid) + text


# -- token counts ------------------------------------------------------------
def test_paper_token_counts():
    enc = get_config("paper").encoder
    assert [num_image_tokens(m, enc) for m in ("tiny", "small", "base", "large")] == [73, 111, 273, 421]
    for nw, nh in [(2, 1), (1, 2), (2, 3), (3, 3), (1, 9)]:
        assert num_image_tokens("gundam", enc, (nw, nh)) == 273 + (10 * nw + 1) * (10 * nh)
        # Gundam-M: n x 256 + 400 vision tokens (n x 1024 tiles + a 1280 view), with newlines.
        assert num_image_tokens("gundam_m", enc, (nw, nh)) == 421 + (16 * nw + 1) * (16 * nh)
    for mode in ("gundam", "gundam_m"):
        with pytest.raises(ValueError, match="grid"):
            num_image_tokens(mode, enc)


@pytest.mark.parametrize("mode", MODES)
def test_tiny_forward_emits_exactly_the_counted_vision_tokens(mode):
    cfg = get_config("tiny")
    enc = cfg.encoder
    expected = {"tiny": 3, "small": 7, "base": 13, "large": 21}
    v = fit_image(_page(300, 500, 1), mode, enc)
    n = num_image_tokens(mode, enc, v.grid)
    if mode == "gundam":
        assert v.grid == (2, 3) and v.tiles.shape == (6, 3, 128, 128)
        assert n == 13 + (2 * 2 + 1) * (2 * 3)
    elif mode == "gundam_m":  # tiny config: 192 px tiles (3x3 tokens) and a 256 px view (4x4)
        assert v.grid == (2, 3) and v.tiles.shape == (6, 3, 192, 192)
        assert n == 21 + (3 * 2 + 1) * (3 * 3)
    else:
        assert n == expected[mode] and v.tiles is None
    m = _model()
    embs = m.encoder([v])
    assert len(embs) == 1 and embs[0].shape == (n, m.dec_cfg.width)
    # The separator closes the image and a newline ends the last global row.
    assert torch.equal(embs[0][-1], m.encoder.view_separator)
    assert torch.equal(embs[0][-2], m.encoder.image_newline)
    ids = torch.tensor([_row(mode, v, [10, 11], enc)])
    out = m(ids, torch.ones_like(ids), [v], labels=ids)
    assert out.logits.shape == (1, ids.shape[1], VOCAB) and torch.isfinite(out.loss)
    ce = torch.nn.functional.cross_entropy(out.logits[0, :-1], ids[0, 1:])
    torch.testing.assert_close(out.loss, ce + out.aux_loss)
    unlabelled = m(ids, torch.ones_like(ids), [v], labels=torch.full_like(ids, -100))
    torch.testing.assert_close(unlabelled.loss, unlabelled.aux_loss)


def test_gundam_layout_puts_stitched_tiles_before_global_view():
    m = _model()
    enc = m.cfg.encoder
    v = fit_image(_page(200, 100, 2), "gundam", enc)
    assert v.grid == (2, 1)
    got = m.encoder([v])[0]
    tiles = m.encoder.encode(normalise_pixels(v.tiles))  # [2, 2, 2, D]
    glob = m.encoder.encode(normalise_pixels(v.global_view[None]))[0]
    nl = m.encoder.image_newline[None]
    stitched = torch.cat([tiles[0, 0], tiles[1, 0], nl, tiles[0, 1], tiles[1, 1], nl])
    g = torch.cat([glob[0], nl, glob[1], nl, glob[2], nl])
    want = torch.cat([stitched, g, m.encoder.view_separator[None]])
    torch.testing.assert_close(got, want)


def test_forward_rejects_wrong_placeholder_count():
    m = _model()
    v = fit_image(_page(64, 64, 3), "base", m.cfg.encoder)
    ids = torch.tensor([[BOS, 5, 6], _row("base", v, [], m.cfg.encoder)[:3]])
    with pytest.raises(ValueError, match="row 1"):
        m(ids, torch.ones_like(ids), [None, v])


def test_a_batch_mixing_modes_gives_each_row_what_it_gets_alone():
    """Multi-resolution training: rows of one batch in different modes (and a text-only row)
    are encoded and decoded exactly as each would be on its own."""
    m = _model(seed=8)
    enc = m.cfg.encoder
    modes = ["tiny", "gundam", "base", "small", "gundam_m", "large", "base", "gundam", None]
    vis = [fit_image(_page(150 + 20 * k, 230 - 10 * k, 30 + k), mode, enc) if mode else None
           for k, mode in enumerate(modes)]
    assert [v.mode for v in vis if v] == [x for x in modes if x]
    alone = [m.encoder([v])[0] for v in vis if v]
    together = m.encoder([v for v in vis if v])
    assert [t.shape[0] for t in together] == [num_image_tokens(v.mode, enc, v.grid) for v in vis if v]
    for a, t in zip(alone, together):
        torch.testing.assert_close(t, a, atol=1e-5, rtol=1e-5)
    rows = [[BOS] + [IMG] * (num_image_tokens(v.mode, enc, v.grid) if v else 0) + [10 + k, 11, 12]
            for k, v in enumerate(vis)]
    width = max(map(len, rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, r in enumerate(rows):
        ids[b, :len(r)], mask[b, :len(r)] = torch.tensor(r), 1
    batch = m(ids, mask, vis).logits
    for b, r in enumerate(rows):
        one = m(ids[b:b + 1, :len(r)], mask[b:b + 1, :len(r)], vis[b:b + 1]).logits[0]
        torch.testing.assert_close(batch[b, :len(r)], one, atol=1e-4, rtol=1e-4)
    # A view that contradicts its mode is refused before any encoding.
    bad = dataclasses.replace(vis[1], tiles=None)  # a tiled grid without its tiles
    with pytest.raises(ValueError, match="with no tiles"):
        m.encoder([bad])
    with pytest.raises(ValueError, match="with tiles"):  # tiles in a mode that takes none
        m.encoder([dataclasses.replace(vis[2], tiles=vis[1].tiles)])


# -- image fitting -------------------------------------------------------------
def test_gundam_grid_rule():
    enc = get_config("paper").encoder
    assert gundam_grid(800, 1200, enc) == (2, 3)
    assert gundam_grid(1000, 500, enc) == (2, 1)
    assert gundam_grid(2000, 1000, enc) == (4, 2)  # tie with 2x1, page big enough for 8 tiles
    assert gundam_grid(500, 5000, enc) == (1, 9)
    # Square pages tie between 2x2 and 3x3: a large page takes the bigger grid.
    assert gundam_grid(1000, 1000, enc) == (2, 2)
    assert gundam_grid(3000, 3000, enc) == (3, 3)
    for w, h in [(595, 842), (1700, 2200), (3000, 700)]:
        nw, nh = gundam_grid(w, h, enc)
        assert 2 <= nw * nh <= 9


def test_gundam_tiles_are_raster_order_and_base_is_letterboxed():
    enc = get_config("tiny").encoder
    img = Image.new("RGB", (256, 128), (255, 0, 0))
    img.paste((0, 0, 255), (128, 0, 256, 128))
    v = fit_image(img, "gundam", enc)
    assert v.grid == (2, 1)
    assert v.tiles.dtype == torch.uint8  # pixels travel as bytes; the encoder normalises
    assert v.tiles[0, 0].float().mean() > 250 and v.tiles[0, 2].float().mean() < 5  # left tile red
    assert v.tiles[1, 2].float().mean() > 250 and v.tiles[1, 0].float().mean() < 5  # right tile blue
    base = fit_image(img, "base", enc).global_view
    assert base.shape == (3, 192, 192)
    assert torch.equal(base[:, 0], torch.full((3, 192), PAD_GREY[0], dtype=torch.uint8))
    assert base[0, 96, 10] > 250
    small = fit_image(img, "small", enc).global_view
    assert small.shape == (3, 128, 128) and small[0, 0, 0] > 250  # stretched, no padding
    # The encoder's input scale: mean 0.5, std 0.5.
    torch.testing.assert_close(normalise_pixels(torch.tensor([0, 127, 255], dtype=torch.uint8)),
                               torch.tensor([-1.0, 127 / 127.5 - 1, 1.0]))


@pytest.mark.parametrize("mode", MODES)
def test_fit_image_matches_pil_bicubic_and_letterbox(mode):
    """The torch uint8 resize path gives PIL's BICUBIC pixels (within 2 grey levels) in every mode."""
    enc = get_config("tiny").encoder
    rng = np.random.default_rng(3)
    # A smooth page (noise upsampled): resampling differences stay at rounding level.
    img = Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).resize((300, 410), Image.Resampling.BILINEAR)
    v = fit_image(img, mode, enc)

    def norm(pil):
        return torch.from_numpy(np.asarray(pil, dtype=np.float32)).permute(2, 0, 1)

    size = enc.image_size(mode)
    if mode in ("tiny", "small"):
        ref = norm(img.resize((size, size), Image.Resampling.BICUBIC))
    else:
        scale = size / max(img.size)
        nw, nh = round(img.width * scale), round(img.height * scale)
        canvas = Image.new("RGB", (size, size), PAD_GREY)
        canvas.paste(img.resize((nw, nh), Image.Resampling.BICUBIC), ((size - nw) // 2, (size - nh) // 2))
        ref = norm(canvas)
    assert v.global_view.shape == ref.shape
    assert v.global_view.dtype == torch.uint8
    assert (v.global_view.float() - ref).abs().max() <= 2
    if mode in ("gundam", "gundam_m"):
        nw, nh = v.grid
        t = enc.tile_side(mode)
        page = norm(img.resize((t * nw, t * nh), Image.Resampling.BICUBIC))
        tiles = page.reshape(3, nh, t, nw, t).permute(1, 3, 0, 2, 4).reshape(nh * nw, 3, t, t)
        assert (v.tiles.float() - tiles).abs().max() <= 2


# -- configs -------------------------------------------------------------------
def test_get_config_rejects_unknown_name():
    with pytest.raises(ValueError, match="paper"):
        get_config("huge")


def test_model_configs_are_data_round_trip_and_checked(tmp_path):
    import dataclasses
    from pathlib import Path

    from train.configs import config_from_dict, load_config

    for name in ("tiny", "small", "paper"):  # what run.json stores gives the config back
        cfg = get_config(name)
        assert config_from_dict(dataclasses.asdict(cfg)) == cfg
    shipped = sorted((Path(__file__).resolve().parents[1] / "manifests" / "models").glob("*.yaml"))
    assert shipped
    for path in shipped:
        cfg = load_config(str(path))
        built = OCRModel(cfg, VOCAB, IMG)  # every shipped config builds a model
        assert built.num_params() > 0, path
    gundam = load_config(str(shipped[0].with_name("small_gundam.yaml")))
    assert gundam.encoder.tile_size == 640 and gundam.decoder.n_routed == 16
    assert gundam.encoder.sam_width == get_config("small").encoder.sam_width  # the rest is small's

    def bad(text: str, *needles: str) -> None:
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        with pytest.raises(ValueError) as err:
            load_config(str(path))
        for n in (str(path), *needles):
            assert n in str(err.value), (n, str(err.value))

    bad("base: tiny\nencoderr: {}\n", "encoderr", "valid keys")
    bad("base: tiny\ndecoder: {layer: 3}\n", "decoder.layer", "layers")  # the valid fields are listed
    bad("base: tiny\ndecoder: {layers: three}\n", "decoder.layers", "'three'", "int")
    bad("base: tiny\ndecoder: {tie_embeddings: 1}\n", "tie_embeddings", "bool")
    bad("base: tiny\nencoder: {sam_global_blocks: [1, 9]}\n", "sam_global_blocks")  # the config's own check
    bad("base: huge\n", "'huge'", "paper")
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(str(tmp_path / "nope.yaml"))
    with pytest.raises(ValueError, match="tiny"):
        load_config("huge")


def test_paper_parameter_counts_on_meta_device():
    cfg = get_config("paper")
    with torch.device("meta"):
        m = OCRModel(cfg, cfg.decoder.vocab_size, 3)
    enc, dec = m.num_params(part="encoder"), m.num_params(part="decoder")
    active = m.num_params(active=True, part="decoder")
    assert 340e6 < enc < 420e6  # SAM-B ~90M + CLIP-L ~300M + compressor + projector
    assert 2.8e9 < dec < 3.1e9
    assert 550e6 < active < 600e6
    assert active == fl.decoder_active_params(m.dec_cfg)
    assert m.num_params() == enc + dec


# -- training --------------------------------------------------------------------
def _batch(m: OCRModel, mode: str = "base"):
    enc = m.cfg.encoder
    vis = [fit_image(_page(160, 200, s), mode, enc) for s in (10, 11)]
    texts = [[7, 8, 9, 10, 11, 12, 13, 14, EOS], [20, 21, 22, 23, 24, EOS]]
    rows = [_row(mode, v, t, enc) for v, t in zip(vis, texts)]
    width = max(map(len, rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for b, (r, t) in enumerate(zip(rows, texts)):
        ids[b, :len(r)] = torch.tensor(r)
        mask[b, :len(r)] = 1
        labels[b, len(r) - len(t):len(r)] = torch.tensor(t)
    return ids, mask, vis, labels


def test_tiny_model_loss_halves_with_adamw():
    m = _model(seed=1)
    ids, mask, vis, labels = _batch(m)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    first = None
    for _ in range(80):
        out = m(ids, mask, vis, labels=labels)
        first = first if first is not None else out.loss.item()
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        if out.loss.item() < first / 2:
            break
    assert out.loss.item() < first / 2, (first, out.loss.item())
    assert out.aux_loss is not None and out.aux_loss.item() > 0


@pytest.mark.parametrize("mode", ["base", "gundam"])
def test_bf16_autocast_matches_float32_forward_and_backward(mode):
    """The mixed-precision path GPUs train with (bf16 autocast), checked on CPU's autocast:
    every module takes bf16 activations without a dtype error and agrees with float32."""
    m = _model(seed=4)
    m.freeze_for_stage2()
    ids, mask, vis, labels = _batch(m, mode)

    def run(bf16: bool):
        m.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = m(ids, mask, vis, labels=labels)
        out.loss.backward()
        grads = {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}
        return out, grads

    ref, ref_g = run(False)
    got, got_g = run(True)
    assert got.logits.dtype == torch.bfloat16  # autocast really ran the matmuls in bf16
    rel = ((got.logits.float() - ref.logits).norm() / ref.logits.norm()).item()
    assert rel < 3e-2, f"logits relative error {rel:.3g}"
    assert abs(got.loss.item() - ref.loss.item()) < 2e-2 * ref.loss.item()
    assert set(got_g) == set(ref_g) and not any(k.startswith("encoder.sam.") for k in got_g)
    for k in ("encoder.clip.blocks.0.attn.qkv.weight", "encoder.projector.weight", "decoder.lm_head.weight"):
        g, r = got_g[k].float(), ref_g[k]
        assert torch.isfinite(g).all() and ((g - r).norm() / r.norm()).item() < 0.1, k


@pytest.mark.parametrize("stage", [1, 2])
def test_grad_checkpointing_gives_the_same_loss_and_gradients(stage):
    m = _model(stage=stage, seed=5)
    if stage == 2:
        m.freeze_for_stage2()
    ids, mask, vis, labels = _batch(m, "gundam")

    def grads(on: bool):
        m.set_grad_checkpointing(on)
        m.zero_grad(set_to_none=True)
        out = m(ids, mask, vis, labels=labels)
        out.loss.backward()
        return out.loss.detach(), {k: p.grad.clone() for k, p in m.named_parameters() if p.grad is not None}

    loss0, g0 = grads(False)
    loss1, g1 = grads(True)
    torch.testing.assert_close(loss1, loss0)
    assert set(g1) == set(g0) and any(k.startswith("encoder.sam.") for k in g0) == (stage == 1)
    for k in g0:
        torch.testing.assert_close(g1[k], g0[k], atol=1e-6, rtol=1e-5, msg=k)
    # Checkpointed blocks keep fewer tensors for backward.
    def saved(on: bool) -> int:
        m.set_grad_checkpointing(on)
        count = 0

        def pack(t):
            nonlocal count
            count += t.numel()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            m(ids, mask, vis, labels=labels).loss
        return count

    assert saved(True) < 0.5 * saved(False)
    # The same with compiled blocks (--compile --grad-checkpoint): the checkpoint wraps the
    # compiled block and recomputes it in backward.
    m.compile_blocks(backend="aot_eager")
    loss2, g2 = grads(True)
    torch.testing.assert_close(loss2, loss0)
    assert set(g2) == set(g0)
    for k in g0:
        torch.testing.assert_close(g2[k], g0[k], atol=1e-6, rtol=1e-5, msg=k)


def test_left_and_right_padding_give_the_same_logits():
    m = _model(seed=2)
    ids, mask, vis, _ = _batch(m)
    right = m(ids, mask, vis).logits
    n = mask.sum(1)
    left_ids, left_mask = torch.zeros_like(ids), torch.zeros_like(mask)
    for b in range(ids.shape[0]):
        left_ids[b, ids.shape[1] - n[b]:] = ids[b, :n[b]]
        left_mask[b, ids.shape[1] - n[b]:] = 1
    left = m(left_ids, left_mask, vis).logits
    for b in range(ids.shape[0]):
        torch.testing.assert_close(left[b, ids.shape[1] - n[b]:], right[b, :n[b]], atol=1e-4, rtol=1e-4)


def test_host_side_check_gives_the_model_what_it_would_work_out_itself():
    """The trainer checks a batch on the host and passes ``causal`` so a CUDA step never
    waits for the device; the answer must be the model's own, and the model must use it."""
    m = _model(seed=4)
    ids, mask, vis, labels = _batch(m)
    assert m.check_inputs(ids, mask, vis) is True
    left_mask = torch.flip(mask, dims=[1])
    assert m.check_inputs(torch.flip(ids, dims=[1]), left_mask, vis) is False
    own, told = m(ids, mask, vis, labels=labels), m(ids, mask, vis, labels=labels, causal=True)
    torch.testing.assert_close(told.logits, own.logits, atol=0, rtol=0)
    # Told "causal" for a left-padded batch, the model skips the padding mask: what it is told is used.
    left = m(torch.flip(ids, dims=[1]), left_mask, vis)
    wrong = m(torch.flip(ids, dims=[1]), left_mask, vis, causal=True)
    assert not torch.allclose(left.logits, wrong.logits)
    short = ids.clone()
    short[0, 1] = 5  # one image placeholder fewer than row 0's image needs
    with pytest.raises(ValueError, match="row 0"):
        m.check_inputs(short, mask, vis)


def test_vision_tokens_land_on_placeholders_as_masked_scatter_puts_them():
    """embed_inputs' index_copy against masked_scatter: equal outputs and gradients, and a
    backward with no data-dependent shape and no accumulating scatter (which sorts on CUDA)."""
    from bench.bench_roofline import OpRecorder

    m = _model(seed=5)
    ids, _, vis, _ = _batch(m)
    out = m.embed_inputs(ids, vis)
    rec = OpRecorder()
    with rec:
        grads = torch.autograd.grad(out.square().sum(), list(m.encoder.clip.parameters()))
    slow = [op.name for op in rec.ops if op.name.startswith(("index_put", "masked_select", "nonzero"))]
    assert not slow, slow
    m.zero_grad()
    ref_vis = torch.cat(m.encoder(vis))
    ref = m.decoder.embed(ids).masked_scatter((ids == IMG)[..., None], ref_vis)
    ref_grads = torch.autograd.grad(ref.square().sum(), list(m.encoder.clip.parameters()))
    torch.testing.assert_close(out, ref, atol=0, rtol=0)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r)


def test_freeze_for_stage2_keeps_sam_and_compressor_fixed():
    m = _model(seed=3)
    m.freeze_for_stage2()
    ids, mask, vis, labels = _batch(m)
    sam0 = {k: v.clone() for k, v in m.encoder.sam.state_dict().items()}
    comp0 = {k: v.clone() for k, v in m.encoder.compressor.state_dict().items()}
    clip0 = {k: v.clone() for k, v in m.encoder.clip.state_dict().items()}
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1)
    m(ids, mask, vis, labels=labels).loss.backward()
    opt.step()
    assert all(torch.equal(v, sam0[k]) for k, v in m.encoder.sam.state_dict().items())
    assert all(torch.equal(v, comp0[k]) for k, v in m.encoder.compressor.state_dict().items())
    assert any(not torch.equal(v, clip0[k]) for k, v in m.encoder.clip.state_dict().items())
    # Frozen SAM is forward-only in the FLOPs account.
    assert m.encoder_flops("base") < _model().encoder_flops("base")


def test_stage1_encoder_carries_into_stage2():
    s1, s2 = _model(stage=1, seed=4), _model(stage=2, seed=5)
    assert s1.dec_cfg.width != s2.dec_cfg.width and s1.dec_cfg.n_routed == 0
    skipped = s2.load_encoder_state_dict(s1.encoder_state_dict())
    assert sorted(skipped) == ["image_newline", "projector.bias", "projector.weight", "view_separator"]
    for k, v in s1.encoder.sam.state_dict().items():
        assert torch.equal(v, s2.encoder.sam.state_dict()[k])
    for k, v in s1.encoder.clip.state_dict().items():
        assert torch.equal(v, s2.encoder.clip.state_dict()[k])


# -- generation --------------------------------------------------------------------
def _left_padded_prompts(m: OCRModel, mode: str = "base"):
    enc = m.cfg.encoder
    vis = [fit_image(_page(160, 200, s), mode, enc) for s in (20, 21)]
    rows = [_row(mode, vis[0], [30, 31, 32], enc), _row(mode, vis[1], [40], enc)]
    width = max(map(len, rows))
    ids = torch.zeros(2, width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, r in enumerate(rows):
        ids[b, width - len(r):] = torch.tensor(r)
        mask[b, width - len(r):] = 1
    return ids, mask, vis


def test_generate_with_kv_cache_matches_full_recompute():
    m = _model(seed=6).eval()
    ids, mask, vis = _left_padded_prompts(m)
    cached = m.generate(ids, mask, vis, max_new_tokens=16, eos_token_id=EOS, no_repeat_ngram_size=4)
    full = m.generate(ids, mask, vis, max_new_tokens=16, eos_token_id=EOS, no_repeat_ngram_size=4,
                      use_cache=False)
    assert cached == full
    assert len(cached[0]) > 0
    # Left padding does not change a row's result.
    alone = m.generate(ids[1:, mask[1].argmax():], mask[1:, mask[1].argmax():], vis[1:],
                       max_new_tokens=16, eos_token_id=EOS, no_repeat_ngram_size=4)
    assert alone[0] == cached[1]


def test_ngram_blocker_blocks_a_repeat():
    m = _model(seed=7).eval()
    with torch.no_grad():
        m.decoder.norm.weight.zero_()  # every logit equal: greedy would emit token 0 forever
    ids, mask, vis = _left_padded_prompts(m)
    eos = VOCAB - 1  # out of the way of the lowest ids greedy falls back to
    loop = m.generate(ids, mask, vis, max_new_tokens=12, eos_token_id=eos, no_repeat_ngram_size=0)
    assert loop == [[0] * 12, [0] * 12]
    out = m.generate(ids, mask, vis, max_new_tokens=12, eos_token_id=eos, no_repeat_ngram_size=3)
    for row in out:
        grams = [tuple(row[i:i + 3]) for i in range(len(row) - 2)]
        assert len(grams) == len(set(grams)) and len(row) == 12


def test_ngram_blocker_unit():
    b = NgramBlocker(3, [[5, 6, 7, 5, 6]])
    assert b.banned(0) == [7]
    b.push(0, 8)
    assert b.banned(0) == []
    b.push(0, 5)
    b.push(0, 6)  # (6, 8, 5), (8, 5, 6) are new; (5, 6) was followed by 7 and 8
    assert b.banned(0) == [7, 8]


# -- MoE ---------------------------------------------------------------------------
def test_moe_dispatch_equals_naive_per_token_reference():
    torch.manual_seed(8)
    moe = MoE(dim=24, n_routed=6, n_shared=1, top_k=2, inter=16, norm_topk_prob=False)
    x = torch.randn(3, 7, 24)
    out, aux = moe(x)
    probs, w, idx = moe.route(x.reshape(-1, 24))
    ref = []
    for t, xt in enumerate(x.reshape(-1, 24)):
        y = moe.shared(xt)
        for j in range(2):
            e = idx[t, j]
            g, u = (moe.w_gate_up[e] @ xt).chunk(2)
            y = y + w[t, j] * (moe.w_down[e] @ (torch.nn.functional.silu(g) * u))
        ref.append(y)
    torch.testing.assert_close(out, torch.stack(ref).reshape(3, 7, 24), atol=1e-5, rtol=1e-5)
    assert aux.item() >= 1.0 - 1e-6  # E * sum f_i P_i is minimised at 1 by a balanced router
    # Tokens marked invalid do not count in the balance loss.
    valid = torch.zeros(3, 7, dtype=torch.bool)
    valid[0] = True
    _, aux0 = moe(x, valid)
    _, aux_first = moe(x[:1])
    torch.testing.assert_close(aux0, aux_first)


def test_grouped_gemm_experts_match_the_per_expert_loop_forward_and_backward():
    """The bf16 grouped-GEMM path (what CUDA runs) against a float64 per-expert loop, on CPU."""
    from train.model.moe import _expert_grouped, _expert_loop

    torch.manual_seed(9)
    n_exp, dim, inter = 6, 64, 32
    counts = torch.tensor([5, 0, 11, 3, 0, 9])  # empty experts included
    xs = torch.randn(int(counts.sum()), dim)
    w_gu, w_dn = torch.randn(n_exp, 2 * inter, dim) * 0.1, torch.randn(n_exp, dim, inter) * 0.1
    probe = torch.randn(int(counts.sum()), dim)  # a non-trivial upstream gradient

    def run(fn, dtype, counts_arg):
        leaves = [t.to(dtype).requires_grad_() for t in (xs, w_gu, w_dn)]
        out = fn(leaves[0], counts_arg, leaves[1], leaves[2])
        (out.double() * probe.double()).sum().backward()
        return [out.double()] + [t.grad.double() for t in leaves]

    ref = run(_expert_loop, torch.float64, counts.tolist())
    got = run(_expert_grouped, torch.bfloat16, counts)
    for name, r, g in zip(("out", "d_x", "d_gate_up", "d_down"), ref, got):
        rel = ((g - r).norm() / r.norm()).item()
        assert rel < 2e-2, f"{name}: relative error {rel:.3g} of bf16 grouped GEMM"
    # Empty experts get exactly zero weight gradient.
    assert got[2][1].abs().max() == 0 and got[3][4].abs().max() == 0


def test_moe_layer_on_the_grouped_path_matches_float64_and_keeps_no_float32_slots(monkeypatch):
    """The whole MoE layer as CUDA bf16 training runs it (float32 residual in, bf16 grouped
    GEMMs), against the per-expert loop in float64: output and every gradient agree to bf16
    precision. What it keeps for backward holds no float32 tensor of one row per routed
    slot (the combine once kept a 30 KiB-a-token float32 copy per layer)."""
    import train.model.moe as moe_mod

    torch.manual_seed(10)
    moe = MoE(dim=64, n_routed=8, n_shared=1, top_k=3, inter=32, norm_topk_prob=False)
    x = torch.randn(2, 9, 64)
    probe = torch.randn(2, 9, 64)

    def run(dtype, grouped: bool):
        monkeypatch.setattr(moe_mod, "use_grouped_gemm", lambda xs: grouped)
        m = copy.deepcopy(moe).to(dtype)
        xi = x.to(dtype).requires_grad_()
        saved = []

        def pack(t):
            saved.append((tuple(t.shape), t.dtype))
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out, aux = m(xi)
        ((out.double() * probe.double()).sum() + aux.double()).backward()
        grads = [xi.grad] + [p.grad for p in (m.gate.weight, m.w_gate_up, m.w_down, m.shared.gate_up.weight)]
        return [out.double()] + [g.double() for g in grads], saved

    ref, _ = run(torch.float64, grouped=False)
    got, saved = run(torch.float32, grouped=True)
    names = ("out", "d_x", "d_gate", "d_gate_up", "d_down", "d_shared")
    for name, r, g in zip(names, ref, got):
        rel = ((g - r).norm() / r.norm()).item()
        assert rel < 3e-2, f"{name}: relative error {rel:.3g}"
    slots = 2 * 9 * 3
    per_slot = [s for s in saved if s[1] == torch.float32 and math.prod(s[0][:-1]) == slots and s[0][-1] > 1]
    assert not per_slot, per_slot


def test_kernel_probe_answers_once_per_device_and_falls_back(caplog):
    """The trainer's probe of an optional kernel (grouped GEMM, FlexAttention): agreeing is
    True and asked once; a kernel that errs or disagrees is False, with the reason logged."""
    from train.model.kernel_probe import probe_once

    calls = []
    x = torch.arange(1.0, 5.0)

    def agree(dev):
        calls.append(dev)
        return x * (1 + 1e-4), x

    def fail(dev):
        raise RuntimeError("no kernel image for this device")

    cache: dict[str, bool] = {}
    assert probe_once(cache, "cpu", "k", "the loop", agree) and probe_once(cache, "cpu", "k", "the loop", agree)
    assert len(calls) == 1 and cache == {"cpu": True}
    with caplog.at_level("WARNING"):
        assert not probe_once({}, "cpu", "fast", "the loop", fail)
        assert not probe_once({}, "cpu", "fast", "the loop", lambda dev: (x + 1, x))
    msgs = [r.getMessage() for r in caplog.records]
    assert any("no kernel image" in m and "using the loop" in m for m in msgs)
    assert any("disagrees" in m and "using the loop" in m for m in msgs)


def test_rotary_runs_in_the_input_dtype():
    """Under bf16 autocast q and k are bf16: rotating them moves no float32 tensor of their
    size, and the result is a rotation to bf16 precision (float64 reference)."""
    from bench.bench_roofline import OpRecorder
    from train.model.decoder import apply_rotary, rotary

    torch.manual_seed(12)
    x = torch.randn(2, 4, 33, 16, dtype=torch.float64)
    cos, sin = rotary(torch.arange(33).expand(2, 33) * 97, 16, 10000.0)  # large angles too
    ref = apply_rotary(x, cos.double(), sin.double())
    rec = OpRecorder()
    with rec:
        got = apply_rotary(x.to(torch.bfloat16), cos, sin)
    assert got.dtype == torch.bfloat16
    assert not [op for op in rec.ops if any(dt == "float32" and sh in ((2, 4, 33, 8), (2, 4, 33, 16))
                                            for sh, dt in zip(op.shapes, op.dtypes))]
    torch.testing.assert_close(ref.norm(dim=-1), x.norm(dim=-1))  # a rotation keeps lengths
    assert ((got.double() - ref).norm() / ref.norm()).item() < 1e-2


def test_moe_reorders_tokens_by_gathers_in_backward_too(monkeypatch):
    """Backward of the MoE layer on the grouped path sums each token's k slot gradients by
    a gather, and routes the output gradient back to the slots by a gather, and so does the
    routing weights' permutation; the forward counts each expert's slots from the sorted
    ids' edges. So no accumulating scatter anywhere (autograd's default for an indexed read,
    and what inductor makes of an index_add: on CUDA it sorts, then serialises duplicates),
    and no float32 tensor of rows per routed slot."""
    import train.model.moe as moe_mod
    from bench.bench_roofline import OpRecorder

    monkeypatch.setattr(moe_mod, "use_grouped_gemm", lambda xs: True)
    torch.manual_seed(11)
    dim, top_k, n = 64, 3, 2 * 9
    moe = MoE(dim=dim, n_routed=8, n_shared=1, top_k=top_k, inter=32, norm_topk_prob=True)
    x = torch.randn(2, 9, dim, requires_grad=True)
    rec = OpRecorder()
    with rec:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, aux = moe(x)  # the forward counts tokens per expert without one either
        (out.float().square().sum() + aux).backward()
    names = [op.name for op in rec.ops]
    assert "_grouped_mm" in names  # the experts' backward ran under the recorder
    scatters = [op for op in rec.ops if op.name.startswith(("index_put", "index_add", "scatter_add"))]
    assert not scatters, [(op.name, op.shapes) for op in scatters]
    assert [op for op in rec.ops if op.name == "index" and op.shapes[0][-1:] == (dim,)]  # the gathers
    per_slot = [op for op in rec.ops for shape, dt in zip(op.shapes, op.dtypes)
                if dt == "float32" and len(shape) > 1 and shape[0] == n * top_k and shape[-1] > 1]
    assert not per_slot, [(op.name, op.shapes) for op in per_slot]
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("h,w,table_len", [(6, 6, 6), (5, 7, 7), (4, 4, 8)])
def test_sam_rel_pos_in_key_dims_equals_the_explicit_bias(h, w, table_len):
    """SAM's decomposed bias carried as extra query/key dims gives SAM's attention exactly:
    outputs and every gradient (tables included) against the [L, L] additive-mask form,
    on square and non-square grids and with tables resized from another length."""
    from train.model.sam import mask_rel_pos_attention, rel_pos_attention

    torch.manual_seed(h * 100 + w)
    q, k, v = (torch.randn(2, 3, h * w, 16, dtype=torch.float64, requires_grad=True) for _ in range(3))
    tab_h, tab_w = (torch.randn(2 * table_len - 1, 16, dtype=torch.float64, requires_grad=True) for _ in range(2))
    ref = mask_rel_pos_attention(q, k, v, tab_h, tab_w, h, w)
    got = rel_pos_attention(q, k, v, tab_h, tab_w, h, w)
    torch.testing.assert_close(got, ref, atol=1e-12, rtol=1e-10)
    probe = torch.randn_like(ref)
    leaves = (q, k, v, tab_h, tab_w)
    for g, r in zip(torch.autograd.grad(got, leaves, probe), torch.autograd.grad(ref, leaves, probe)):
        torch.testing.assert_close(g, r, atol=1e-11, rtol=1e-9)


def test_sam_flex_attention_equals_the_key_dim_form():
    """FlexAttention with the bias added in the kernel (what frozen SAM runs on CUDA) gives
    the key-dim form's attention: on a non-square grid, with a resized table, and for a
    batch that goes through in both chunk shapes (5 = 4 + 1 images). Compiled here on CPU,
    every chunk shape at the first call, so other batch sizes build nothing new."""
    from train.model.sam import flex_attention_ok, flex_rel_pos_attention, rel_pos_attention

    torch.manual_seed(13)
    h, w = 6, 5
    q, k, v = (torch.randn(5, 2, h * w, 16) for _ in range(3))
    tab_h, tab_w = torch.randn(2 * 8 - 1, 16), torch.randn(2 * w - 1, 16)
    torch._dynamo.reset()
    counters = torch._dynamo.utils.counters
    with torch.no_grad():
        torch.testing.assert_close(flex_rel_pos_attention(q, k, v, tab_h, tab_w, h, w),
                                   rel_pos_attention(q, k, v, tab_h, tab_w, h, w), atol=1e-5, rtol=1e-5)
        built = counters["stats"]["unique_graphs"]
        for n in (3, 1, 4):  # built at the first call already: nothing new
            torch.testing.assert_close(flex_rel_pos_attention(q[:n], k[:n], v[:n], tab_h, tab_w, h, w),
                                       rel_pos_attention(q[:n], k[:n], v[:n], tab_h, tab_w, h, w),
                                       atol=1e-5, rtol=1e-5)
        assert counters["stats"]["unique_graphs"] == built
    assert flex_attention_ok("cpu")  # the trainer's probe passes where the kernel builds


def test_sam_takes_flex_attention_only_when_switched_on_without_autograd(monkeypatch):
    """set_sam_flex_attention switches SAM's long attention to FlexAttention, used only
    without autograd (frozen SAM); the encoder's output is unchanged."""
    import train.model.sam as sam_mod

    monkeypatch.setattr(sam_mod, "FLEX_MIN_TOKENS", 100)  # tiny's global block: 12 x 12 tokens
    calls = []
    flex = sam_mod.flex_rel_pos_attention
    monkeypatch.setattr(sam_mod, "flex_rel_pos_attention", lambda *a: (calls.append(a[0].shape), flex(*a))[1])
    m = _model(seed=14)
    x = torch.randn(2, 3, 192, 192)
    with torch.no_grad():
        ref = m.encoder.sam(x)
    m.set_sam_flex_attention(True)
    with torch.no_grad():
        got = m.encoder.sam(x)
    assert calls == [(2, 2, 144, 16)]  # the one global block; windows stay on SDPA
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)
    m.encoder.sam(x)  # with autograd (stage 1 trains SAM): the key-dim form
    assert len(calls) == 1


# -- FLOPs -------------------------------------------------------------------------
def test_encoder_flops_match_torch_flop_counter():
    m = _model(seed=9)
    enc = m.cfg.encoder
    x = torch.randn(1, 3, 192, 192)
    # torch may or may not count CPU SDPA without a mask (SAM's relative positions ride in
    # extra key dims, not a mask); everything else must agree exactly.
    with FlopCounterMode(display=False) as fc:
        m.encoder.sam(x)
    sam_attention = fl.sam_attention_flops(enc, 192)
    assert sam_attention > 0
    assert fc.get_total_flops() in (fl.sam_flops(enc, 192), fl.sam_flops(enc, 192) - sam_attention)
    with FlopCounterMode(display=False) as fc:
        m.encoder.encode(x)
    analytic = fl.sam_flops(enc, 192) + fl.compressor_flops(enc, 192) + fl.clip_flops(enc, 192) \
        + fl.projector_flops(enc, 192, m.dec_cfg.width)
    m_tok = enc.token_side(192) ** 2 + 1
    clip_attention = enc.clip_depth * 4 * m_tok * m_tok * enc.clip_width
    assert fc.get_total_flops() in (analytic, analytic - clip_attention - sam_attention)
    assert m.encoder_flops("base") == 3 * analytic

    def per_view(size: int) -> int:
        return (fl.sam_flops(enc, size) + fl.compressor_flops(enc, size) + fl.clip_flops(enc, size)
                + fl.projector_flops(enc, size, m.dec_cfg.width))

    # Tiled modes: the global view plus each tile at its own size (tiny config: Gundam-M
    # tiles 192 px, view 256 px; Gundam tiles 128 px, view 192 px).
    assert m.encoder_flops("gundam_m", (2, 3)) == 3 * (per_view(256) + 6 * per_view(192))
    assert m.encoder_flops("gundam", (2, 1)) == 3 * (per_view(192) + 2 * per_view(128))
    assert m.flops_per_token(100) == 6 * m.num_params(active=True, part="decoder") + 12 * 2 * 4 * 16 * 100


def test_every_block_kind_is_one_graph_on_the_gpu_path(monkeypatch):
    """What --compile compiles (OCRModel.compile_blocks, dynamic shapes) traces without a
    graph break when the experts take the GPU's grouped-GEMM path: SAM's windowed and
    global blocks, CLIP's block, and the decoder's dense and MoE blocks. A break would
    split a block's graph and run Python between its parts in every step. (On CPU the
    per-expert loop reads the expert counts, which is a break, so the GPU path is selected
    by hand here.)"""
    import train.model.moe as moe_mod
    from torch._dynamo.utils import counters
    from train.model.decoder import rotary

    monkeypatch.setattr(moe_mod, "use_grouped_gemm", lambda xs: True)
    m = _model(seed=2).to(torch.bfloat16)
    torch._dynamo.reset()
    counters.clear()
    m.compile_blocks(backend="eager")
    enc, dec = m.cfg.encoder, m.dec_cfg
    g = enc.base_size // enc.patch_size
    sam = {blk.window > 0: blk for blk in m.encoder.sam.blocks}
    kinds = {blk.is_moe: blk for blk in m.decoder.blocks}
    assert set(sam) == set(kinds) == {True, False}
    b, t = 3, 21
    cos, sin = rotary(torch.arange(t).expand(b, t), dec.head_dim, dec.rope_theta)
    x = torch.randn(b, t, dec.width, dtype=torch.bfloat16)
    valid = torch.ones(b, t, dtype=torch.bool)
    calls = {
        "sam windowed": (sam[True], (torch.randn(b, g, g, enc.sam_width, dtype=torch.bfloat16),)),
        "sam global": (sam[False], (torch.randn(b, g, g, enc.sam_width, dtype=torch.bfloat16),)),
        "clip": (m.encoder.clip.blocks[0], (torch.randn(b, 10, enc.clip_width, dtype=torch.bfloat16),)),
        "decoder dense": (kinds[False], (x, cos, sin, None, None, valid)),
        "decoder moe": (kinds[True], (x, cos, sin, None, None, valid)),
    }
    for k, (name, (blk, args)) in enumerate(calls.items(), start=1):
        blk(*args)
        assert counters["stats"]["unique_graphs"] == k and not counters["graph_break"], (name, dict(counters["graph_break"]))


@pytest.mark.slow
def test_inductor_compiles_the_grouped_gemm_moe_block_with_dynamic_shapes(monkeypatch):
    """The GPU step's riskiest graph, built by inductor (what --compile uses) on CPU: the
    MoE block on the grouped-GEMM path, bf16, forward and backward. Outputs and input
    gradients match the eager block, and inputs of new shapes reuse the graph."""
    import train.model.moe as moe_mod
    from torch._dynamo.utils import counters
    from train.model.decoder import rotary

    monkeypatch.setattr(moe_mod, "use_grouped_gemm", lambda xs: True)
    blocks = [next(b for b in _model(seed=2).to(torch.bfloat16).decoder.blocks if b.is_moe) for _ in range(2)]
    eager, compiled = blocks
    torch._dynamo.reset()
    counters.clear()
    compiled.compile(dynamic=True)
    dec = _model().dec_cfg
    graphs = []
    for b, t in ((3, 21), (5, 17), (4, 30)):
        cos, sin = rotary(torch.arange(t).expand(b, t), dec.head_dim, dec.rope_theta)
        valid = torch.ones(b, t, dtype=torch.bool)
        x = torch.randn(b, t, dec.width, dtype=torch.bfloat16)
        outs = []
        for blk in (eager, compiled):
            xi = x.clone().requires_grad_(True)
            y, aux = blk(xi, cos, sin, None, None, valid)
            (y.float().square().mean() + aux).backward()
            outs.append((y.float(), xi.grad.float()))
        graphs.append(counters["stats"]["unique_graphs"])
        for name, ref, got in zip(("output", "input gradient"), outs[0], outs[1]):
            rel = ((got - ref).norm() / ref.norm()).item()
            assert rel < 2e-2, (b, t, name, rel)
    assert graphs == [1, 1, 1], graphs


@pytest.mark.slow
def test_compiled_blocks_take_every_mode_without_falling_back(caplog):
    """A multi-mode run (--mode with all six) through compiled blocks in stage 1: SAM
    compiles a graph per block kind and image size, more than dynamo's default of 8 per
    function, after which it would run SAM eager. Every mode gives eager's loss, with and
    without autograd, and no recompile limit is hit."""
    import logging

    eager, compiled = _model(stage=1, seed=6), _model(stage=1, seed=6)
    torch._dynamo.reset()
    compiled.compile_blocks(backend="aot_eager")
    dynamo_log = logging.getLogger("torch._dynamo")  # torch's loggers do not propagate to caplog's
    dynamo_log.addHandler(caplog.handler)
    try:
        for mode in MODES:
            ids, mask, vis, labels = _batch(eager, mode)
            want = eager(ids, mask, vis, labels=labels).loss
            got = compiled(ids, mask, vis, labels=labels).loss
            got.backward()
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=mode)
            with torch.no_grad():  # as held-out evaluation runs: one more graph per SAM kind and size
                torch.testing.assert_close(compiled(ids, mask, vis, labels=labels).loss, want, rtol=1e-5, atol=1e-6)
    finally:
        dynamo_log.removeHandler(caplog.handler)
    assert not [r for r in caplog.records if "recompile_limit" in r.getMessage()]
