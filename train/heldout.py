"""Held-out loss during training (``--eval-data``): the LM loss on shards the run never trains on.

The held-out set is a fixed subset of examples (``eval_examples`` of them, drawn by the run's
seed), dealt to ranks by row and evaluated in every listed resolution mode. Each rank runs
its share through the bare model (no DDP hooks, no collectives per batch) and one
all-reduce sums loss and token counts, so the figure is the token-mean loss over the same
examples whatever the number of ranks.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import numpy as np
import torch

from train import distributed as dist_util
from train.data import Collator, OCRDataset
from train.tokenizer import IGNORE_INDEX


class HeldOut:
    """This rank's batches of the held-out subset: one list per distinct mode of ``dataset.cfg.modes``
    (``modes``), each of (example, mode column) keys, or example indices with one mode."""

    def __init__(self, dataset: OCRDataset, batch_size: int, examples: int = 0, seed: int = 0,
                 rank: int = 0, world: int = 1):
        if len(dataset) == 0:
            raise ValueError("--eval-data: the held-out shards hold no examples (after --tasks)")
        # A mode listed twice (to be drawn more often in training) is evaluated once.
        self.dataset, self.modes = dataset, tuple(dict.fromkeys(dataset.cfg.modes))
        columns = [dataset.cfg.modes.index(mode) for mode in self.modes]
        chosen = np.arange(len(dataset))
        if 0 < examples < len(dataset):
            chosen = np.sort(np.random.default_rng([seed, 3]).permutation(len(dataset))[:examples])
        mine = chosen[dataset.groups[chosen] % world == rank]
        lengths = dataset.lengths if dataset.lengths.ndim == 2 else dataset.lengths[:, None]
        self.n_examples = len(chosen)
        self.batches: list[list[list[Any]]] = []
        for m in columns:
            order = mine[np.argsort(lengths[mine, m], kind="stable")]  # similar lengths, little padding
            keys = order.tolist() if lengths.shape[1] == 1 else [(i, m) for i in order.tolist()]
            self.batches.append([keys[b:b + batch_size] for b in range(0, len(keys), batch_size)])


@torch.no_grad()
def heldout_loss(model: torch.nn.Module, held: HeldOut, device: torch.device, autocast: Any = None) -> dict[str, Any]:
    """Token-mean LM loss (MoE balance loss excluded) over the held-out set, per mode and overall."""
    from train.loop import vision_to

    t0 = time.perf_counter()
    was_training = model.training
    model.eval()
    collate = Collator(held.dataset.tok.pad_id)
    sums = torch.zeros(2 * len(held.modes), dtype=torch.float64)
    try:
        for m, batches in enumerate(held.batches):
            for keys in batches:
                b = collate([held.dataset[k] for k in keys])
                with autocast or contextlib.nullcontext():
                    out = model(input_ids=b["input_ids"].to(device), attention_mask=b["attention_mask"].to(device),
                                vision=vision_to(b["vision"], device), labels=b["labels"].to(device))
                n = int((b["labels"][:, 1:] != IGNORE_INDEX).sum())
                aux = out.aux_loss if out.aux_loss is not None else 0.0
                sums[2 * m] += float(out.loss - aux) * n
                sums[2 * m + 1] += n
    finally:
        model.train(was_training)
    dist_util.all_reduce_sum(sums)
    loss, tokens = sums[0::2], sums[1::2]
    rec: dict[str, Any] = {
        "eval_loss": float(loss.sum() / tokens.sum().clamp(min=1)),
        "eval_tokens": int(tokens.sum()),
        "eval_examples": held.n_examples,
    }
    if len(held.modes) > 1:
        rec["eval_loss_by_mode"] = {mode: float(loss[m] / tokens[m].clamp(min=1)) for m, mode in enumerate(held.modes)}
    rec["eval_s"] = time.perf_counter() - t0
    return rec
