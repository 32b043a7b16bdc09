"""The trainer explains itself (issue 17 item 12): a banner first, a progress bar with loss
and tokens/s, no MFU where the peak is unknown (CPU), and a warning when stage 2 starts
from random weights."""

from __future__ import annotations

import io
import json
import sys

from train.loop import TrainArgs, Trainer


class _Terminal(io.StringIO):
    """stderr as a terminal, so that tqdm draws its bar."""

    def isatty(self) -> bool:
        return True


def test_banner_progress_bar_no_cpu_mfu_and_the_stage2_warning(demo_dataset, tmp_path, capsys, monkeypatch):
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    args = TrainArgs(config="tiny", stage=2, data=[str(demo_dataset)], out=str(tmp_path / "run"),
                     mode=["tiny", "small"], vocab_size=300, batch_size=2, steps=2, workers=0, log_every=1, save_every=10, device="cpu",
                     checkpoints=False)
    tr = Trainer(args)
    banner = capsys.readouterr().out.splitlines()
    # The banner comes first and its figures are the run's own.
    assert banner[0] == "python -m train: stage 2, config tiny, 2 mode(s): tiny small"
    text = "\n".join(banner)
    n_rows = tr.shards.table(0).num_rows
    assert f"{n_rows} rows of 1 shard(s) -> {len(tr.dataset)} examples" in text
    assert f"{int(tr.dataset.lengths.mean(axis=1).sum()):,} tokens an epoch" in text
    m = tr.model
    total = sum(p.numel() for p in m.parameters())
    trainable = sum(p.numel() for p in m.parameters() if p.requires_grad)
    assert trainable < total and f"{total / 1e3:.1f}k parameters, {trainable / 1e3:.1f}k trainable" in text
    frozen_sam = sum(p.numel() for p in m.encoder.sam.parameters())
    assert f"frozen: encoder.sam ({frozen_sam / 1e3:.1f}k), encoder.compressor" in text
    assert "device    cpu x 1 rank(s), float32" in text and "start     random initialisation" in text
    assert f"writes    {tmp_path / 'run'}/ (log.jsonl" in text and "no checkpoints" in text
    # Stage 2 from random weights: warned on stderr; an initialisation (either kind) silences it.
    assert "warning: stage 2 without --init-from (or --init-official)" in term.getvalue()
    assert tr.stage2_warning() is not None
    tr.args.init_official = "deepseek-ai/DeepSeek-OCR"
    assert tr.stage2_warning() is None
    tr.args.init_official = None

    tr.fit()
    out = capsys.readouterr().out
    steps = [ln for ln in out.splitlines() if ln.startswith("step ")]
    assert len(steps) == 2 and all("tok/s" in ln for ln in steps)
    assert "mfu" not in out  # was "mfu 0.000": a CPU has no known peak
    logs = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all("mfu" not in r and r["model_flops_per_s"] > 0 for r in logs)
    bar = term.getvalue()
    assert "stage 2: 100%" in bar and "2/2" in bar
    assert f"loss {logs[-1]['loss']:.4f}, {logs[-1]['tokens_per_s']:,.0f} tok/s" in bar
