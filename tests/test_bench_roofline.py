"""bench/bench_roofline.py: the operator record of a training step, traced on fake tensors."""

from __future__ import annotations

import pytest

from bench import bench_roofline as br
from train.configs import get_config, with_vocab

VOCAB = 512


@pytest.fixture(scope="module")
def tiny_step():
    return br.trace_step("tiny", rows=3, length=300, vocab=VOCAB)


def test_trace_holds_forward_and_backward_and_matches_the_analytic_flops(tiny_step):
    ops, step = tiny_step
    dec = with_vocab(get_config("tiny").decoder, VOCAB)
    tokens = 3 * 300
    # The LM head: one forward product and two in backward (input and weight gradients),
    # each 2 x tokens x width x vocab.
    head = [op for op in ops if op.kind == "matmul" and any(VOCAB in s for s in op.shapes)]
    assert len(head) == 3
    assert sum(op.flops for op in head) == 3 * 2 * tokens * dec.width * VOCAB
    assert any(op.name == "_grouped_mm" for op in ops)  # the experts ran on CUDA's path
    assert sum("backward" in op.name for op in ops) > 0
    # Executed products and attention against the trainer's MFU numerator, less the half of
    # PaLM's attention count that causal kernels skip: nothing missing, and only SAM's
    # position-bias key dims on top (5 % here).
    executed = sum(op.flops for op in ops if op.kind in ("matmul", "attention"))
    skipped = 6 * dec.layers * dec.heads * dec.head_dim * 300 * tokens
    assert 1.0 <= executed / (step["model_flops"] - skipped) < 1.1


def test_estimate_adds_up(tiny_step):
    ops, step = tiny_step
    est = br.estimate(ops, step, br.GPUS["h100"])
    kinds = est["kinds"]
    assert set(kinds) >= {"matmul", "attention", "elementwise", "cast", "optimizer"}
    assert sum(k["kernels"] for k in kinds.values()) == len(ops)
    assert est["step_ms"] == pytest.approx(sum(k["ms"] for k in kinds.values()))
    assert est["mfu_790"] == pytest.approx(step["model_flops"] / (est["step_ms"] / 1e3) / 790e12)
    # A faster memory system can only shorten the step.
    assert br.estimate(ops, step, br.GPUS["h200"])["step_ms"] < est["step_ms"]


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="--length 5:"):
        br.trace_step("tiny", rows=1, length=5)
    with pytest.raises(ValueError, match="--grid"):
        br.trace_step("tiny", rows=1, length=400, mode="gundam")


def test_sam_flex_stand_in_drops_the_key_dims_work():
    """``small``'s global SAM blocks (32 x 32 tokens) reach FlexAttention's threshold: traced
    with it on, their attention runs at the head dim, not the key-dim form's
    64 + 32 + 32 (padded to a multiple of 8), and the SAM part of the step gets cheaper."""
    flex_ops, _ = br.trace_step("small", rows=2, length=300, vocab=VOCAB, sam_flex=True)
    keydim_ops, _ = br.trace_step("small", rows=2, length=300, vocab=VOCAB)
    sam_attn = lambda ops: [op for op in ops if op.kind == "attention" and op.shapes[0][2] == 1024]  # noqa: E731
    flex, keydims = sam_attn(flex_ops), sam_attn(keydim_ops)
    assert len(flex) == len(keydims) > 0
    d = flex[0].shapes[0][3]
    assert keydims[0].shapes[0][3] == d + 64
    assert sum(op.flops for op in flex) * (d + 64) == sum(op.flops for op in keydims) * d


def test_compiled_estimate_reads_inductors_fused_kernels():
    """--compiled: inductor (on CPU) compiles a tiny dense decoder block at two lengths; the
    scheduler hook sees its fused kernels, whose traffic grows with the tokens and is less
    than the eager block's elementwise, cast and gather kernels at the step's shape."""
    blocks = br.compiled_blocks("tiny", rows=4, length=256, sizes=(128, 256), only=("dense",))
    assert set(blocks) == {"dense"}
    b = blocks["dense"]
    assert b["blocks"] == 1 and b["fused_kernels"] > 0
    assert b["fused_bytes_per_unit"] > 0
    assert 0 < b["fused_ms"] < b["eager_nonproduct_ms"]
