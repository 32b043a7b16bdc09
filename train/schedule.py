"""Learning-rate schedule: linear warm-up, then cosine decay to a floor."""

from __future__ import annotations

import math


def lr_at(step: int, base_lr: float, warmup: int, total: int, min_ratio: float = 0.1) -> float:
    """Learning rate for optimizer step ``step`` (0-based).

    Rises linearly from base_lr/warmup to base_lr over ``warmup`` steps, then follows a
    half cosine from base_lr down to ``min_ratio * base_lr`` at step ``total``; stays at
    the floor after that.
    """
    if base_lr < 0 or warmup < 0 or total < 1:
        raise ValueError(f"bad schedule: base_lr={base_lr}, warmup={warmup}, total={total} (need lr>=0, warmup>=0, total>=1)")
    if step < warmup:
        return base_lr * (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    floor = base_lr * min_ratio
    return floor + (base_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
