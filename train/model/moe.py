"""DeepSeek-MoE feed-forward: shared experts + greedy top-k routed fine-grained experts.

Dispatch sorts the (token, expert) assignments by expert and runs one matrix product per
expert over its contiguous slice (or a single grouped GEMM on CUDA bf16), then gathers the
results back to (token, slot) order and sums each token's k weighted results: no
per-token Python loop.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)


class SwiGLU(nn.Module):
    """Dense SwiGLU MLP: down(silu(gate(x)) * up(x))."""

    def __init__(self, dim: int, inter: int):
        super().__init__()
        self.gate_up = nn.Linear(dim, 2 * inter, bias=False)
        self.down = nn.Linear(inter, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, u = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(g) * u)


def _expert_loop(xs: torch.Tensor, counts: list[int], w_gu: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
    """Per-expert products over the expert-sorted rows ``xs`` (the portable path)."""
    outs = []
    for e, xe in enumerate(xs.split(counts)):
        if xe.shape[0]:
            g, u = (xe @ w_gu[e].t()).chunk(2, dim=-1)
            outs.append((F.silu(g) * u) @ w_down[e].t())
    return torch.cat(outs) if outs else xs.new_zeros(0, w_down.shape[1])


# Public as F.grouped_mm in recent PyTorch; torch._grouped_mm (same signature) before that.
_GROUPED_MM = getattr(F, "grouped_mm", None) or getattr(torch, "_grouped_mm", None)


def _expert_grouped(xs: torch.Tensor, counts: torch.Tensor, w_gu: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
    """The same as :func:`_expert_loop` in two grouped GEMMs (bf16; CUDA sm80+, or CPU).

    The kernels want 16-byte aligned strides, so the model width and expert width must be
    multiples of 8 in bf16.
    """
    if _GROUPED_MM is None:
        raise NotImplementedError(f"torch {torch.__version__} has no grouped_mm")
    offs = counts.cumsum(0).to(torch.int32)
    h = _GROUPED_MM(xs, w_gu.to(xs.dtype).transpose(-2, -1), offs=offs)
    g, u = h.chunk(2, dim=-1)
    return _GROUPED_MM((F.silu(g) * u).contiguous(), w_down.to(xs.dtype).transpose(-2, -1), offs=offs)


# Per device string: whether the bf16 grouped GEMM ran and agreed with the loop there.
_GROUPED_OK: dict[str, bool] = {}


def grouped_gemm_ok(device: torch.device | str) -> bool:
    """Probe once per device that the bf16 grouped GEMM runs and matches the per-expert loop.

    Called by the trainer before ``torch.compile`` so the compiled forward sees a constant
    instead of a try/except and a host sync; a failing or disagreeing kernel is logged and
    the portable loop is used from then on.
    """
    key = str(torch.device(device))
    if key not in _GROUPED_OK:
        ok = False
        try:
            with torch.no_grad():
                gen = torch.Generator().manual_seed(0)
                counts = torch.tensor([7, 0, 13, 4])
                xs = torch.randn(24, 64, generator=gen).to(device, torch.bfloat16)
                w_gu = (torch.randn(4, 64, 64, generator=gen) * 0.1).to(device, torch.bfloat16)
                w_dn = (torch.randn(4, 64, 32, generator=gen) * 0.1).to(device, torch.bfloat16)
                out = _expert_grouped(xs, counts.to(device), w_gu, w_dn)
                ref = _expert_loop(xs.double(), counts.tolist(), w_gu.double(), w_dn.double())
                ok = bool(((out.double() - ref).norm() / ref.norm()) < 2e-2)
            if not ok:
                log.warning("grouped_mm disagrees with the per-expert loop on %s; using the loop", key)
        except (RuntimeError, NotImplementedError) as err:
            log.warning("grouped_mm unavailable on %s (%s); using the per-expert loop", key, err)
        _GROUPED_OK[key] = ok
    return _GROUPED_OK[key]


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
    """Routed + shared experts; returns (output, load-balancing loss)."""

    def __init__(self, dim: int, n_routed: int, n_shared: int, top_k: int, inter: int, norm_topk_prob: bool):
        super().__init__()
        self.n_routed, self.top_k, self.norm_topk_prob = n_routed, top_k, norm_topk_prob
        self.gate = nn.Linear(dim, n_routed, bias=False)
        self.w_gate_up = nn.Parameter(torch.empty(n_routed, 2 * inter, dim))
        self.w_down = nn.Parameter(torch.empty(n_routed, dim, inter))
        nn.init.normal_(self.w_gate_up, std=0.02)
        nn.init.normal_(self.w_down, std=0.02)
        self.shared = SwiGLU(dim, n_shared * inter) if n_shared else None

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
        order = torch.argsort(flat, stable=True)
        # Fixed-size counts (bincount's output size is data-dependent, which breaks compiled graphs).
        counts = flat.new_zeros(self.n_routed).index_add_(0, flat, torch.ones_like(flat))
        # Cast before the gather: k copies of each token move in bf16, not float32.
        xs = (x.to(torch.bfloat16) if grouped else x)[order // self.top_k]  # expert-sorted slots
        if grouped:
            ys = _expert_grouped(xs, counts, self.w_gate_up, self.w_down)
        else:
            ys = _expert_loop(xs, counts.tolist(), self.w_gate_up.to(xs.dtype), self.w_down.to(xs.dtype))
        # Back to (token, slot) order by a gather, then the weighted sum over a token's k
        # slots. (index_add_ into the tokens would keep its whole source for backward: in
        # float32, 30 KiB a token per MoE layer of the paper config.)
        slot = torch.empty_like(order).scatter_(0, order, torch.arange(order.numel(), device=order.device))
        y = ys[slot].view(-1, self.top_k, x.shape[-1])
        return (y * w[..., None]).sum(dim=1)  # float32 weights: the sum is in float32

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
        return out.reshape(shape), self.balance_loss(probs, idx, valid)

    def balance_loss(self, probs: torch.Tensor, idx: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """DeepSeek's expert-level balance loss: E * sum_i f_i * P_i over the valid tokens.

        f_i is the fraction of routed slots that went to expert i, P_i its mean score;
        a perfectly balanced router gives 1.
        """
        m = torch.ones(probs.shape[0], device=probs.device) if valid is None else valid.reshape(-1).float()
        n = m.sum().clamp(min=1.0)
        hits = torch.zeros_like(probs).scatter_(1, idx, 1.0)
        f = (hits * m[:, None]).sum(0) / (n * self.top_k)
        p = (probs * m[:, None]).sum(0) / n
        return self.n_routed * (f * p).sum()
