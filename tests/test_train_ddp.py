"""DDP with two gloo processes matches one process on the same global batch, and on the held-out loss."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from tests.test_train import generate_shards, tiny_args
from train.data import Collator, ShardSet, iter_texts
from train.tokenizer import IGNORE_INDEX, train_tokenizer

STEPS = 3
# Grounding + caption on rank 0, a text-only passage + a long caption on rank 1: different
# lengths and target-token counts per rank (the token weighting must hold), image and no image.
GLOBAL = [0, 2, 3, 12]


def _run(shards: Path, out: Path, tok_path: Path, rank: int, world: int,
         check_lengths: bool = False, **kw) -> tuple[list[float], dict, tuple[float, int]]:
    from train.loop import Trainer

    # Stage 1's dense decoder: no batch-dependent MoE balance loss to differ between layouts
    # (``kw`` may override: the LoRA case runs stage 2 with that loss weighted 0).
    # The training rows double as held-out data: each rank evaluates its share of all of them.
    tr = Trainer(tiny_args(shards, out, tok_path, **{"stage": 1, **kw}, lr=1e-3, warmup=0, steps=100, clip=0.5,
                           eval_data=[str(shards)], eval_examples=0))
    if check_lengths:  # the fixture really has the mix the comment on GLOBAL promises
        items = [tr.dataset[i] for i in GLOBAL]
        lens = [len(it["input_ids"]) for it in items]
        n_target = [int((it["labels"] != IGNORE_INDEX).sum()) for it in items]
        assert len(set(lens)) == len(lens), lens
        assert n_target[0] + n_target[1] != n_target[2] + n_target[3], n_target
        assert [it["vision"] is None for it in items] == [False, False, True, False]
    per = len(GLOBAL) // world
    batch = Collator(tr.tok.pad_id)([tr.dataset[i] for i in GLOBAL[rank * per:(rank + 1) * per]])
    losses = [tr.train_step([batch])["loss"] for _ in range(STEPS)]
    held = tr.evaluate_heldout()
    assert held["eval_examples"] == len(tr.dataset)
    return losses, {k: v.detach().clone() for k, v in tr.model.state_dict().items()}, (held["eval_loss"], held["eval_tokens"])


def _worker(rank: int, world: int, port: int, shards: str, out: str, tok_path: str, result: str, kw: dict) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from train import distributed

    try:
        losses, params, held = _run(Path(shards), Path(out), Path(tok_path), rank, world, **kw)
        if rank == 0:
            torch.save({"losses": losses, "params": params, "held": held}, result)
    finally:
        distributed.cleanup()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """12 real rows (vision scenes + text-only passages) from the project's runner."""
    # GLOBAL names rows of exactly this data; relational and negative queries would add records.
    return generate_shards(tmp_path_factory.mktemp("ddp") / "ds", shards=1, rows_per_shard=12,
                           vision={"negative_prob": 0.0, "relation_prob": 0.0})


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("lora", [False, True])
def test_ddp_two_gloo_ranks_match_one_process(shards, tmp_path, lora):
    """Also for a LoRA run (stage 2 from a base checkpoint, adapters on every decoder target)."""
    tok = train_tokenizer(iter_texts(ShardSet([str(shards)])), vocab_size=400)
    tok_path = tmp_path / "tok.json"
    tok.save(tok_path)
    kw = {}
    if lora:
        from train import checkpoint as ckpt_io
        from train.loop import build_model

        (tmp_path / "no_aux.yaml").write_text("base: tiny\ndecoder:\n  aux_loss_coef: 0.0\n")
        torch.manual_seed(0)
        base, _ = build_model(str(tmp_path / "no_aux.yaml"), 2, tok)
        ckpt_io.save(tmp_path / "base", 0, base, torch.optim.AdamW(base.parameters()), {})
        kw = dict(stage=2, config=str(tmp_path / "no_aux.yaml"), init_from=str(tmp_path / "base"), lora_rank=8,
                  lora_targets=["attention", "dense_mlp", "shared_experts", "routed_experts"])
    ref_losses, ref_params, ref_held = _run(shards, tmp_path / "single", tok_path, 0, 1, check_lengths=True, **kw)
    result = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(2, _free_port(), str(shards), str(tmp_path / "ddp"), str(tok_path), str(result), kw),
             nprocs=2, join=True)
    got = torch.load(result)
    torch.testing.assert_close(torch.tensor(got["losses"]), torch.tensor(ref_losses), rtol=1e-4, atol=1e-5)
    assert ref_losses[-1] < ref_losses[0]
    for k, v in ref_params.items():
        torch.testing.assert_close(got["params"][k], v, rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")
    # The held-out loss covers the same examples on two ranks as on one.
    assert got["held"][0] == pytest.approx(ref_held[0], rel=1e-4) and got["held"][1] == ref_held[1]


def test_cuda_allocator_gets_expandable_segments_unless_configured(monkeypatch):
    """dist_util.expandable_segments turns on expandable segments (the settings are the
    device-generic allocator's, readable on CPU), and leaves a user's PYTORCH_ALLOC_CONF be."""
    from train import distributed as dist_util

    for name in dist_util.ALLOC_ENV:
        monkeypatch.delenv(name, raising=False)
    try:
        assert dist_util.expandable_segments() == "expandable_segments:True"
        assert "expandable_segments:True" in torch._C._accelerator_getAllocatorSettings()
        torch._C._accelerator_setAllocatorSettings("expandable_segments:False")
        monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:512")
        assert dist_util.expandable_segments() == "max_split_size_mb:512"
        assert "expandable_segments:True" not in torch._C._accelerator_getAllocatorSettings()
    finally:
        torch._C._accelerator_setAllocatorSettings("expandable_segments:False")
