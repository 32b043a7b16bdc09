"""``python -m train.export``: a run back in the released checkpoint's format."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import save_file

from tests.official_snapshot import small_model_config, small_snapshot
from synth.cli import run as run_cli
from train.checkpoint import write_checksums
from train.export import export_run, main
from train.official.export import keep_snapshot_files
from train.official.load import find_tensors, load_official
from train.official.names import CLIP_PATCH_EMBEDDING
from train.official.st_io import read_tensor


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return small_snapshot(tmp_path_factory.mktemp("exp") / "DeepSeek-OCR")


def fake_run(run, loaded, extra_tensors=None, keep=True, stage=2, tokenizer=None):
    """A run directory as ``python -m train --init-official`` leaves it, its one checkpoint
    holding ``loaded``'s weights in float32 (the trainer's dtype)."""
    ck = run / "checkpoints" / "step-00000001"
    ck.mkdir(parents=True)
    state = {k: v.float().contiguous() for k, v in loaded.model.state_dict().items()}
    save_file({**state, **(extra_tensors or {})}, str(ck / "model.safetensors"))
    (ck / "state.json").write_text("{}")
    save_file({}, str(ck / "optimizer.safetensors"))
    write_checksums(ck)  # complete, as the trainer leaves it
    (run / "checkpoints" / "latest").write_text("step-00000001\n")
    (run / "run.json").write_text(json.dumps({"args": {"stage": stage, "mode": ["tiny"]}, "vocab_size": 1000,
                                              "model_config": dataclasses.asdict(loaded.config)}))
    (tokenizer or loaded.tokenizer).save(run / "tokenizer.json")
    if keep:
        keep_snapshot_files(loaded.snapshot.path, loaded.snapshot.dtype, loaded.extras, run)
    return run


def test_a_run_exports_to_the_snapshot_it_started_from_bit_for_bit(small, tmp_path):
    """Through the CLI's own path: float32 checkpoint -> bf16 official tensors, every one
    equal to the bf16 snapshot's (the patch embedding kept by the run included)."""
    run = fake_run(tmp_path / "run", load_official(small))
    out = export_run(run, tmp_path / "export")
    src, dst = find_tensors(small), find_tensors(out)
    assert sorted(src) == sorted(dst)
    for k in src:
        a, b = read_tensor(src[k]), read_tensor(dst[k])
        assert b.dtype == torch.bfloat16 and torch.equal(a, b), k
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 1000
    assert load_official(out).tokenizer.encode("<image>\nFree OCR.")[0] == 815


def test_a_model_without_a_patch_embedding_exports_zeros(small, tmp_path):
    from train.official.export import export_official

    loaded = load_official(small)
    out = export_official(loaded.model, loaded.config, loaded.tokenizer, tmp_path / "x")  # no extras
    t = read_tensor(find_tensors(out)[CLIP_PATCH_EMBEDDING])
    assert t.shape == (32, 3, 14, 14) and not t.any()
    assert json.loads((out / "tokenizer_config.json").read_text())["bos_token"] == "<｜begin▁of▁sentence｜>"


def test_runs_that_cannot_be_exported_are_refused_with_one_line(small, tmp_path, capsys):
    from train.tokenizer import train_tokenizer

    loaded = load_official(small)
    own = train_tokenizer(["a few words of text"] * 10, vocab_size=300)
    cases = {  # run, what the one line names, exit status (2: the run cannot be exported, 1: damaged data)
        "own": (fake_run(tmp_path / "own", loaded, tokenizer=own, keep=False), "project's own tokenizer", 2),
        "s1": (fake_run(tmp_path / "s1", loaded, stage=1, keep=False), "stage-1 run", 2),
        # A checkpoint holding a tensor the run's model does not have: another model's weights.
        "odd": (fake_run(tmp_path / "odd", loaded, {"decoder.blocks.0.attn.q.extra": torch.zeros(2, 64)}),
                "unexpected keys ['decoder.blocks.0.attn.q.extra']", 1),
    }
    for run, why, status in cases.values():
        assert run_cli(main, ["--run", str(run), "--out", str(tmp_path / "never")], prog="x") == status
        err = capsys.readouterr().err
        assert err.startswith("x: error: ") and why in err and err.count("\n") == 1, err
    assert not (tmp_path / "never" / "model.safetensors").exists()