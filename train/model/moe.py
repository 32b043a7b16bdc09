"""DeepSeek-MoE feed-forward: shared experts + greedy top-k routed fine-grained experts.

Dispatch sorts the (token, expert) assignments by expert and runs one matrix product per
expert over its contiguous slice (or a single grouped GEMM on CUDA bf16), then gathers the
results back to (token, slot) order and sums each token's k results: no per-token Python
loop. The routing weight scales each slot's hidden activations before the down projection
(the same product, as that projection is linear), so the combine is a plain sum.

The two reorderings are each other's backward: copying tokens out to their k slots
(:class:`_Dispatch`) is undone in backward by summing the k slot gradients, and summing
slots into tokens (:class:`_Combine`) by copying the token gradient out again. Written as
gathers both ways, neither needs autograd's default for an indexed read, a zero buffer plus
an accumulating scatter (which sorts its indices on CUDA: 4 ms a layer on an H200 at 57k
tokens, docs/gpu.md run 3). The routing weights' permutation is a k = 1 dispatch for the
same reason, and tokens per expert are counted without such a scatter either.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from train.model.kernel_probe import probe_once


class SwiGLU(nn.Module):
    """Dense SwiGLU MLP: down(silu(gate(x)) * up(x))."""

    def __init__(self, dim: int, inter: int):
        super().__init__()
        self.gate_up = nn.Linear(dim, 2 * inter, bias=False)
        self.down = nn.Linear(inter, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, u = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(g) * u)


def _expert_loop(xs: torch.Tensor, counts: list[int], w_gu: torch.Tensor, w_down: torch.Tensor,
                 scale: torch.Tensor | None = None, lora: nn.ModuleDict | None = None) -> torch.Tensor:
    """Per-expert products over the expert-sorted rows ``xs`` (the portable path); ``scale``
    [rows] multiplies each row's hidden activations before the down projection; ``lora``
    (MoE.lora) adds each expert's low-rank adapter to both products."""
    outs = []
    scales = scale.split(counts) if scale is not None else [None] * len(counts)
    for e, (xe, se) in enumerate(zip(xs.split(counts), scales)):
        if xe.shape[0]:
            gu = xe @ w_gu[e].t()
            if lora is not None:
                gu = gu + lora["w_gate_up"].expert(xe, e)
            g, u = gu.chunk(2, dim=-1)
            h = F.silu(g) * u
            h = h if se is None else h * se[:, None]
            y = h @ w_down[e].t()
            outs.append(y if lora is None else y + lora["w_down"].expert(h, e))
    return torch.cat(outs) if outs else xs.new_zeros(0, w_down.shape[1])


# Public as F.grouped_mm in recent PyTorch; torch._grouped_mm (same signature) before that.
_GROUPED_MM = getattr(F, "grouped_mm", None) or getattr(torch, "_grouped_mm", None)


def _expert_grouped(xs: torch.Tensor, counts: torch.Tensor, w_gu: torch.Tensor, w_down: torch.Tensor,
                    scale: torch.Tensor | None = None, lora: nn.ModuleDict | None = None) -> torch.Tensor:
    """The same as :func:`_expert_loop` in two grouped GEMMs (bf16; CUDA sm80+, or CPU).

    The kernels want 16-byte aligned strides, so the model width and expert width must be
    multiples of 8 in bf16.
    """
    if _GROUPED_MM is None:
        raise NotImplementedError(f"torch {torch.__version__} has no grouped_mm")
    offs = counts.cumsum(0).to(torch.int32)
    gu = _GROUPED_MM(xs, w_gu.to(xs.dtype).transpose(-2, -1), offs=offs)
    if lora is not None:
        gu = gu + lora["w_gate_up"].grouped(xs, offs)
    g, u = gu.chunk(2, dim=-1)
    h = F.silu(g) * u
    if scale is not None:
        h = h * scale.to(h.dtype)[:, None]
    h = h.contiguous()
    y = _GROUPED_MM(h, w_down.to(xs.dtype).transpose(-2, -1), offs=offs)
    return y if lora is None else y + lora["w_down"].grouped(h, offs)


def _gather_sum(rows: torch.Tensor, index: torch.Tensor, k: int) -> torch.Tensor:
    """[n * k] picks of ``rows`` [M, D], summed k at a time in float32: [n, D]."""
    return rows[index].view(-1, k, rows.shape[-1]).sum(dim=1, dtype=torch.float32)


