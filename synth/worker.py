"""One shard task: generate, annotate and write ``rows_per_shard`` samples.

This is the unit of work for every executor (Ray task, process pool, in-process). It is
a pure function of (recipe, shard index): row ``r`` of shard ``s`` draws from
``SeedSequence([recipe.seed, s, r])``, so the bytes of a shard do not depend on which
worker made it, how many workers there are, or what ran before on that worker.
"""

from __future__ import annotations

import os
import time

import numpy as np

from synth import families
from synth.recipe import Recipe, row_families
from synth.rows import sample_to_row
from synth.shards import ShardStats, atomic_write, count_tasks, encode_table, join, resolve_filesystem, sha256_hex, shard_name


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


def _maybe_inject_fault(shard: int) -> None:
    # Test hook: crash this worker process once for the named shard, to prove that the
    # executor retries system failures. Inert unless both variables are set.
    marker, target = os.environ.get("SYNTH_FAULT_MARKER"), os.environ.get("SYNTH_FAULT_SHARD")
    if marker and target is not None and int(target) == shard and not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os._exit(17)


def build_shard(recipe: Recipe, shard: int, out_uri: str) -> ShardStats:
    """Generate shard ``shard`` of ``recipe`` and write it atomically under ``out_uri``."""
    t0 = time.perf_counter()
    _maybe_inject_fault(shard)
    fams = row_families(recipe, shard)
    rows = [make_row(recipe, shard, r, fam) for r, fam in enumerate(fams)]
    data = encode_table(rows)
    fs, base = resolve_filesystem(out_uri)
    name = shard_name(shard, recipe.shards)
    atomic_write(fs, join(base, name), data)
    tasks, fam_counts = count_tasks(rows)
    return ShardStats(shard, name, len(rows), len(data), sha256_hex(data), tasks, fam_counts, time.perf_counter() - t0)
