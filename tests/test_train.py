"""Trainer tests on CPU with the tiny config: tokenizer, loader, loop, resume, stages, generation."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
import torch
from PIL import Image, ImageDraw

from annotate.coords import box_to_bins
from annotate.prompts import FREE_OCR, GROUNDED_MARKDOWN, TASK_FREE, TASK_GROUNDED, TASK_TEXT, det
from synth.rows import sample_to_row
from synth.sample import Record, Region, Sample
from train import checkpoint as ckpt_io
from train.data import BucketBatchSampler, Collator, DataConfig, OCRDataset, ShardSet, iter_texts
from train.loop import TrainArgs, Trainer
from train.tokenizer import IGNORE_INDEX, SPECIAL_TOKENS, OCRTokenizer, train_tokenizer

WORDS = "alpha beta gamma delta echo fox golf hotel india july kilo lima 中文 测试".split()


def make_rows(n: int, seed: int = 0, text_every: int = 5) -> list[dict]:
    """n rows: images with a few words (free OCR + grounded records); every text_every-th is text-only."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        if text_every and i % text_every == text_every - 1:
            s = Sample("text", None, "", 0, 0, text=" ".join(rng.choice(WORDS, 6)))
            rows.append(sample_to_row(f"fx/{i}", s, [Record(TASK_TEXT, "", s.text)]))
            continue
        w, h = 160, 120
        img = Image.new("RGB", (w, h), "white")
        d = ImageDraw.Draw(img)
        text = " ".join(str(x) for x in rng.choice(WORDS[:12], 3))
        x, y = int(rng.integers(5, 40)), int(rng.integers(5, 80))
        d.text((x, y), text, fill="black")
        box = box_to_bins(d.textbbox((x, y), text), w, h)
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=1)
        s = Sample("ocr1", buf.getvalue(), "png", w, h, regions=[Region("text", box, text)], text=text)
        rows.append(sample_to_row(f"fx/{i}", s, [Record(TASK_FREE, FREE_OCR, text),
                                                  Record(TASK_GROUNDED, GROUNDED_MARKDOWN, det("text", [box]) + "\n" + text)]))
    return rows


