"""One shard task: generate, annotate and write ``rows_per_shard`` samples.

This is the unit of work for every executor (Ray task, process pool, in-process). It is
a pure function of (recipe, shard index): row ``r`` of shard ``s`` draws from
``SeedSequence([recipe.seed, s, r])``, so the bytes of a shard do not depend on which
worker made it, how many workers there are, or what ran before on that worker.

A worker never writes into a run it does not belong to: with a lease token it stops
between rows once its driver is gone, and it renames its finished temporary into place
only after checking that the run's lease is still the one that started it
(``synth.lease``). A worker of a killed run therefore leaves at most a temporary, which
the next run sweeps.
"""

from __future__ import annotations

import gc
import os
import threading
import time

import numpy as np

from synth import families
from synth.lease import LeaseLost, LeaseToken
from synth.recipe import Recipe, row_families
from synth.rows import sample_to_row
from synth.shards import ShardStats, commit_temp, count_langs, count_tasks, discard, encode_table, join, resolve_filesystem, sha256_hex, write_temp


class GenerationError(RuntimeError):
    """A generator or annotator failed on one row; the message says which and with what seed."""


def row_rng(recipe: Recipe, shard: int, row: int) -> np.random.Generator:
    """The generator of one row: a pure function of (recipe seed, shard, row)."""
    return np.random.default_rng(np.random.SeedSequence([recipe.seed, shard, row]))


def make_row(recipe: Recipe, shard: int, row: int, family: str) -> dict:
    """Generate and annotate one sample and return its stored row."""
    fam = families.load(family)
    entry = next(e for e in recipe.mixture if e.family == family)
    sample_id = f"{recipe.name}/{shard:05d}/{row:05d}"
    try:
        sample = fam.generator.generate(entry.config, row_rng(recipe, shard, row))
        records = fam.annotator.records(sample)
    except Exception as exc:  # re-raised with the coordinates needed to reproduce it
        raise GenerationError(
            f"{sample_id}: family {family!r} failed (recipe {recipe.source}, seed {recipe.seed}, "
            f"shard {shard}, row {row}): {type(exc).__name__}: {exc}"
        ) from exc
    return sample_to_row(sample_id, sample, records)


_gc_settled = False
# Whether this process exists to make shards (a pool worker, a Ray worker, the synth CLI):
# only then is its GC frozen. A user's program that runs the runner in-process keeps its
# own GC as it was.
_dedicated = False


def dedicate_process() -> None:
    """Mark this process as one that exists to make shards (see ``settle_gc``)."""
    global _dedicated
    _dedicated = True


def _is_dedicated() -> bool:
    if _dedicated:
        return True
    import sys

    main = str(getattr(sys.modules.get("__main__"), "__file__", "") or "").replace(os.sep, "/")
    return "/ray/_private/workers/" in main  # a Ray worker process (Ray runs default_worker.py)


def settle_gc(force: bool = False) -> None:
    """Once per shard-making process (or with ``force``), after its first row: collect,
    then freeze what is alive.

    By then the process holds its imports, fonts, text models and pools: some 160,000
    objects that live as long as it does, which every full collection of Python's cyclic
    GC would walk again (about 0.6 ms a page of OCR 1.0). Frozen, they are left out of
    collections; what later rows make is collected as before."""
    global _gc_settled
    if not _gc_settled and (force or _is_dedicated()):
        _gc_settled = True
        gc.collect()
        gc.freeze()


def _maybe_inject_fault(shard: int) -> None:
    # Test hooks, inert unless the variables are set. SYNTH_FAULT_SHARD + SYNTH_FAULT_MARKER:
    # crash this worker process once for that shard (the executor must retry system
    # failures). SYNTH_FAIL_SHARD: row 0 of that shard raises, every time (a generator bug).
    # SYNTH_SLOW_ROW_S: sleep that long before each row (cancel tests need a slow run).
    marker, target = os.environ.get("SYNTH_FAULT_MARKER"), os.environ.get("SYNTH_FAULT_SHARD")
    if marker and target is not None and int(target) == shard and not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os._exit(17)


def _test_delay() -> None:
    delay = os.environ.get("SYNTH_SLOW_ROW_S")
    if delay:
        time.sleep(float(delay))


def _should_fail(shard: int, row: int) -> bool:
    target = os.environ.get("SYNTH_FAIL_SHARD")
    return target is not None and target != "" and int(target) == shard and row == 0


def build_shard(recipe: Recipe, shard: int, out_uri: str, token: LeaseToken | None = None) -> ShardStats:
    """Generate shard ``shard`` of ``recipe`` and write it atomically under ``out_uri``.

    With ``token``, stop (LeaseLost) as soon as the run's driver is gone, and commit the
    shard only while the run still holds its lease.
    """
    t0 = time.perf_counter()
    _maybe_inject_fault(shard)
    fams = row_families(recipe, shard)
    rows = []
    for r, fam in enumerate(fams):
        if token is not None:
            gone = token.driver_gone()
            if gone:
                raise LeaseLost(f"shard {shard} abandoned: {gone}")
        _test_delay()
        if _should_fail(shard, r):
            raise GenerationError(
                f"{recipe.name}/{shard:05d}/{r:05d}: family {fam!r} failed (recipe {recipe.source}, seed {recipe.seed}, "
                f"shard {shard}, row {r}): RuntimeError: SYNTH_FAIL_SHARD={shard} (test hook)")
        rows.append(make_row(recipe, shard, r, fam))
        settle_gc()
    data = encode_table(rows)
    fs, base = resolve_filesystem(out_uri)
    name = recipe.shard_paths[shard]
    path = join(base, name)
    tmp = write_temp(fs, path, data)
    if token is not None:
        problem = token.problem(fs, base)
        if problem:
            discard(fs, tmp)
            raise LeaseLost(f"shard {shard} not committed: the run {problem}")
    commit_temp(fs, tmp, path)
    tasks, fam_counts = count_tasks(rows)
    return ShardStats(shard, name, len(rows), len(data), sha256_hex(data), tasks, fam_counts, time.perf_counter() - t0,
                      count_langs(rows))


def watch_parent(poll_s: float = 0.2) -> None:
    """Process-pool initializer: ignore Ctrl-C (the driver decides) and exit as soon as
    the driver process is gone, so a killed driver leaves no workers behind."""
    import signal

    dedicate_process()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:  # reparented: the driver died
                os._exit(1)

    threading.Thread(target=watch, name="synth-parent-watch", daemon=True).start()
