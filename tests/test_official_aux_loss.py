"""The MoE balance loss in the official per-sequence form (DeepSeek-V2's ``seq_aux``, the
released model's setting) beside the project's batch form (train/model/moe.py)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from tests.official_snapshot import small_snapshot
from train.model.moe import MoE

# Two sequences of two tokens, two experts, top-1. Sequence 0 sends both tokens to expert 0
# (f = [1, 0], P = [0.85, 0.15]: E * sum f P = 1.7); sequence 1 one to each (f = [.5, .5],
# P = [.45, .55]: 1.0). Per sequence: (1.7 + 1.0) / 2 = 1.35. Over the batch: f = [.75, .25],
# P = [.65, .35]: 2 * (.4875 + .0875) = 1.15.
PROBS = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
IDX = torch.tensor([[0], [0], [1], [0]])


def _moe(per_sequence: bool, n_routed: int = 2, top_k: int = 1, dim: int = 8) -> MoE:
    return MoE(dim=dim, n_routed=n_routed, n_shared=0, top_k=top_k, inter=4, norm_topk_prob=False,
               aux_per_sequence=per_sequence)


def test_the_loss_of_a_known_routing_is_the_formula():
    moe = _moe(True)
    assert moe.balance_loss(PROBS, IDX, None, seqs=2).item() == pytest.approx(1.35)
    assert moe.balance_loss(PROBS, IDX, None, seqs=1).item() == pytest.approx(1.15)  # the batch form
    # Padding is left out of its sequence: sequence 1 is its first token only (f = [0, 1],
    # P = [.3, .7]: 1.4), and a sequence of padding only does not count.
    valid = torch.tensor([[True, True], [True, False]])
    assert moe.balance_loss(PROBS, IDX, valid, seqs=2).item() == pytest.approx((1.7 + 1.4) / 2)
    valid = torch.tensor([[True, True], [False, False]])
    assert moe.balance_loss(PROBS, IDX, valid, seqs=2).item() == pytest.approx(1.7)


def official_seq_aux(scores: torch.Tensor, topk_idx: torch.Tensor, bsz: int, n_experts: int, k: int) -> torch.Tensor:
    """The official MoEGate's seq_aux loss (modeling_deepseekv2.py, before its alpha):
    expert counts per sequence scaled by E / (T * k), times each sequence's mean scores."""
    seq_len = scores.shape[0] // bsz
    ce = torch.zeros(bsz, n_experts)
    ce.scatter_add_(1, topk_idx.view(bsz, -1), torch.ones(bsz, seq_len * k)).div_(seq_len * k / n_experts)
    return (ce * scores.view(bsz, seq_len, -1).mean(dim=1)).sum(dim=1).mean()


def test_the_moe_forward_returns_the_official_per_sequence_loss():
    """A routed batch [B, T, D]: the per-sequence option returns what the official gate's
    formula gives for the same scores and choices; the batch form differs."""
    torch.manual_seed(0)
    x = torch.randn(3, 11, 16)
    per_seq, batch = _moe(True, n_routed=6, top_k=2, dim=16), _moe(False, n_routed=6, top_k=2, dim=16)
    batch.load_state_dict(per_seq.state_dict())
    probs, _w, idx = per_seq.route(x.reshape(-1, 16))
    want = official_seq_aux(probs, idx, 3, 6, 2)
    _, got = per_seq(x)
    _, other = batch(x)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    assert abs(other.item() - want.item()) > 1e-4
    # Its gradient reaches the router, as the official AddAuxiliaryLoss makes it.
    got.backward()
    assert per_seq.gate.weight.grad.abs().sum() > 0


def test_official_checkpoints_default_to_the_per_sequence_loss(tmp_path):
    """config.json without seq_aux means DeepseekV2Config's default (True); false is honoured;
    the export writes the setting back."""
    from train.official.export import export_official
    from train.official.load import load_official

    snap = small_snapshot(tmp_path / "snap")
    loaded = load_official(snap)
    assert "seq_aux" not in json.loads((snap / "config.json").read_text())
    assert loaded.config.decoder.aux_loss_per_sequence and loaded.config.decoder.aux_loss_coef == 0.001
    assert all(m.aux_per_sequence for m in loaded.model.modules() if isinstance(m, MoE))
    out = export_official(loaded.model, loaded.config, loaded.tokenizer, tmp_path / "export")
    assert json.loads((out / "config.json").read_text())["seq_aux"] is True
    off = tmp_path / "off"
    shutil.copytree(snap, off)
    cfg = json.loads((off / "config.json").read_text())
    cfg["seq_aux"] = cfg["language_config"]["seq_aux"] = False
    (off / "config.json").write_text(json.dumps(cfg))
    assert not load_official(off).config.decoder.aux_loss_per_sequence
