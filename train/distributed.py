"""torch.distributed set-up for the trainer: one entry point alone or under torchrun.

Under torchrun the environment carries RANK/WORLD_SIZE/LOCAL_RANK; the backend is NCCL
on CUDA and gloo on CPU. Without those variables everything degrades to one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run."""

    rank: int
    world: int
    local_rank: int
    device: torch.device
    cuda_allocator: str | None = None  # the caching allocator's settings on CUDA

    @property
    def main(self) -> bool:
        """True on the process that writes logs and checkpoints."""
        return self.rank == 0


def init(device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun; pick this process's device.

    device: "auto" (CUDA when available), "cpu" or "cuda".
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device={device!r}: valid values are auto, cpu, cuda")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for but torch.cuda.is_available() is False")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    allocator = None
    if use_cuda:
        allocator = expandable_segments()
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistInfo(rank, world, local, dev, allocator)


ALLOC_ENV = ("PYTORCH_ALLOC_CONF", "PYTORCH_CUDA_ALLOC_CONF")


def expandable_segments() -> str:
    """Give the CUDA caching allocator expandable segments, unless PYTORCH_ALLOC_CONF (or
    its older name) configures it; return the allocator settings in effect.

    Length-bucketed batches bring new tensor sizes every step, and fixed-size segments
    fragment under them: a paper-config run on an H200 ran out of memory with 19 GiB
    reserved but unusable (docs/gpu.md run 3). Expandable segments grow one mapping instead.
    """
    for name in ALLOC_ENV:
        if os.environ.get(name):
            return os.environ[name]
    settings = "expandable_segments:True"
    setter = getattr(torch._C, "_accelerator_setAllocatorSettings", None)  # torch >= 2.9
    if setter is None:
        setter = torch.cuda.memory._set_allocator_settings
    setter(settings)
    return settings


def active() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """Wait for every rank (no-op alone)."""
    if active():
        dist.barrier()


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks in place and return it (identity alone).

    NCCL reduces only CUDA tensors, so a CPU tensor (log counters) goes through the GPU there.
    """
    if active():
        if dist.get_backend() == "nccl" and x.device.type != "cuda":
            y = x.to(torch.device("cuda", torch.cuda.current_device()))
            dist.all_reduce(y, op=dist.ReduceOp.SUM)
            x.copy_(y)
        else:
            dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def cleanup() -> None:
    """Leave the process group if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