class _Dispatch(torch.autograd.Function):
    """x [N, D] -> its rows in expert-sorted slot order, x[src] [N * k, D]; backward sums
    each token's k slot gradients, found through ``slot`` (a token's slots, in order)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, src: torch.Tensor, slot: torch.Tensor, k: int) -> torch.Tensor:
        ctx.save_for_backward(slot)
        ctx.k = k
        return x[src]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (slot,) = ctx.saved_tensors
        return _gather_sum(grad, slot, ctx.k).to(grad.dtype), None, None, None


class _Combine(torch.autograd.Function):
    """Expert-sorted results ys [N * k, D] -> each token's sum of its k slots [N, D] (float32);
    backward copies each token's gradient out to its slots (the dispatch's forward)."""

    @staticmethod
    def forward(ctx, ys: torch.Tensor, src: torch.Tensor, slot: torch.Tensor, k: int) -> torch.Tensor:
        ctx.save_for_backward(src)
        ctx.dtype = ys.dtype
        return _gather_sum(ys, slot, k)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (src,) = ctx.saved_tensors
        return grad.to(ctx.dtype)[src], None, None, None  # cast first: k copies move in ys's dtype


# Per device string: whether the bf16 grouped GEMM ran and agreed with the loop there.
_GROUPED_OK: dict[str, bool] = {}


def grouped_gemm_ok(device: torch.device | str) -> bool:
    """Probe once per device that the bf16 grouped GEMM runs and matches the per-expert loop.

    Called by the trainer before ``torch.compile`` so the compiled forward sees a constant
    instead of a try/except and a host sync; a failing or disagreeing kernel is logged and
    the portable loop is used from then on.
    """
    def compare(dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(0)
        counts = torch.tensor([7, 0, 13, 4])
        xs = torch.randn(24, 64, generator=gen).to(dev, torch.bfloat16)
        w_gu = (torch.randn(4, 64, 64, generator=gen) * 0.1).to(dev, torch.bfloat16)
        w_dn = (torch.randn(4, 64, 32, generator=gen) * 0.1).to(dev, torch.bfloat16)
        return (_expert_grouped(xs, counts.to(dev), w_gu, w_dn),
                _expert_loop(xs.double(), counts.tolist(), w_gu.double(), w_dn.double()))

    return probe_once(_GROUPED_OK, device, "grouped_mm", "the per-expert loop", compare)


def use_grouped_gemm(xs: torch.Tensor) -> bool:
    """Whether the experts of rows ``xs`` run as one bf16 grouped GEMM (else the loop).

    CUDA only: CPU training runs in float32, where grouped_mm's backward fails (torch 2.13).
    The loop reads the expert counts on the host, a graph break under torch.compile, so
    this is the path a compiled GPU step must take.
    """
    bf16 = xs.dtype == torch.bfloat16 or (
        torch.is_autocast_enabled("cuda") and torch.get_autocast_dtype("cuda") == torch.bfloat16)
    return xs.is_cuda and bf16 and grouped_gemm_ok(xs.device)


class MoE(nn.Module):
    """Routed + shared experts; returns (output, load-balancing loss).

    ``aux_per_sequence``: the balance loss is taken per sequence and averaged over the
    batch, as the official DeepSeek-V2 code does with ``seq_aux`` (its default); else over
    all the batch's tokens at once (:meth:`balance_loss`).
    """

    def __init__(self, dim: int, n_routed: int, n_shared: int, top_k: int, inter: int, norm_topk_prob: bool,
                 aux_per_sequence: bool = False):
        super().__init__()
        self.n_routed, self.top_k, self.norm_topk_prob = n_routed, top_k, norm_topk_prob
        self.aux_per_sequence = aux_per_sequence
        self.gate = nn.Linear(dim, n_routed, bias=False)
        self.w_gate_up = nn.Parameter(torch.empty(n_routed, 2 * inter, dim))
        self.w_down = nn.Parameter(torch.empty(n_routed, dim, inter))
        nn.init.normal_(self.w_gate_up, std=0.02)
        nn.init.normal_(self.w_down, std=0.02)
        self.shared = SwiGLU(dim, n_shared * inter) if n_shared else None
        # Low-rank adapters of the stacked experts, {"w_gate_up", "w_down"}: set by
        # train.lora.apply_lora, removed by merge_lora. The expert products add them.
        self.lora: nn.ModuleDict | None = None

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Softmax scores [N, E] (float32), top-k weights [N, k] and expert ids [N, k]."""
        # Route in float32 even under autocast: near-tied bf16 scores would flip experts.
        with torch.autocast(x.device.type, enabled=False):
            probs = F.linear(x.float(), self.gate.weight.float()).softmax(dim=-1)
        w, idx = probs.topk(self.top_k, dim=-1)
        if self.norm_topk_prob:
            w = w / w.sum(dim=-1, keepdim=True)
        return probs, w, idx

    def _routed(self, x: torch.Tensor, w: torch.Tensor, idx: torch.Tensor, grouped: bool) -> torch.Tensor:
        """The routed experts' weighted sum for tokens x [N, D] with top-k weights and ids [N, k]."""
        flat = idx.reshape(-1)
        sorted_ids, order = torch.sort(flat, stable=True)  # expert-sorted position -> (token, slot)
        src = order // self.top_k  # expert-sorted position -> token
        slot = torch.empty_like(order).scatter_(0, order, torch.arange(order.numel(), device=order.device))
        # Counts of fixed size from the sorted ids' edges: bincount's size depends on the data,
        # which breaks compiled graphs, and inductor turns an index_add of every slot's 1 into
        # E counters into an accumulating scatter (above), which also serialises duplicates.
        edges = torch.searchsorted(sorted_ids, torch.arange(self.n_routed + 1, device=flat.device, dtype=flat.dtype))
        counts = edges.diff()
        # Cast before the gather: k copies of each token move in bf16, not float32.
        xs = _Dispatch.apply(x.to(torch.bfloat16) if grouped else x, src, slot, self.top_k)
        # A permutation: as a k = 1 dispatch its gradient is a gather too.
        scale = _Dispatch.apply(w.reshape(-1, 1), order, slot, 1).view(-1)
        if grouped:
            ys = _expert_grouped(xs, counts, self.w_gate_up, self.w_down, scale, self.lora)
        else:
            ys = _expert_loop(xs, counts.tolist(), self.w_gate_up.to(xs.dtype), self.w_down.to(xs.dtype), scale,
                              self.lora)
        # The weights are in ys already, so the combine is a sum (in float32) over each
        # token's k slots, and nothing per slot is kept for backward but the indices.
        return _Combine.apply(ys, src, slot, self.top_k)

    # The loop's host-side counts break a compiled graph. Run the whole routed part eager
    # then, so the graph after the break takes [N, D] tensors only: given the loop's
    # [N * k, D] results, inductor (torch 2.13, CPU) failed to bind N in that graph.
    _routed_eager = torch.compiler.disable(_routed)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x [..., D]; ``valid`` [...] bool marks real tokens for the balancing loss."""
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        probs, w, idx = self.route(x)
        grouped = use_grouped_gemm(x)
        out = (self._routed if grouped else self._routed_eager)(x, w, idx, grouped)
        if self.shared is not None:
            out = out + self.shared(x)
        # Sequences are the leading dim of a [B, T, D] input; anything else counts as one.
        seqs = shape[0] if self.aux_per_sequence and len(shape) == 3 else 1
        return out.reshape(shape), self.balance_loss(probs, idx, valid, seqs)

    def balance_loss(self, probs: torch.Tensor, idx: torch.Tensor, valid: torch.Tensor | None,
                     seqs: int = 1) -> torch.Tensor:
        """DeepSeek's expert-level balance loss: E * sum_i f_i * P_i over the valid tokens.

        f_i is the fraction of routed slots that went to expert i, P_i its mean score;
        a perfectly balanced router gives 1. ``seqs`` > 1: the N rows are ``seqs``
        sequences of N / seqs tokens; the loss is taken per sequence (over its valid
        tokens) and averaged over the sequences that have any, the official ``seq_aux``
        form. For a sequence without padding that is the official code's
        ``(ce * scores.mean(1)).sum(1)`` with ``ce`` = expert counts * E / (T * k).
        """
        m = torch.ones(probs.shape[0], device=probs.device) if valid is None else valid.reshape(-1).float()
        hits = torch.zeros_like(probs).scatter_(1, idx, 1.0)
        m, hits, probs = m.view(seqs, -1), hits.view(seqs, -1, self.n_routed), probs.view(seqs, -1, self.n_routed)
        n = m.sum(1).clamp(min=1.0)[:, None]  # [S, 1]
        f = (hits * m[..., None]).sum(1) / (n * self.top_k)  # [S, E]
        p = (probs * m[..., None]).sum(1) / n
        per_seq = self.n_routed * (f * p).sum(-1)  # [S]
        has = (m.sum(1) > 0).float()  # sequences of padding only do not count (no host sync)
        return (per_seq * has).sum() / has.sum().clamp(min=1.0)
