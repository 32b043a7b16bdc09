"""Trainer tests on CPU with the tiny config, on shards the project's own runner generates (vision + text)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from annotate.prompts import CAPTION, TASK_TEXT, TASK_VISION_CAPTION, TASK_VISION_GROUND, TASK_VISION_OCR
from synth.recipe import parse_recipe
from synth.runner import generate_dataset
from train import checkpoint as ckpt_io
from train.data import BucketBatchSampler, Collator, DataConfig, OCRDataset, ShardSet, iter_texts
from train.loop import TrainArgs, Trainer
from train.tokenizer import IGNORE_INDEX, SPECIAL_TOKENS, OCRTokenizer, train_tokenizer

# Small scenes and one-sentence passages: real rows of the project's own families whose
# sequences stay short enough for the tiny model on CPU.
VISION = {"min_size": 96, "max_size": 160, "max_objects": 3, "max_queries": 2}
TEXT = {"zh_prob": 0.4, "markdown_prob": 0.0, "max_paragraphs": 1, "min_sentences": 1, "max_sentences": 1,
        "max_chars": 120}


def generate_shards(out: Path, shards: int = 2, rows_per_shard: int = 15, seed: int = 3,
                    vision: dict | None = None, text_weight: float = 0.2) -> Path:
    """Run synth.runner on a vision (+ text-only) recipe; the shards land in ``out``."""
    mixture = {"vision": {"weight": 1.0 - text_weight, "config": {**VISION, **(vision or {})}}}
    if text_weight:
        mixture["text"] = {"weight": text_weight, "config": TEXT}
    recipe = parse_recipe({"name": "train-test", "seed": seed, "shards": shards, "rows_per_shard": rows_per_shard,
                           "mixture": mixture})
    generate_dataset(recipe, str(out), workers=1, executor="local")
    return out


def all_rows(ss: ShardSet) -> list[dict]:
    """Every stored row of a shard set, in order."""
    return [row for s in range(len(ss.paths)) for row in ss.table(s).to_pylist()]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return generate_shards(tmp_path_factory.mktemp("shards") / "ds")


@pytest.fixture(scope="module")
def tok(shards) -> OCRTokenizer:
    return train_tokenizer(iter_texts(ShardSet([str(shards)])), vocab_size=400)


MULTI = ("tiny", "base", "gundam")  # a multi-resolution run's modes


def tiny_args(shards: Path, out: Path, tok_path: Path | None = None, **kw) -> TrainArgs:
    base = dict(config="tiny", stage=1, data=[str(shards)], out=str(out), mode="base", vocab_size=400,
                batch_size=4, steps=6, warmup=2, lr=1e-3, workers=0, log_every=1, save_every=100,
                device="cpu", tokenizer=str(tok_path) if tok_path else "")
    base.update(kw)
    return TrainArgs(**base)


# -- tokenizer -----------------------------------------------------------------------
def test_tokenizer_round_trips_targets_and_keeps_specials_atomic(shards, tok):
    targets = [rec["target"] for row in all_rows(ShardSet([str(shards)])) for rec in row["records"]]
    assert any("<|det|>" in t for t in targets)  # vision grounding
    assert any(re.search("[\u4e00-\u9fff]", t) for t in targets)  # Chinese text-only passages
    assert any(t.count(" ") > 10 for t in targets)  # captions / English prose
    for t in targets:
        assert tok.decode(tok.encode(t)) == t
    for s in SPECIAL_TOKENS:
        assert tok.encode(s) == [tok.tok.token_to_id(s)]
    ids = tok.encode("x<|ref|>title<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>")
    assert ids.count(tok.tok.token_to_id("<|det|>")) == 1
    # Saved and loaded, the ids are the same.
    enc = tok.encode_example(CAPTION, "A small red circle", 5)
    assert enc.input_ids[:6] == [tok.bos_id] + [tok.image_id] * 5
    assert enc.input_ids[-1] == tok.eos_id
    n_head = len(enc.input_ids) - enc.n_target_tokens - 1
    assert enc.labels[:n_head] == [IGNORE_INDEX] * n_head
    assert enc.labels[n_head:] == enc.input_ids[n_head:]
    assert tok.decode(enc.input_ids[n_head:]) == "A small red circle"


# -- loader --------------------------------------------------------------------------
def test_dataset_flattens_records_and_text_only_rows_have_no_vision(shards, tok):
    from train.configs import get_config

    ds = OCRDataset(ShardSet([str(shards)]), tok, get_config("tiny").encoder, DataConfig(modes=("base",)))
    rows = all_rows(ShardSet([str(shards)]))
    assert len(rows) == 30 and {r["family"] for r in rows} == {"vision", "text"}
    assert len(ds) == sum(len(r["records"]) for r in rows)
    tasks = {rec["task"] for r in rows for rec in r["records"]}
    # Scenes whose words are all in view add an OCR record (annotate.vision.ocr_target).
    assert {TASK_TEXT, TASK_VISION_CAPTION, TASK_VISION_GROUND} <= tasks <= {TASK_TEXT, TASK_VISION_CAPTION,
                                                                            TASK_VISION_GROUND, TASK_VISION_OCR}
    kinds = {ds[i]["vision"] is None for i in range(len(ds))}
    assert kinds == {True, False}
    item = next(ds[i] for i in range(len(ds)) if ds[i]["vision"] is not None)
    assert int((item["input_ids"] == tok.image_id).sum()) == item["n_image_tokens"] > 0
    assert (item["labels"][item["input_ids"] == tok.image_id] == IGNORE_INDEX).all()
    assert all(ds.lengths[i] == len(ds[i]["input_ids"]) for i in range(len(ds)))
    batch = Collator(tok.pad_id)([ds[0], ds[1], ds[4]])
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert batch["n_tokens"] == int(batch["attention_mask"].sum())


def test_sampler_gives_ranks_disjoint_rows_deterministically(shards, tok):
    from train.configs import get_config

    ds = OCRDataset(ShardSet([str(shards)]), tok, get_config("tiny").encoder, DataConfig(modes=("base",)))
    per_rank = []
    for rank in range(2):
        s = BucketBatchSampler(ds.lengths, ds.groups, 3, seed=7, rank=rank, world=2, pool_batches=2)
        s.set_epoch(1)
        batches = list(s)
        assert batches == list(s)  # deterministic
        assert len(batches) == len(s)
        per_rank.append(batches)
    assert len(per_rank[0]) == len(per_rank[1])
    groups = [{int(ds.groups[i]) for b in bs for i in b} for bs in per_rank]
    assert groups[0] and not groups[0] & groups[1]
    s = BucketBatchSampler(ds.lengths, ds.groups, 3, seed=7, rank=0, world=2, pool_batches=2)
    s.set_epoch(2)
    assert list(s) != per_rank[0]  # a new epoch reshuffles
    s.set_epoch(1, start=2)
    assert list(s) == per_rank[0][2:]  # resumption skips consumed batches


def test_token_budget_caps_each_batch_and_keeps_ranks_in_step(shards, tok):
    from train.configs import get_config

    ds = OCRDataset(ShardSet([str(shards)]), tok, get_config("tiny").encoder, DataConfig(modes=("base",)))
    budget = int(np.percentile(ds.lengths, 60) * 3)
    per_rank = []
    for rank in range(2):
        s = BucketBatchSampler(ds.lengths, ds.groups, 8, seed=7, rank=rank, world=2, pool_batches=2, max_tokens=budget)
        s.set_epoch(1)
        batches = list(s)
        assert batches == list(s) and len(batches) == len(s)
        for b in batches:
            assert len(b) <= 8
            assert len(b) == 1 or len(b) * max(ds.lengths[b]) <= budget, (b, ds.lengths[b])
        flat = [i for b in batches for i in b]
        assert len(flat) == len(set(flat))
        per_rank.append(batches)
        s.set_epoch(1, start=1)
        assert list(s) == batches[1:]
    assert len(per_rank[0]) == len(per_rank[1])  # DDP lockstep
    groups = [{int(ds.groups[i]) for b in bs for i in b} for bs in per_rank]
    assert not groups[0] & groups[1]
    sizes = {len(b) for bs in per_rank for b in bs}
    assert len(sizes) > 1, sizes  # short examples batch more of themselves than long ones
    # One rank: every example is in a batch (no share to even out).
    s = BucketBatchSampler(ds.lengths, ds.groups, 8, seed=7, max_tokens=budget)
    assert sorted(i for b in s for i in b) == list(range(len(ds)))
    with pytest.raises(ValueError, match="max_tokens=-1"):
        BucketBatchSampler(ds.lengths, ds.groups, 8, max_tokens=-1)


def test_epoch_stream_runs_epochs_back_to_back_with_their_positions(shards, tok):
    """One loader over all epochs (workers kept) yields what a loader per epoch yielded."""
    import itertools

    from train.configs import get_config
    from train.data import EpochStream, make_loader

    ds = OCRDataset(ShardSet([str(shards)]), tok, get_config("tiny").encoder, DataConfig(modes=("base",)))
    s = BucketBatchSampler(ds.lengths, ds.groups, 4, seed=7, pool_batches=2)
    per_epoch = []
    for e in (3, 4, 5):
        s.set_epoch(e)
        per_epoch.append(list(s))
    n = len(per_epoch[0])
    assert n >= 2
    stream = EpochStream(s, 3, start=1)
    got = list(itertools.islice(stream, 2 * n))
    assert got == per_epoch[0][1:] + per_epoch[1] + per_epoch[2][:1]
    assert list(stream.positions) == [(3, k) for k in range(1, n)] + [(4, k) for k in range(n)] + [(5, 0)]
    # Resuming at the end of an epoch goes on with the next one.
    assert next(iter(EpochStream(s, 3, start=n))) == per_epoch[1][0]
    # Through a DataLoader with workers, batches keep the stream's order.
    stream = EpochStream(s, 3)
    loader = iter(make_loader(ds, stream, workers=2))
    collate = Collator(tok.pad_id)
    for k, want in enumerate(per_epoch[0] + per_epoch[1][:1]):
        batch = next(loader)
        assert stream.positions.popleft() == ((3, k) if k < n else (4, 0))
        assert torch.equal(batch["input_ids"], collate([ds[i] for i in want])["input_ids"])
    big = BucketBatchSampler(ds.lengths, ds.groups, len(ds) + 1, seed=7)
    with pytest.raises(ValueError, match="no batch of"):
        next(iter(EpochStream(big, 0)))


def test_several_modes_draw_each_example_a_mode_per_epoch(shards, tok):
    from train.configs import get_config

    ds = OCRDataset(ShardSet([str(shards)]), tok, get_config("tiny").encoder, DataConfig(modes=MULTI))
    assert ds.lengths.shape == (len(ds), len(MULTI))
    imaged = [i for i in range(len(ds)) if ds[i]["vision"] is not None]
    for i in imaged[:3] + [next(i for i in range(len(ds)) if i not in imaged)]:
        for k, mode in enumerate(MULTI):
            item = ds[(i, k)]
            assert len(item["input_ids"]) == ds.lengths[i, k]
            if item["vision"] is not None:
                assert item["vision"].mode == mode
    lens = ds.lengths[imaged]
    # tiny < base <= gundam: a page within one tile (128 px here) gets Gundam's global view only
    assert (lens[:, 0] < lens[:, 1]).all() and (lens[:, 1] <= lens[:, 2]).all() and (lens[:, 1] < lens[:, 2]).any()

    def epoch(rank, world, e=1):
        s = BucketBatchSampler(ds.lengths, ds.groups, 3, seed=7, rank=rank, world=world, pool_batches=2)
        s.set_epoch(e)
        return list(s)

    two = epoch(0, 2) + epoch(1, 2)
    assert two[: len(epoch(0, 2))] == epoch(0, 2)  # deterministic
    pairs = [p for b in two for p in b]
    assert all(isinstance(p, tuple) and 0 <= p[1] < len(MULTI) for p in pairs)
    # An example's mode is the same whatever the number of ranks; a new epoch redraws it.
    one = dict(p for b in epoch(0, 1) for p in b)
    assert all(one[i] == k for i, k in pairs if i in one)
    other = dict(p for b in epoch(0, 1, e=2) for p in b)
    assert any(one[i] != other[i] for i in one.keys() & other.keys())
    counts = np.bincount([k for _, k in one.items()], minlength=len(MULTI))
    assert counts.min() > 0.15 * counts.sum(), counts  # uniform over the listed modes
    batch = Collator(tok.pad_id)([ds[p] for p in epoch(0, 1)[0]])
    assert batch["input_ids"].shape[0] == 3


def test_training_on_several_modes_counts_each_images_flops(shards, tok, tmp_path):
    from train.__main__ import main

    tok.save(tmp_path / "tok.json")
    out = tmp_path / "multi"
    main(["--config", "tiny", "--stage", "2", "--data", str(shards), "--out", str(out), "--mode", *MULTI,
          "--steps", "4", "--batch-size", "4", "--workers", "0", "--log-every", "1", "--tokenizer",
          str(tmp_path / "tok.json"), "--device", "cpu"])
    info = json.loads((out / "run.json").read_text())
    assert info["args"]["mode"] == list(MULTI)
    assert len((out / "log.jsonl").read_text().splitlines()) == 4
    # Evaluation defaults to the modes the run trained: one report each, one curve each.
    from train.configs import get_config
    from train.evaluate import main as evaluate_main
    from train.evaluate import vision_tokens

    evaluate_main(["--run", str(out), "--data", str(shards), "--out", str(tmp_path / "eval.json"), "--limit", "6",
                   "--max-new-tokens", "3", "--device", "cpu"])
    doc = json.loads((tmp_path / "eval.json").read_text())
    assert list(doc["modes"]) == list(MULTI) and (tmp_path / "eval.png").stat().st_size > 0
    enc = get_config("tiny").encoder
    for mode in ("tiny", "base"):
        rep = doc["modes"][mode]
        assert rep["mode"] == mode and rep["n_examples"] == 6
        assert {e["vision_tokens"] for e in rep["examples"]} - {0} == {vision_tokens(mode, enc)}
    evaluate_main(["--run", str(out), "--data", str(shards), "--out", str(tmp_path / "one.json"), "--limit", "2",
                   "--max-new-tokens", "2", "--device", "cpu", "--mode", "small"])
    assert json.loads((tmp_path / "one.json").read_text())["mode"] == "small"
    # --text-tokens keeps references of that many tokens (the Fox table's 600-1300, scaled down).
    evaluate_main(["--run", str(out), "--data", str(shards), "--out", str(tmp_path / "fox.json"), "--limit", "4",
                   "--max-new-tokens", "2", "--device", "cpu", "--mode", "tiny", "--text-tokens", "8", "30"])
    fox = json.loads((tmp_path / "fox.json").read_text())
    lens = [len(tok.encode(e["target"])) for e in fox["examples"]]
    assert fox["n_examples"] == len(lens) == 4 and all(8 <= n <= 30 for n in lens)
    assert [e["text_tokens"] for e in fox["examples"]] == lens and fox["text_tokens_filter"] == [8, 30]
    tr = Trainer(tiny_args(shards, tmp_path / "flops", tmp_path / "tok.json", stage=2, mode=list(MULTI)))
    tr.sampler.set_epoch(0)
    batches = [Collator(tok.pad_id)([tr.dataset[p] for p in b]) for b in tr.sampler.epoch_batches()]
    seen = {v.mode for b in batches for v in b["vision"] if v is not None}
    assert seen == set(MULTI)
    m = tr.model
    for b in batches:
        want = sum(m.flops_per_token(int(L)) * L for L in b["attention_mask"].sum(1).tolist())
        want += sum(m.encoder_flops(v.mode, v.grid) for v in b["vision"] if v is not None)
        assert tr.step_flops([b]) == pytest.approx(want)
        tr.train_step([b])  # a batch of mixed modes trains
    with pytest.raises(ValueError, match="--mode huge"):
        tiny_args(shards, tmp_path / "bad", mode=["base", "huge"]).validate()


# -- loop ---------------------------------------------------------------------------------
def test_loss_halves_on_a_fixed_batch(shards, tok, tmp_path):
    tok_path = tmp_path / "tok.json"
    tok.save(tok_path)
    tr = Trainer(tiny_args(shards, tmp_path / "run", tok_path, stage=2, lr=3e-3, warmup=0, steps=1000))
    batch = Collator(tok.pad_id)([tr.dataset[i] for i in range(2)])
    losses = [tr.train_step([batch])["loss"]]
    while len(losses) < 60 and losses[-1] >= 0.5 * losses[0]:
        losses.append(tr.train_step([batch])["loss"])
    assert losses[-1] < 0.5 * losses[0], losses[::10]


def test_compiled_model_trains_exactly_like_eager(shards, tok, tmp_path):
    """torch.compile traces the whole step (MoE dispatch, vision splice, masks) correctly:
    the aot_eager backend runs the traced graphs with eager kernels, so losses must agree."""
    tok_path = tmp_path / "tok.json"
    tok.save(tok_path)
    eager = Trainer(tiny_args(shards, tmp_path / "eager", tok_path, stage=2))
    compiled = Trainer(tiny_args(shards, tmp_path / "compiled", tok_path, stage=2))
    compiled.fwd = torch.compile(compiled.model, backend="aot_eager")
    collate = Collator(tok.pad_id)
    for k in range(3):  # three batches of different lengths: recompilation with dynamic shapes
        batch = collate([eager.dataset[i] for i in range(4 * k, 4 * k + 4)])
        a, b = eager.train_step([batch]), compiled.train_step([batch])
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-6), k
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4), k


@pytest.mark.parametrize("modes, extra", [(["base"], []), (list(MULTI), []), (["base"], ["--max-batch-tokens", "200"])])
def test_resume_gives_the_same_next_loss(shards, tok, tmp_path, modes, extra):
    from train.__main__ import main

    tok.save(tmp_path / "tok.json")
    common = ["--config", "tiny", "--stage", "1", "--data", str(shards), "--mode", *modes, "--steps", "6",
              "--batch-size", "4", "--workers", "0", "--log-every", "1", "--save-every", "100", "--warmup", "2",
              "--lr", "1e-3", "--tokenizer", str(tmp_path / "tok.json"), "--device", "cpu", *extra]
    main(common + ["--out", str(tmp_path / "a")])
    main(common + ["--out", str(tmp_path / "b"), "--stop-after", "3"])
    assert ckpt_io.latest(tmp_path / "b").name == "step-00000003"
    main(common + ["--out", str(tmp_path / "b")])
    la = [json.loads(x)["loss"] for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["loss"] for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert len(la) == len(lb) == 6
    np.testing.assert_allclose(lb, la, rtol=1e-5)
    rec = json.loads((tmp_path / "a" / "log.jsonl").read_text().splitlines()[-1])
    for key in ("tokens_per_s", "images_per_s", "model_flops_per_s", "lr", "grad_norm"):
        assert rec[key] >= 0
    assert "mfu" not in rec  # no known peak on CPU
    if extra:  # the budget reached the sampler: its batches are smaller than --batch-size
        tr = Trainer(tiny_args(shards, tmp_path / "c", tmp_path / "tok.json", max_batch_tokens=200))
        tr.sampler.set_epoch(0)
        assert min(map(len, tr.sampler.epoch_batches())) < 4
        with pytest.raises(ValueError, match="--max-batch-tokens -5"):
            tiny_args(shards, tmp_path / "d", max_batch_tokens=-5).validate()


def test_heldout_loss_is_logged_and_is_the_token_mean_over_the_subset(shards, tok, tmp_path):
    from train.__main__ import main
    from train.heldout import HeldOut, heldout_loss

    tok.save(tmp_path / "tok.json")
    out = tmp_path / "run"
    main(["--config", "tiny", "--stage", "2", "--data", str(shards), "--out", str(out), "--steps", "6",
          "--batch-size", "4", "--workers", "0", "--warmup", "0", "--lr", "3e-3", "--tokenizer", str(tmp_path / "tok.json"),
          "--device", "cpu", "--eval-data", str(shards), "--eval-every", "3", "--eval-examples", "12"])
    recs = [json.loads(x) for x in (out / "eval.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [0, 3, 6]  # the untrained baseline, then every 3 steps
    assert all(r["eval_examples"] == 12 and r["eval_tokens"] > 0 for r in recs)
    assert recs[-1]["eval_loss"] < recs[0]["eval_loss"]  # trained on these very rows
    # The figure is the token-weighted mean of each example's own loss, padding and batching aside.
    tr = Trainer(tiny_args(shards, tmp_path / "check", tmp_path / "tok.json", stage=2, mode=list(MULTI),
                           eval_data=[str(shards)], eval_examples=10))
    held = tr.heldout
    got = heldout_loss(tr.model, held, tr.dev)
    assert got == {**heldout_loss(tr.model, held, tr.dev), "eval_s": got["eval_s"]}  # deterministic
    assert set(got["eval_loss_by_mode"]) == set(MULTI)
    keys = sorted({k[0] for bs in held.batches for b in bs for k in b})
    assert len(keys) == 10
    collate, tot, n_tok = Collator(tok.pad_id), {}, {}
    tr.model.eval()
    with torch.no_grad():
        for m, mode in enumerate(MULTI):
            for i in keys:
                b = collate([tr.dataset[(i, m)]])
                o = tr.model(b["input_ids"], b["attention_mask"], b["vision"], labels=b["labels"])
                n = int((b["labels"][:, 1:] != IGNORE_INDEX).sum())
                tot[mode] = tot.get(mode, 0.0) + float(o.loss - o.aux_loss) * n
                n_tok[mode] = n_tok.get(mode, 0) + n
    for mode in MULTI:
        assert got["eval_loss_by_mode"][mode] == pytest.approx(tot[mode] / n_tok[mode], rel=1e-5)
    assert got["eval_loss"] == pytest.approx(sum(tot.values()) / sum(n_tok.values()), rel=1e-5)
    assert got["eval_tokens"] == sum(n_tok.values())
    with pytest.raises(ValueError, match="no examples"):
        HeldOut(OCRDataset(ShardSet([str(shards)]), tok, tr.mcfg.encoder, DataConfig(tasks=["nope"])), 4)
    # A mode listed twice (drawn twice as often in training) is evaluated once.
    twice = OCRDataset(ShardSet([str(shards)]), tok, tr.mcfg.encoder, DataConfig(modes=("tiny", "tiny", "base")))
    held2 = heldout_loss(tr.model, HeldOut(twice, 4, 10, tr.args.seed), tr.dev)
    once = OCRDataset(ShardSet([str(shards)]), tok, tr.mcfg.encoder, DataConfig(modes=("tiny", "base")))
    held1 = heldout_loss(tr.model, HeldOut(once, 4, 10, tr.args.seed), tr.dev)
    assert held2["eval_loss_by_mode"] == held1["eval_loss_by_mode"] and held2["eval_tokens"] == held1["eval_tokens"]


def test_train_cli_takes_a_yaml_model_config_and_the_run_rebuilds_without_it(shards, tok, tmp_path):
    from train.__main__ import main
    from train.generate import load_run

    tok.save(tmp_path / "tok.json")
    cfg = tmp_path / "one_layer.yaml"
    cfg.write_text("base: tiny\ndecoder:\n  layers: 1\n  first_dense_layers: 0\n  n_routed: 4\n")
    main(["--config", str(cfg), "--stage", "2", "--data", str(shards), "--out", str(tmp_path / "run"), "--steps", "2",
          "--batch-size", "4", "--workers", "0", "--tokenizer", str(tmp_path / "tok.json"), "--device", "cpu"])
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["model_config"]["name"] == "one_layer" and info["model_config"]["decoder"]["layers"] == 1
    cfg.unlink()  # generation and evaluation rebuild the model from run.json alone
    run = load_run(tmp_path / "run", device="cpu")
    assert len(run.model.decoder.blocks) == 1 and run.model.decoder.blocks[0].mlp.n_routed == 4


def test_stage2_cli_keeps_sam_frozen_and_trains_clip(shards, tok, tmp_path):
    from safetensors.torch import load_file

    from train.__main__ import main

    tok.save(tmp_path / "tok.json")
    common = ["--config", "tiny", "--data", str(shards), "--batch-size", "4", "--workers", "0",
              "--tokenizer", str(tmp_path / "tok.json"), "--device", "cpu", "--warmup", "1", "--lr", "1e-3"]
    main(common + ["--stage", "1", "--steps", "2", "--out", str(tmp_path / "s1")])
    enc1 = load_file(str(ckpt_io.latest(tmp_path / "s1") / "encoder.safetensors"))
    main(common + ["--stage", "2", "--steps", "3", "--out", str(tmp_path / "s2"), "--init-from", str(tmp_path / "s1")])
    sd2 = ckpt_io.load_state_dict(ckpt_io.latest(tmp_path / "s2"))
    sam = [k for k in enc1 if k.startswith(("sam.", "compressor."))]
    clip = [k for k in enc1 if k.startswith("clip.") and enc1[k].ndim >= 2]
    assert sam and clip
    for k in sam:
        assert torch.equal(sd2["encoder." + k], enc1[k]), k
    assert any(not torch.equal(sd2["encoder." + k], enc1[k]) for k in clip)
    # Continued training from the stage-2 run (the paper's way to Gundam-M): the whole model
    # carries over. With lr 0 the new run's checkpoint is the old one's weights exactly.
    main(common + ["--stage", "2", "--steps", "1", "--lr", "0", "--warmup", "0", "--mode", "gundam_m",
                   "--out", str(tmp_path / "s2m"), "--init-from", str(tmp_path / "s2")])
    sd3 = ckpt_io.load_state_dict(ckpt_io.latest(tmp_path / "s2m"))
    assert sd3.keys() == sd2.keys() and all(torch.equal(sd3[k], sd2[k]) for k in sd2)
    (tmp_path / "wide.yaml").write_text("base: tiny\ndecoder:\n  width: 96\n  dense_inter: 192\n")
    with pytest.raises(ValueError, match="another model shape"):
        main(common + ["--stage", "2", "--steps", "1", "--config", str(tmp_path / "wide.yaml"),
                       "--out", str(tmp_path / "s2w"), "--init-from", str(tmp_path / "s2")])


@pytest.mark.slow
def test_one_run_reproduces_an_overfitted_sample_in_each_mode_it_trained(tmp_path):
    """Multi-resolution training end to end: one sample in two modes of very different
    token layouts (Tiny: 3 placeholders; Gundam-M: a 2x3 tiling plus a view), trained
    together, saved, reloaded, and generated back in each mode."""
    from train.generate import generate, load_run

    data = generate_shards(tmp_path / "one", shards=1, rows_per_shard=1, seed=5,
                           vision={"max_queries": 1, "negative_prob": 0.0, "relation_prob": 0.0},
                           text_weight=0.0)
    row = ShardSet([str(data)]).row(0, 0)
    (rec,) = [r for r in row["records"] if r["task"] == TASK_VISION_GROUND]
    modes = ["tiny", "gundam_m"]
    args = tiny_args(data, tmp_path / "run", None, stage=2, batch_size=1, lr=3e-3, warmup=0, steps=300,
                     save_every=1000, log_every=1000, tasks=[TASK_VISION_GROUND], vocab_size=300, mode=modes)
    tr = Trainer(args)
    batches = [Collator(tr.tok.pad_id)([tr.dataset[(0, m)]]) for m in range(len(modes))]
    assert [b["vision"][0].mode for b in batches] == modes
    for _ in range(args.steps // 2):
        if max(tr.train_step([b])["loss"] for b in batches) < 0.01:
            break
    tr.save()
    run = load_run(tmp_path / "run", device="cpu")
    assert run.trained_modes == modes
    img = Image.open(io.BytesIO(row["image"]["bytes"])).convert("RGB")
    n_new = len(run.tok.encode(rec["target"])) + 5
    for mode in modes:
        assert generate(run, [img], rec["prompt"], mode, max_new_tokens=n_new) == [rec["target"]], mode


@pytest.mark.slow
def test_generation_reproduces_an_overfitted_sample(tmp_path):
    from formats.bins import bins_to_box
    from train.evaluate import evaluate
    from train.generate import draw_boxes, generate, load_run
    from train.metrics import parse_grounded

    # One generated scene with exactly one grounding query: its target is a real box.
    data = generate_shards(tmp_path / "one", shards=1, rows_per_shard=1, seed=5,
                           vision={"max_queries": 1, "negative_prob": 0.0, "relation_prob": 0.0},
                           text_weight=0.0)
    ss = ShardSet([str(data)])
    row = ss.row(0, 0)
    (rec,) = [r for r in row["records"] if r["task"] == TASK_VISION_GROUND]
    args = tiny_args(data, tmp_path / "run", None, stage=2, batch_size=1, lr=3e-3, warmup=0, steps=150,
                     save_every=1000, log_every=1000, tasks=[TASK_VISION_GROUND], vocab_size=300)
    tr = Trainer(args)
    assert len(tr.dataset) == 1
    batch = Collator(tr.tok.pad_id)([tr.dataset[0]])
    for _ in range(args.steps):
        loss = tr.train_step([batch])["loss"]
        if loss < 0.01:
            break
    tr.save()
    run = load_run(tmp_path / "run", device="cpu")
    img = Image.open(io.BytesIO(row["image"]["bytes"])).convert("RGB")
    n_new = len(run.tok.encode(rec["target"])) + 5
    out = generate(run, [img, img], rec["prompt"], "base", max_new_tokens=n_new)
    assert out == [rec["target"], rec["target"]]
    report = evaluate(run, ss, "base", tasks=[TASK_VISION_GROUND], max_new_tokens=n_new)
    assert report["n_examples"] == 1
    # A locate answer is a box: scored by grounding, not as text (train.evaluate).
    assert report["text"]["n"] == 0 and not report["by_compression"] and not report["by_text_tokens"]
    assert report["grounding"]["n"] == 1 and report["grounding"]["mean_iou"] == 1.0
    assert report["grounding"]["label_accuracy"] == 1.0 and report["grounding"]["box_f1"] == 1.0
    assert report["grounding_by_task"][TASK_VISION_GROUND]["box_f1"] == 1.0
    # The generated box drawn back: its bottom edge is painted, its inside is untouched.
    (item,) = parse_grounded(out[0])
    x1, y1, x2, y2 = bins_to_box(item.box, img.width, img.height)
    drawn = draw_boxes(img, out[0])
    assert drawn.size == img.size
    mx, my = round((x1 + x2) / 2), round((y1 + y2) / 2)
    edge = [drawn.getpixel((mx, y)) for y in range(max(0, int(y2) - 2), min(img.height, int(y2) + 2))]
    assert (220, 40, 40) in edge, edge
    assert drawn.getpixel((mx, my)) == img.getpixel((mx, my))


@pytest.mark.parametrize("stage", [2, 1])
def test_compiled_blocks_train_like_eager_and_do_not_recompile_for_new_batch_makeup(shards, tok, tmp_path, stage):
    """--compile's default scope compiles each block (OCRModel.compile_blocks): losses and
    gradients match eager, and batches with another number of images, rows and tokens
    compile nothing new (shapes are dynamic from the start), where a whole-model graph
    would compile again for each. Stage 1 trains SAM through its compiled blocks, stage 2
    freezes it. aot_eager traces as inductor does but runs eager kernels, so the numbers
    must agree."""
    from torch._dynamo.utils import counters

    tok_path = tmp_path / "tok.json"
    tok.save(tok_path)
    eager = Trainer(tiny_args(shards, tmp_path / "eager", tok_path, stage=stage))
    compiled = Trainer(tiny_args(shards, tmp_path / "compiled", tok_path, stage=stage))
    torch._dynamo.reset()
    counters.clear()
    assert compiled.model.compile_blocks(backend="aot_eager") == len(compiled.model.blocks()) > 0
    with_image = [i for i in range(len(eager.dataset)) if eager.dataset[i]["vision"] is not None]
    collate = Collator(tok.pad_id)
    graphs = []
    # A new number of images and a new padded length each time. (Not 2: on CPU the expert
    # loop's graph break passes tensors of top_k = 2 columns between graphs, and a batch of
    # 2 rows would tie the two sizes in the first compile and cost one recompilation.)
    for size in (3, 5, 4, 6, 7):
        batch = collate([eager.dataset[i] for i in with_image[size:2 * size]])
        assert batch["n_images"] == size
        a, b = eager.train_step([batch]), compiled.train_step([batch])
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-6), size
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4), size
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[0] > 0, "nothing was compiled"
    assert graphs == [graphs[0]] * len(graphs), f"unique graphs after each batch: {graphs}"
    sd_a, sd_b = eager.model.state_dict(), compiled.model.state_dict()
    assert list(sd_a) == list(sd_b)  # checkpoints keep their keys
    for k in sd_a:
        torch.testing.assert_close(sd_b[k], sd_a[k], rtol=1e-4, atol=1e-6, msg=k)
