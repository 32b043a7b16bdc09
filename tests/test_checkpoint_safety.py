"""Checkpoints that fail safe (issue 16 item 9): resume takes the newest complete and valid
checkpoint whatever ``latest`` says, a damaged file is named in one line and skipped,
and pruning never removes the last valid checkpoint.

One real tiny run (3 steps, a checkpoint after each) is trained once; each test damages a
copy of it the way a user's disk or hands would and starts the Trainer on it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from train import checkpoint as ckpt_io
from train.loop import TrainArgs, Trainer, resolve_checkpoint


def _args(data: Path, out: Path, **kw) -> TrainArgs:
    base = dict(config="tiny", stage=1, data=[str(data)], out=str(out), mode=["tiny"], vocab_size=300,
                batch_size=2, steps=3, warmup=1, lr=1e-3, workers=0, log_every=1, save_every=1, keep=3,
                device="cpu")
    base.update(kw)
    return TrainArgs(**base)


@pytest.fixture(scope="module")
def trained(demo_dataset, tmp_path_factory) -> Path:
    """A run directory with checkpoints after steps 1, 2 and 3."""
    from train.loop import train

    out = tmp_path_factory.mktemp("ckpt") / "run"
    train(_args(demo_dataset, out))
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["latest", "step-00000001", "step-00000002", "step-00000003"], names
    return out


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A fresh copy of the trained run to damage."""
    dst = tmp_path / "run"
    shutil.copytree(trained, dst)
    return dst


def _resume(demo_dataset: Path, run: Path, capsys, **kw) -> tuple[Trainer, list[str]]:
    tr = Trainer(_args(demo_dataset, run, **kw))
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("resume:")]
    return tr, lines


def test_every_checkpoint_carries_the_checksums_of_its_files(run):
    ck = run / "checkpoints" / "step-00000003"
    sums = json.loads((ck / ckpt_io.CHECKSUMS).read_text())["files"]
    assert {"model.safetensors", "optimizer.safetensors", "state.json", "encoder.safetensors"} <= set(sums)
    for name, rec in sums.items():
        assert rec["bytes"] == (ck / name).stat().st_size
        assert rec["sha256"] == ckpt_io.sha256_file(ck / name)
    assert ckpt_io.check(ck) is None


def test_deleted_newest_checkpoint_resumes_from_the_older_one(demo_dataset, run, capsys):
    shutil.rmtree(run / "checkpoints" / "step-00000003")  # latest now names a deleted directory
    tr, lines = _resume(demo_dataset, run, capsys)
    assert tr.step == 2 and tr.resumed_from.endswith("step-00000002")
    assert any("latest: names 'step-00000003', no checkpoint directory" in x for x in lines), lines
    assert lines[-1].startswith("resume: from ") and "step 2" in lines[-1]


def test_garbage_in_latest_does_not_restart_at_step_0(demo_dataset, run, capsys):
    (run / "checkpoints" / "latest").write_bytes(b"\xff\xfegarbage\x00")
    tr, lines = _resume(demo_dataset, run, capsys)
    assert tr.step == 3
    assert any("latest: names unreadable bytes" in x for x in lines), lines
    (run / "checkpoints" / "latest").write_text("garbage\n")
    tr, lines = _resume(demo_dataset, run, capsys)
    assert tr.step == 3 and any("names 'garbage'" in x for x in lines), lines


def test_truncated_weights_are_named_in_one_line_and_the_previous_checkpoint_is_used(demo_dataset, run, capsys):
    bad = run / "checkpoints" / "step-00000003" / "model.safetensors"
    os.truncate(bad, bad.stat().st_size // 2)
    tr, lines = _resume(demo_dataset, run, capsys)
    assert tr.step == 2
    skipped = [x for x in lines if "skipped" in x]
    assert len(skipped) == 1 and str(bad) in skipped[0] and "truncated" in skipped[0], lines
    # Pointed at it directly (generate --checkpoint, --init-from): one error naming the file.
    with pytest.raises(ckpt_io.CheckpointError, match="truncated") as err:
        resolve_checkpoint(bad.parent)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
    # Even without the checksum check, safetensors' own error comes back naming the file.
    with pytest.raises(ckpt_io.CheckpointError) as err:
        ckpt_io.load_state_dict(bad.parent)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_64_flipped_bytes_in_the_weights_are_caught_by_the_checksum(demo_dataset, run, capsys):
    bad = run / "checkpoints" / "step-00000003" / "model.safetensors"
    data = bytearray(bad.read_bytes())
    start = len(data) // 2  # inside the tensor data, past the JSON header: safetensors loads it happily
    for i in range(start, start + 64):
        data[i] ^= 0xFF
    bad.write_bytes(bytes(data))
    ckpt_io.load_state_dict(bad.parent)  # the format itself cannot tell
    assert "sha256" in ckpt_io.check(bad.parent)
    tr, lines = _resume(demo_dataset, run, capsys)
    assert tr.step == 2 and any(str(bad) in x and "sha256" in x for x in lines), lines


def test_a_checkpoint_without_its_checksums_is_incomplete(demo_dataset, run, capsys):
    (run / "checkpoints" / "step-00000003" / ckpt_io.CHECKSUMS).unlink()
    tr, lines = _resume(demo_dataset, run, capsys)
    assert tr.step == 2 and any("incomplete" in x for x in lines), lines


def test_pruning_never_removes_the_last_valid_checkpoint(demo_dataset, run, capsys):
    root = run / "checkpoints"
    (root / "latest").write_text("garbage\n")
    # keep=1 after resuming: the resumed-from checkpoint goes only once a newer one is written.
    tr, _ = _resume(demo_dataset, run, capsys, steps=4, keep=1)
    assert tr.step == 3
    tr.fit()
    assert sorted(p.name for p in root.iterdir() if p.name.startswith("step-")) == ["step-00000004"]
    assert ckpt_io.latest(run).name == "step-00000004"
    # A newer but damaged checkpoint is never counted among those kept: after resuming
    # before it, the one just written is kept whatever keep says, the damaged one is left.
    bad = root / "step-00000004" / "optimizer.safetensors"
    os.truncate(bad, 10)
    shutil.copytree(root / "step-00000004", root / "step-00000009")
    tr2 = Trainer(_args(demo_dataset, run, steps=5, keep=1))
    assert tr2.step == 0  # nothing intact: a fresh start, said in one line
    assert "resume: no intact checkpoint" in capsys.readouterr().out
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    ckpt_io.save(run, 1, model, opt, {"epoch": 0, "batch_in_epoch": 0}, keep=0)
    names = sorted(p.name for p in root.iterdir() if p.name.startswith("step-"))
    assert names == ["step-00000001", "step-00000004", "step-00000009"], names
    assert ckpt_io.latest(run).name == "step-00000001"
