"""LoRA: low-rank adapters on the model's matrices, with PEFT's conventions, in plain torch.

A wrapped matrix W (out x in) computes ``W x + (B A dropout(x)) * alpha / rank`` with
A (rank x in) drawn kaiming-uniform as PEFT does and B (out x rank) zero, so an adapted
model starts exactly where its base is. Only A and B train; everything else is frozen and
keeps its dtype (the trainer holds the frozen base in bf16 on CUDA). :func:`merge_lora`
folds ``B @ A * alpha / rank`` into each W and gives back the plain model, with the
original modules and parameter names.

Targets (``LoraConfig.targets``), for the stage-2 OCRModel:

- ``attention``: the decoder's q, k, v and o projections (separate matrices here).
- ``dense_mlp``: the dense SwiGLU of the leading dense layer(s): ``gate_up`` (gate and up
  fused, gate rows first) and ``down``.
- ``shared_experts``: each MoE layer's shared-expert SwiGLU (``mlp.shared.gate_up``, ``.down``).
- ``routed_experts``: the stacked routed experts ``mlp.w_gate_up`` [E, 2I, D] and
  ``mlp.w_down`` [E, D, I]: one adapter per expert, stacked the same way, added inside the
  expert products on both the per-expert loop and the grouped-GEMM path (MoE.lora).
  The grouped GEMM wants 16-byte strides, so the rank must then be a multiple of 8.
- ``projector``: the DeepEncoder's projector (2 x CLIP width -> decoder width). A LoRA
  rather than full training, so that every trained tensor of a LoRA run is an adapter
  and the run exports as one PEFT adapter; at rank 16 it has 53k of the projector's 2.6M
  weights, and its gradient costs nothing more than the decoder's (CLIP stays frozen).
- ``vision``: CLIP's blocks: ``attn.qkv`` (q, k, v fused), ``attn.proj``, ``mlp.fc1``,
  ``mlp.fc2``. This makes CLIP keep its activations for backward (docs/gpu.md).

The adapter layout (:func:`adapter_state_dict`): for a base tensor named ``P.weight``
(an nn.Linear at module path P) or ``P`` (a stacked expert tensor), the keys are
``P.lora_A.weight`` and ``P.lora_B.weight``:

- a matrix W [out, in]: A [r, in], B [out, r]; W' = W + (B @ A) * alpha / r.
- a fused matrix, W = [W1; W2; ...] stacked by output rows (``gate_up`` = [gate; up],
  CLIP's ``qkv`` = [q; k; v]): one A for the whole, and B's rows follow W's, so part i's
  own adapter is (A, B[rows of i]): W_i' = W_i + (B_i @ A) * alpha / r exactly.
- stacked experts, W [E, out, in]: A [E, r, in], B [E, out, r]; expert e's adapter is
  (A[e], B[e]), and for ``w_gate_up`` its gate part is (A[e], B[e, :I]) and up
  (A[e], B[e, I:]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

TARGETS = ("attention", "dense_mlp", "shared_experts", "routed_experts", "projector", "vision")
DEFAULT_TARGETS = ("attention", "dense_mlp", "shared_experts")


@dataclass
class LoraConfig:
    """What to adapt and how.

    rank: inner size r of each adapter (> 0).
    alpha: the update is scaled by alpha / rank (PEFT's ``lora_alpha``).
    dropout: dropout on the adapter's input (training only; PEFT's ``lora_dropout``).
    targets: names from TARGETS (module docstring).
    """

    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.0
    targets: tuple[str, ...] = field(default=DEFAULT_TARGETS)

    def __post_init__(self) -> None:
        self.targets = tuple(self.targets)
        if self.rank < 1:
            raise ValueError(f"LoRA rank {self.rank}: must be >= 1")
        if self.alpha <= 0:
            raise ValueError(f"LoRA alpha {self.alpha}: must be > 0")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"LoRA dropout {self.dropout}: must be in [0, 1)")
        bad = [t for t in self.targets if t not in TARGETS]
        if bad or not self.targets:
            raise ValueError(f"LoRA targets {' '.join(bad) or '(none)'}: valid targets are {', '.join(TARGETS)} "
                             "(one or more)")
        if "routed_experts" in self.targets and self.rank % 8:
            raise ValueError(f"LoRA rank {self.rank} with routed_experts: must be a multiple of 8 "
                             "(the experts' grouped GEMM needs 16-byte strides)")

    @property
    def scaling(self) -> float:
        """alpha / rank, the factor on every adapter's output."""
        return self.alpha / self.rank


