"""Probing an optional fast kernel once per device before training uses it."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)


def probe_once(cache: dict[str, bool], device: torch.device | str, kernel: str, fallback: str,
               compare: Callable[[torch.device], tuple[torch.Tensor, torch.Tensor]], tol: float = 2e-2) -> bool:
    """Whether ``kernel`` runs on ``device`` and agrees with its reference, answered once
    per device and kept in ``cache``.

    ``compare(device)`` returns (kernel output, reference output); it runs without autograd.
    Any failure to build or run the kernel, or a relative error of ``tol`` or more, is
    logged with ``fallback`` (what is used instead) and answers False. The trainer calls
    this before ``torch.compile``, so compiled code sees a constant, not a try/except.
    """
    key = str(torch.device(device))
    if key not in cache:
        ok = False
        try:
            with torch.no_grad():
                got, ref = (t.double() for t in compare(torch.device(device)))
            err = ((got - ref).norm() / ref.norm()).item()
            ok = err < tol
            if not ok:
                log.warning("%s disagrees with %s on %s (relative error %.3g); using %s",
                            kernel, fallback, key, err, fallback)
        except Exception as exc:  # noqa: BLE001 - any failure to build the kernel means: do not use it
            log.warning("%s unavailable on %s (%s); using %s", kernel, key, exc, fallback)
        cache[key] = ok
    return cache[key]