def write_shards(out: Path, n_rows: int, n_shards: int = 1, seed: int = 0) -> Path:
    """Write rows as Arrow IPC stream shards ``data-NNNNN-of-MMMMM.arrow`` in out."""
    out.mkdir(parents=True, exist_ok=True)
    rows = make_rows(n_rows, seed)
    per = -(-n_rows // n_shards)
    for k in range(n_shards):
        table = pa.Table.from_pylist(rows[k * per:(k + 1) * per])
        with ipc.new_stream(str(out / f"data-{k:05d}-of-{n_shards:05d}.arrow"), table.schema) as w:
            w.write_table(table, max_chunksize=100)
    return out


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return write_shards(tmp_path_factory.mktemp("shards"), 30, n_shards=2)


@pytest.fixture(scope="module")
def tok(shards) -> OCRTokenizer:
    return train_tokenizer(iter_texts(ShardSet([str(shards)])), vocab_size=400)


def tiny_args(shards: Path, out: Path, tok_path: Path | None = None, **kw) -> TrainArgs:
    base = dict(config="tiny", stage=1, data=[str(shards)], out=str(out), mode="base", vocab_size=400,
                batch_size=4, steps=6, warmup=2, lr=1e-3, workers=0, log_every=1, save_every=100,
                device="cpu", tokenizer=str(tok_path) if tok_path else "")
    base.update(kw)
    return TrainArgs(**base)


# -- tokenizer -----------------------------------------------------------------------
def test_tokenizer_round_trips_targets_and_keeps_specials_atomic(shards, tok):
    ss = ShardSet([str(shards)])
    targets = [rec["target"] for s in range(2) for rl in ss.table(s).column("records").to_pylist() for rec in rl]
    assert any("<|det|>" in t for t in targets) and any("中文" in t for t in targets)
    for t in targets:
        assert tok.decode(tok.encode(t)) == t
    for s in SPECIAL_TOKENS:
        assert tok.encode(s) == [tok.tok.token_to_id(s)]
    ids = tok.encode("x<|ref|>title<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>")
    assert ids.count(tok.tok.token_to_id("<|det|>")) == 1
    # Saved and loaded, the ids are the same.
    enc = tok.encode_example(FREE_OCR, "alpha beta", 5)
    assert enc.input_ids[:6] == [tok.bos_id] + [tok.image_id] * 5
    assert enc.input_ids[-1] == tok.eos_id
    n_head = len(enc.input_ids) - enc.n_target_tokens - 1
    assert enc.labels[:n_head] == [IGNORE_INDEX] * n_head
    assert enc.labels[n_head:] == enc.input_ids[n_head:]
    assert tok.decode(enc.input_ids[n_head:]) == "alpha beta"


# -- loader --------------------------------------------------------------------------
def test_dataset_flattens_records_and_text_only_rows_have_no_vision(shards, tok):
    from train.configs import get_config

    ds = OCRDataset(ShardSet([str(shards)]), tok, get_config("tiny").encoder, DataConfig(mode="base"))
    n_text = sum(1 for i in range(30) if i % 5 == 4)
    assert len(ds) == (30 - n_text) * 2 + n_text
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

    ds = OCRDataset(ShardSet([str(shards)]), tok, get_config("tiny").encoder, DataConfig(mode="base"))
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


def test_resume_gives_the_same_next_loss(shards, tok, tmp_path):
    from train.__main__ import main

    tok.save(tmp_path / "tok.json")
    common = ["--config", "tiny", "--stage", "1", "--data", str(shards), "--mode", "base", "--steps", "6",
              "--batch-size", "4", "--workers", "0", "--log-every", "1", "--save-every", "100", "--warmup", "2",
              "--lr", "1e-3", "--tokenizer", str(tmp_path / "tok.json"), "--device", "cpu"]
    main(common + ["--out", str(tmp_path / "a")])
    main(common + ["--out", str(tmp_path / "b"), "--stop-after", "3"])
    assert ckpt_io.latest(tmp_path / "b").name == "step-00000003"
    main(common + ["--out", str(tmp_path / "b")])
    la = [json.loads(x)["loss"] for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["loss"] for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert len(la) == len(lb) == 6
    np.testing.assert_allclose(lb, la, rtol=1e-5)
    rec = json.loads((tmp_path / "a" / "log.jsonl").read_text().splitlines()[-1])
    for key in ("tokens_per_s", "images_per_s", "mfu", "lr", "grad_norm"):
        assert rec[key] >= 0


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


@pytest.mark.slow
def test_generation_reproduces_an_overfitted_sample(tmp_path):
    from train.evaluate import evaluate
    from train.generate import draw_boxes, generate, load_run

    data = write_shards(tmp_path / "one", 1)
    args = tiny_args(data, tmp_path / "run", None, stage=2, batch_size=1, lr=3e-3, warmup=0, steps=150,
                     save_every=1000, log_every=1000, tasks=[TASK_FREE], vocab_size=300)
    tr = Trainer(args)
    batch = Collator(tr.tok.pad_id)([tr.dataset[0]])
    for _ in range(args.steps):
        loss = tr.train_step([batch])["loss"]
        if loss < 0.01:
            break
    tr.save()
    run = load_run(tmp_path / "run", device="cpu")
    ss = ShardSet([str(data)])
    row = ss.row(0, 0)
    img = Image.open(io.BytesIO(row["image"]["bytes"])).convert("RGB")
    out = generate(run, [img, img], FREE_OCR, "base", max_new_tokens=30)
    assert out == [row["text"], row["text"]]
    report = evaluate(run, ss, "base", tasks=[TASK_FREE], max_new_tokens=30)
    assert report["text"]["precision"] == 1.0 and report["text"]["edit_distance"] == 0.0
    assert report["by_compression"] and report["by_text_tokens"]
    drawn = draw_boxes(img, det("text", [row["regions"][0]["box"]]))
    assert drawn.size == img.size and drawn.tobytes() != img.tobytes()