class _Weight(nn.Module):
    """A bare parameter holder, so an adapter's tensors are named ``lora_A.weight`` as in PEFT."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight)


def _init_pair(out_f: int, in_f: int, rank: int, lead: tuple[int, ...], device) -> tuple[_Weight, _Weight]:
    """A [*lead, r, in] kaiming-uniform (PEFT's, per matrix) and B [*lead, out, r] zero, float32."""
    a = torch.empty(*lead, rank, in_f, device=device, dtype=torch.float32)
    for m in a.view(-1, rank, in_f):  # nn.Linear's default init, one expert at a time
        nn.init.kaiming_uniform_(m, a=math.sqrt(5))
    return _Weight(a), _Weight(torch.zeros(*lead, out_f, rank, device=device, dtype=torch.float32))


def _dropout(p: float) -> nn.Module:
    return nn.Dropout(p) if p > 0 else nn.Identity()


class LoraLinear(nn.Module):
    """An nn.Linear plus a low-rank adapter. It holds the base's own ``weight`` and ``bias``
    Parameters (same objects, same names), so the base part of the state dict is unchanged."""

    def __init__(self, base: nn.Linear, cfg: LoraConfig):
        super().__init__()
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.register_parameter("bias", base.bias)
        self.lora_A, self.lora_B = _init_pair(self.out_features, self.in_features, cfg.rank, (), base.weight.device)
        self.lora_dropout = _dropout(cfg.dropout)
        self.scaling = cfg.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        # Adapter weights cast to the input's dtype: bf16 under autocast anyway, and a bf16
        # base without autocast (inference) works too.
        h = F.linear(self.lora_dropout(x), self.lora_A.weight.to(x.dtype))
        return y + F.linear(h, self.lora_B.weight.to(x.dtype)) * self.scaling

    def delta(self) -> torch.Tensor:
        """(B @ A) * scaling in float32: what merging adds to ``weight``."""
        return (self.lora_B.weight.float() @ self.lora_A.weight.float()) * self.scaling

    def to_linear(self) -> nn.Linear:
        """A plain nn.Linear carrying this module's (merged or not) weight and bias Parameters."""
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        lin.weight = self.weight
        if self.bias is not None:
            lin.bias = self.bias
        return lin


class StackedLora(nn.Module):
    """Adapters of a stacked expert weight W [E, out, in]: A [E, r, in], B [E, out, r]."""

    def __init__(self, weight: torch.Tensor, cfg: LoraConfig):
        super().__init__()
        n, out_f, in_f = weight.shape
        self.lora_A, self.lora_B = _init_pair(out_f, in_f, cfg.rank, (n,), weight.device)
        self.lora_dropout = _dropout(cfg.dropout)
        self.scaling = cfg.scaling

    def expert(self, x: torch.Tensor, e: int) -> torch.Tensor:
        """Expert e's adapter output for its rows x [n, in] (the per-expert loop)."""
        h = self.lora_dropout(x) @ self.lora_A.weight[e].to(x.dtype).t()
        return (h @ self.lora_B.weight[e].to(x.dtype).t()) * self.scaling

    def grouped(self, xs: torch.Tensor, offs: torch.Tensor) -> torch.Tensor:
        """Every expert's adapter output for the expert-sorted rows xs [N, in] with group ends
        ``offs`` (the grouped-GEMM path): two more grouped GEMMs of inner size r."""
        from train.model.moe import _GROUPED_MM

        h = _GROUPED_MM(self.lora_dropout(xs), self.lora_A.weight.to(xs.dtype).transpose(-2, -1), offs=offs)
        return _GROUPED_MM(h, self.lora_B.weight.to(xs.dtype).transpose(-2, -1), offs=offs) * self.scaling

    def delta(self) -> torch.Tensor:
        """(B @ A) * scaling per expert [E, out, in], float32."""
        return torch.bmm(self.lora_B.weight.float(), self.lora_A.weight.float()) * self.scaling


_STACKED = ("w_gate_up", "w_down")


def _linear_targets(model: nn.Module, targets: tuple[str, ...]) -> list[str]:
    """Module paths of the nn.Linear layers the targets name, in model order."""
    from train.model.decoder import Attention
    from train.model.moe import MoE, SwiGLU

    if not hasattr(model, "decoder") or not hasattr(model, "encoder"):
        raise ValueError(f"apply_lora: expected an OCRModel, got {type(model).__name__}")
    paths = []
    for i, blk in enumerate(model.decoder.blocks):
        pre = f"decoder.blocks.{i}"
        if "attention" in targets and isinstance(blk.attn, Attention):
            paths += [f"{pre}.attn.{n}" for n in ("q", "k", "v", "o")]
        if "dense_mlp" in targets and isinstance(blk.mlp, SwiGLU):
            paths += [f"{pre}.mlp.gate_up", f"{pre}.mlp.down"]
        if "shared_experts" in targets and isinstance(blk.mlp, MoE) and blk.mlp.shared is not None:
            paths += [f"{pre}.mlp.shared.gate_up", f"{pre}.mlp.shared.down"]
    if "projector" in targets:
        paths.append("encoder.projector")
    if "vision" in targets:
        for i in range(len(model.encoder.clip.blocks)):
            pre = f"encoder.clip.blocks.{i}"
            paths += [f"{pre}.attn.qkv", f"{pre}.attn.proj", f"{pre}.mlp.fc1", f"{pre}.mlp.fc2"]
    return paths


def _parent(model: nn.Module, path: str) -> tuple[nn.Module, str]:
    parent, _, name = path.rpartition(".")
    return model.get_submodule(parent), name


def apply_lora(model: nn.Module, cfg: LoraConfig) -> list[str]:
    """Wrap the targets' matrices of a bare OCRModel in place and freeze everything else;
    returns the adapted paths (module paths, and ``<MoE path>.w_gate_up`` / ``.w_down``
    for routed experts). The frozen base keeps its dtype; adapters are float32 on the
    base's device. Call before DDP, torch.compile or building the optimizer."""
    from train.model.moe import MoE

    if any(isinstance(m, (LoraLinear, StackedLora)) for m in model.modules()):
        raise ValueError("apply_lora: the model already has LoRA adapters")
    for p in model.parameters():
        p.requires_grad_(False)
    done = []
    for path in _linear_targets(model, cfg.targets):
        parent, name = _parent(model, path)
        setattr(parent, name, LoraLinear(getattr(parent, name), cfg))
        done.append(path)
    if "routed_experts" in cfg.targets:
        for path, m in model.named_modules():
            if isinstance(m, MoE):
                m.lora = nn.ModuleDict({n: StackedLora(getattr(m, n), cfg) for n in _STACKED})
                done += [f"{path}.{n}" for n in _STACKED]
    if not done:
        raise ValueError(f"apply_lora: targets {', '.join(cfg.targets)} match no module of this model "
                         f"(routed_experts and shared_experts need a MoE decoder: stage 2)")
    return done


def _adapters(model: nn.Module):
    """(base tensor path without '.weight', adapter module, kind) for every adapter."""
    from train.model.moe import MoE

    for path, m in model.named_modules():
        if isinstance(m, LoraLinear):
            yield path, m, "linear"
        elif isinstance(m, MoE) and m.lora is not None:
            for n in _STACKED:
                yield f"{path}.{n}", m.lora[n], "stacked"


def has_lora(model: nn.Module) -> bool:
    """Whether the model carries any adapter."""
    return next(_adapters(model), None) is not None


@torch.no_grad()
def merge_lora(model: nn.Module) -> None:
    """Fold each adapter into its base weight (W += B @ A * alpha / rank, summed in float32
    and rounded once to W's dtype) and remove the adapters: the model is plain again, with
    its original modules and parameter names."""
    from train.model.moe import MoE

    for path, m in list(model.named_modules()):
        if isinstance(m, LoraLinear):
            m.weight.copy_((m.weight.float() + m.delta()).to(m.weight.dtype))
            parent, name = _parent(model, path)
            setattr(parent, name, m.to_linear())
        elif isinstance(m, MoE) and m.lora is not None:
            for n in _STACKED:
                w = getattr(m, n)
                w.copy_((w.float() + m.lora[n].delta()).to(w.dtype))
            m.lora = None


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter tensors alone, ``<base path>.lora_A.weight`` / ``.lora_B.weight``, in
    float32 (layout in the module docstring). Detached views of the live parameters."""
    out = {}
    for path, m, _kind in _adapters(model):
        out[f"{path}.lora_A.weight"] = m.lora_A.weight.detach()
        out[f"{path}.lora_B.weight"] = m.lora_B.weight.detach()
    return out


@torch.no_grad()
def load_adapter_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "adapters") -> None:
    """Copy adapter tensors (as :func:`adapter_state_dict` names them) into a model that
    :func:`apply_lora` has wrapped with the same targets and rank. Every adapter must be
    given, with its shape; ``source`` names the file in errors."""
    own = {f"{path}.lora_{ab}.weight": getattr(m, f"lora_{ab}").weight
           for path, m, _kind in _adapters(model) for ab in ("A", "B")}
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(f"{source}: missing adapter keys {missing[:5]}, unexpected keys {unexpected[:5]} "
                         f"({len(missing)} and {len(unexpected)} in all): another LoRA target set?")
    for k, p in own.items():
        if tuple(state[k].shape) != tuple(p.shape):
            raise ValueError(f"{source}: {k} has shape {tuple(state[k].shape)}, this model's adapter is "
                             f"{tuple(p.shape)}: another LoRA rank?")
        p.copy_(state[k])


def adapter_base_key(key: str) -> str:
    """The state-dict name of the base tensor an adapter key belongs to
    (``decoder.blocks.0.attn.q.lora_A.weight`` -> ``decoder.blocks.0.attn.q.weight``;
    ``decoder.blocks.1.mlp.w_gate_up.lora_B.weight`` -> ``decoder.blocks.1.mlp.w_gate_up``)."""
    for suffix in (".lora_A.weight", ".lora_B.weight"):
        if key.endswith(suffix):
            path = key[: -len(suffix)]
            return path if path.rpartition(".")[2] in _STACKED else path + ".weight"
    raise ValueError(f"{key}: not an adapter key (ends in .lora_A.weight or .lora_B.weight)")


def trainable_count(model: nn.Module) -> int:
    """Parameters that will train (requires_grad), each counted once."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())
