"""DeepSeek-MoE feed-forward: shared experts + greedy top-k routed fine-grained experts.

Dispatch sorts the (token, expert) assignments by expert and runs one matrix product per
expert over its contiguous slice (or a single grouped GEMM on CUDA bf16), then scatters
the weighted results back with index_add: no per-token Python loop.
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


def _expert_grouped(xs: torch.Tensor, counts: torch.Tensor, w_gu: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
    """The same as :func:`_expert_loop` in two grouped GEMMs (CUDA, bf16)."""
    offs = counts.cumsum(0).to(torch.int32)
    h = F.grouped_mm(xs, w_gu.to(xs.dtype).transpose(-2, -1), offs=offs)
    g, u = h.chunk(2, dim=-1)
    return F.grouped_mm((F.silu(g) * u).contiguous(), w_down.to(xs.dtype).transpose(-2, -1), offs=offs)


class MoE(nn.Module):
    """Routed + shared experts; returns (output, load-balancing loss)."""

    # None: grouped GEMM not yet verified in this process; then True/False once checked.
    _grouped_ok: bool | None = None

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

    def _experts(self, xs: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        w_gu, w_dn = self.w_gate_up, self.w_down
        bf16 = xs.dtype == torch.bfloat16 or (
            torch.is_autocast_enabled("cuda") and torch.get_autocast_dtype("cuda") == torch.bfloat16)
        if xs.is_cuda and bf16 and MoE._grouped_ok is not False:
            xs = xs.to(torch.bfloat16)
            try:
                out = _expert_grouped(xs, counts, w_gu, w_dn)
                if MoE._grouped_ok is None:
                    # Verify once against the portable path before trusting the kernel.
                    ref = _expert_loop(xs, counts.tolist(), w_gu.to(xs.dtype), w_dn.to(xs.dtype))
                    MoE._grouped_ok = bool(torch.allclose(out.float(), ref.float(), atol=2e-2, rtol=2e-2))
                    if not MoE._grouped_ok:
                        log.warning("grouped_mm disagrees with the per-expert loop; using the loop")
                        return ref
                return out
            except (RuntimeError, NotImplementedError) as err:
                log.warning("grouped_mm unavailable (%s); using the per-expert loop", err)
                MoE._grouped_ok = False
        return _expert_loop(xs, counts.tolist(), w_gu.to(xs.dtype), w_dn.to(xs.dtype))

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x [..., D]; ``valid`` [...] bool marks real tokens for the balancing loss."""
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        probs, w, idx = self.route(x)
        flat = idx.reshape(-1)
        order = torch.argsort(flat, stable=True)
        token = order // self.top_k
        counts = torch.bincount(flat, minlength=self.n_routed)
        ys = self._experts(x[token], counts) * w.reshape(-1)[order, None].to(x.dtype)
        out = torch.zeros_like(x).index_add_(0, token, ys.to(x.dtype))
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
