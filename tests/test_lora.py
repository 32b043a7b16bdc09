"""LoRA (train/lora.py) and LoRA fine-tuning runs of the trainer, on the tiny config."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import train.model.moe as moe_mod
from tests.test_model import _batch, _model
from tests.test_train import generate_shards, tiny_args
from train import checkpoint as ckpt_io
from train.data import ShardSet, iter_texts
from train.lora import (TARGETS, LoraConfig, LoraLinear, StackedLora, adapter_base_key, adapter_state_dict,
                        apply_lora, load_adapter_state_dict, merge_lora)
from train.loop import Trainer, build_model, load_model_from_checkpoint
from train.model.moe import MoE
from train.tokenizer import train_tokenizer

ALL = LoraConfig(rank=8, alpha=16, targets=TARGETS)
# What a run adapts in the trainer tests: every decoder target and the projector.
RUN_TARGETS = ["attention", "dense_mlp", "shared_experts", "routed_experts", "projector"]


def _loss(m, batch, autocast: bool = False) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        return m(*batch[:3], labels=batch[3]).loss


def _randomise_b(m: nn.Module, seed: int = 0) -> None:
    """Give every lora_B a non-zero value (as training would), so adapters change outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, p in m.named_parameters():
            if k.endswith("lora_B.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


# -- the adapters ------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_adapters_start_at_the_base_and_only_they_train(dtype):
    """B = 0: the adapted model's loss is the base's, exactly. Everything but the adapters
    is frozen and keeps its dtype (bf16 for the trainer's CUDA base, run here under CPU
    autocast as CUDA runs it); the first backward reaches every B, and no A (B is zero)."""
    base = _model(seed=2).to(dtype)
    batch = _batch(base, "gundam")
    autocast = dtype == torch.bfloat16
    ref = _loss(base, batch, autocast).item()
    m = copy.deepcopy(base)
    paths = apply_lora(m, ALL)
    blk0, blk1 = "decoder.blocks.0", "decoder.blocks.1"  # tiny: a dense layer, then a MoE layer
    assert {f"{blk0}.attn.q", f"{blk0}.mlp.gate_up", f"{blk1}.mlp.shared.down", f"{blk1}.mlp.w_gate_up",
            f"{blk1}.mlp.w_down", "encoder.projector", "encoder.clip.blocks.1.attn.qkv"} <= set(paths)
    assert len(paths) == 2 * 4 + 2 + 2 + 2 + 1 + 2 * 4
    assert _loss(m, batch, autocast).item() == ref
    trainable = {k for k, p in m.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in k or ".lora_B." in k for k in trainable)
    adapters = adapter_state_dict(m)
    assert len(adapters) == 2 * len(paths) and all(v.dtype == torch.float32 for v in adapters.values())
    assert all(p.dtype == dtype for k, p in m.named_parameters() if k not in trainable)
    _loss(m, batch, autocast).backward()
    grads = {k: p.grad for k, p in m.named_parameters() if p.requires_grad}
    for k, g in grads.items():
        assert g is not None and g.dtype == torch.float32, k
        assert (g.abs().sum() > 0) == k.endswith("lora_B.weight"), k
    assert all(p.grad is None for k, p in m.named_parameters() if k not in trainable)


def test_merged_model_equals_the_adapted_one_and_is_plain_again():
    """merge_lora folds B @ A * alpha / rank into each base weight: the merged model's logits
    are the adapted model's to float32 rounding, and its modules, names and shapes are the
    base model's. The adapter layout splits as the exporter splits it: fused gate/up by B's
    rows, stacked experts by their first index."""
    base = _model(seed=3)
    plain = {k: (type(v), tuple(v.shape)) for k, v in base.state_dict().items()}
    m = copy.deepcopy(base)
    apply_lora(m, ALL)
    _randomise_b(m)
    m.eval()
    batch = _batch(m, "gundam")
    with torch.no_grad():
        adapted = m(*batch[:3]).logits
    sd = adapter_state_dict(m)
    merge_lora(m)
    with torch.no_grad():
        merged = m(*batch[:3]).logits
        before = base(*batch[:3]).logits
    assert (adapted - before).abs().max() > 1e-3  # the adapters did change the output
    torch.testing.assert_close(merged, adapted, rtol=1e-5, atol=1e-5)
    assert {k: (type(v), tuple(v.shape)) for k, v in m.state_dict().items()} == plain
    assert not any(isinstance(x, (LoraLinear, StackedLora)) for x in m.modules())
    assert all(type(x) is nn.Linear for x in (m.decoder.blocks[0].attn.q, m.encoder.projector))
    assert all(x.lora is None for x in m.modules() if isinstance(x, MoE))

    s = ALL.scaling
    new, old = m.state_dict(), base.state_dict()
    for key in sd:
        if key.endswith("lora_A.weight"):
            w = adapter_base_key(key)
            a, b = sd[key], sd[key.replace("lora_A", "lora_B")]
            want = old[w] + s * (b @ a)  # b @ a batches over experts for stacked tensors
            torch.testing.assert_close(new[w], want, rtol=1e-6, atol=1e-6, msg=key)
    # Fused gate_up = [gate; up]: the gate's own adapter is (A, B[:I]).
    inter = m.decoder.blocks[0].mlp.down.in_features
    a, b = sd["decoder.blocks.0.mlp.gate_up.lora_A.weight"], sd["decoder.blocks.0.mlp.gate_up.lora_B.weight"]
    torch.testing.assert_close(new["decoder.blocks.0.mlp.gate_up.weight"][:inter],
                               old["decoder.blocks.0.mlp.gate_up.weight"][:inter] + s * b[:inter] @ a)
    # Stacked experts: expert 3's up projection is (A[3], B[3, I:]).
    moe = m.decoder.blocks[1].mlp
    i_e = moe.w_down.shape[2]
    a, b = sd["decoder.blocks.1.mlp.w_gate_up.lora_A.weight"], sd["decoder.blocks.1.mlp.w_gate_up.lora_B.weight"]
    assert a.shape == (moe.n_routed, 8, moe.w_gate_up.shape[2]) and b.shape == (moe.n_routed, 2 * i_e, 8)
    torch.testing.assert_close(new["decoder.blocks.1.mlp.w_gate_up"][3, i_e:],
                               old["decoder.blocks.1.mlp.w_gate_up"][3, i_e:] + s * b[3, i_e:] @ a[3])


def test_expert_adapters_on_the_grouped_gemm_path_match_the_loop(monkeypatch):
    """Routed-expert adapters inside the bf16 grouped GEMMs (what CUDA runs) against the
    per-expert loop in float64: output and the gradients of input and adapters agree to
    bf16 precision."""
    torch.manual_seed(11)
    moe = MoE(dim=64, n_routed=8, n_shared=1, top_k=3, inter=32, norm_topk_prob=False)
    apply_lora(_Holder(moe), LoraConfig(rank=8, targets=("routed_experts",)))
    _randomise_b(moe, seed=1)
    x, probe = torch.randn(2, 9, 64), torch.randn(2, 9, 64)

    def run(dtype, grouped: bool):
        monkeypatch.setattr(moe_mod, "use_grouped_gemm", lambda xs: grouped)
        m = copy.deepcopy(moe).to(dtype)
        xi = x.to(dtype).requires_grad_()
        out, _ = m(xi)
        (out.double() * probe.double()).sum().backward()
        lora = [p.grad for k, p in m.named_parameters() if "lora_" in k]
        return [out.double(), xi.grad.double()] + [g.double() for g in lora]

    ref = run(torch.float64, grouped=False)
    got = run(torch.float32, grouped=True)
    assert len(ref) == 2 + 4
    for i, (r, g) in enumerate(zip(ref, got)):
        rel = ((g - r).norm() / r.norm()).item()
        assert rel < 3e-2, f"tensor {i}: relative error {rel:.3g}"


class _Holder(nn.Module):
    """A lone MoE dressed as an OCRModel for apply_lora (a decoder with one block)."""

    def __init__(self, moe: MoE):
        super().__init__()
        blk = nn.Module()
        blk.attn, blk.mlp = nn.Identity(), moe
        self.decoder = nn.Module()
        self.decoder.blocks = nn.ModuleList([blk])
        self.encoder = nn.Module()


def test_adapter_files_and_options_are_checked():
    """Adapters load back only into the same targets and rank; bad options name themselves."""
    m = _model(seed=5)
    apply_lora(m, ALL)
    _randomise_b(m)
    sd = {k: v.clone() for k, v in adapter_state_dict(m).items()}
    fresh = _model(seed=5)
    apply_lora(fresh, ALL)
    load_adapter_state_dict(fresh, sd)
    assert all(torch.equal(v, sd[k]) for k, v in adapter_state_dict(fresh).items())
    with pytest.raises(ValueError, match="another LoRA rank"):
        other = _model(seed=5)
        apply_lora(other, LoraConfig(rank=16, alpha=16, targets=TARGETS))
        load_adapter_state_dict(other, sd)
    with pytest.raises(ValueError, match="missing adapter keys.*another LoRA target set"):
        other = _model(seed=5)
        apply_lora(other, LoraConfig(rank=8, targets=TARGETS))
        load_adapter_state_dict(other, {k: v for k, v in sd.items() if "clip" not in k})
    with pytest.raises(ValueError, match="already has LoRA"):
        apply_lora(m, ALL)
    with pytest.raises(ValueError, match="multiple of 8"):
        LoraConfig(rank=4, targets=("attention", "routed_experts"))
    with pytest.raises(ValueError, match="valid targets are attention"):
        LoraConfig(rank=4, targets=("attn",))
    with pytest.raises(ValueError, match="need a MoE decoder"):
        apply_lora(_model(stage=1), LoraConfig(rank=8, targets=("routed_experts",)))


# -- fine-tuning runs ------------------------------------------------------------------
@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    """Real shards, their tokenizer, and a stage-2 base checkpoint (a seeded tiny model)."""
    root = tmp_path_factory.mktemp("lora")
    shards = generate_shards(root / "ds", shards=1, rows_per_shard=12)
    tok = train_tokenizer(iter_texts(ShardSet([str(shards)])), vocab_size=400)
    tok.save(root / "tok.json")
    torch.manual_seed(0)
    model, _ = build_model("tiny", 2, tok)
    ckpt_io.save(root / "base", 0, model, torch.optim.AdamW(model.parameters()), {})
    return {"shards": shards, "tok": root / "tok.json", "base": root / "base", "root": root}


def _cli(setup: dict, out: Path, *extra: str) -> list[float]:
    """``python -m train`` from the base checkpoint, 4 steps; the logged losses."""
    from train.__main__ import main

    main(["--config", "tiny", "--stage", "2", "--data", str(setup["shards"]), "--steps", "4", "--batch-size", "4",
          "--workers", "0", "--log-every", "1", "--save-every", "100", "--warmup", "1", "--lr", "1e-2",
          "--tokenizer", str(setup["tok"]), "--device", "cpu", "--init-from", str(setup["base"]),
          "--out", str(out), *extra])
    return [json.loads(x)["loss"] for x in (out / "log.jsonl").read_text().splitlines()]


def test_lora_run_starts_at_the_base_loss_resumes_exactly_and_checkpoints_only_adapters(setup):
    """A LoRA run's first step has the full fine-tuning run's loss (B = 0), then trains;
    killed after 2 steps and started again it logs the same losses as an uninterrupted
    run. Its checkpoints hold the adapters (and their AdamW moments) alone, run.json where
    the base came from; loading the run gives the base with the adapters merged."""
    root = setup["root"]
    lora = ["--lora-rank", "8", "--lora-alpha", "16", "--lora-targets", *RUN_TARGETS]
    full = _cli(setup, root / "full")
    whole = _cli(setup, root / "lora_a", *lora)
    assert whole[0] == pytest.approx(full[0], rel=1e-6)
    assert whole[-1] < whole[0] and whole != full
    _cli(setup, root / "lora_b", *lora, "--stop-after", "2")
    assert ckpt_io.latest(root / "lora_b").name == "step-00000002"
    resumed = _cli(setup, root / "lora_b", *lora)
    np.testing.assert_allclose(resumed, whole, rtol=1e-5)

    ck = ckpt_io.latest(root / "lora_b")
    info = json.loads((root / "lora_b" / "run.json").read_text())
    assert info["base"] == {"init_from": str(ckpt_io.latest(setup["base"]).resolve())}
    assert info["lora"] == {"rank": 8, "alpha": 16.0, "dropout": 0.0, "targets": RUN_TARGETS}
    saved = load_file(str(ck / "model.safetensors"))
    tr = Trainer(tiny_args(setup["shards"], root / "lora_b", setup["tok"], stage=2, init_from=str(setup["base"]),
                           lora_rank=8, lora_alpha=16, lora_targets=RUN_TARGETS, steps=4))
    assert tr.step == 4  # resumed from the checkpoint
    live = adapter_state_dict(tr.model)
    assert saved.keys() == live.keys() and all(torch.equal(saved[k], live[k]) for k in live)
    assert len(load_file(str(ck / "optimizer.safetensors"))) == 3 * len(live) + 1  # step, 2 moments; RNG
    # The base did not move, and the merged model is what generation and evaluation load.
    base_sd = ckpt_io.load_state_dict(ckpt_io.latest(setup["base"]))
    own = tr.model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in base_sd.items())
    merge_lora(tr.model)
    loaded, _ = build_model("tiny", 2, tr.tok)
    load_model_from_checkpoint(loaded, ck)
    assert all(torch.equal(v, tr.model.state_dict()[k]) for k, v in loaded.state_dict().items())
    assert any(not torch.equal(loaded.state_dict()[k], v) for k, v in base_sd.items())


def test_lora_options_are_checked_before_training(setup):
    root = setup["root"]
    kw = dict(stage=2, lora_rank=8)
    with pytest.raises(ValueError, match="needs a trained base"):
        tiny_args(setup["shards"], root / "x", **kw).validate()
    with pytest.raises(ValueError, match="this run is stage 1"):
        tiny_args(setup["shards"], root / "x", **{**kw, "stage": 1}, init_from=str(setup["base"])).validate()
    with pytest.raises(ValueError, match="--lora-\\*: LoRA targets attn"):
        tiny_args(setup["shards"], root / "x", **kw, init_from="b", lora_targets=["attn"]).validate()
    with pytest.raises(ValueError, match="CPU steps run in float32"):
        Trainer(tiny_args(setup["shards"], root / "x", setup["tok"], **kw, init_from=str(setup["base"]),
                          lora_base_dtype="bfloat16"))
    # A full fine-tuning run resumed with LoRA flags (or the reverse) is refused by name.
    _cli(setup, root / "full_x", "--stop-after", "1")
    with pytest.raises(ValueError, match="holds a whole model, but this run is a LoRA run"):
        Trainer(tiny_args(setup["shards"], root / "full_x", setup["tok"], **kw, init_from=str(setup["base"])))
