"""Open a generated dataset (a run directory, a split folder or one shard file) for inspection.

The shard list comes from ``synth.catalog`` (manifest.json first, never a glob), so files
that are not shards are ignored with a warning and an incomplete run is refused unless
``allow_incomplete``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from synth.catalog import Catalog, ShardRef, open_catalog, read_table
from synth.shards import MANIFEST, join


def list_shards(location: str, allow_incomplete: bool = False) -> tuple[list[ShardRef], dict[str, Any] | None]:
    """The shards of a dataset in order and its manifest (None for a single file or a
    folder without one)."""
    cat = open_catalog(location, allow_incomplete=allow_incomplete)
    return cat.shards, cat.manifest


def catalog(location: str, allow_incomplete: bool = False) -> Catalog:
    """The dataset's catalog (shards, splits, manifest, ignored files)."""
    return open_catalog(location, allow_incomplete=allow_incomplete)


def iter_rows(location: str, columns: list[str] | None = None,
              allow_incomplete: bool = False) -> Iterator[tuple[ShardRef, int, dict[str, Any]]]:
    """Every row of a dataset as (shard, row index within shard, row dict)."""
    shards, _ = list_shards(location, allow_incomplete)
    for ref in shards:
        table = read_table(ref, columns)
        index = 0
        for batch in table.to_batches():
            for row in batch.to_pylist():
                yield ref, index, row
                index += 1
        del table


def find_row(location: str, key: str, allow_incomplete: bool = False) -> dict[str, Any]:
    """A row by its id, or by its global position (an integer) in shard order."""
    if key.isdigit():
        target, seen = int(key), 0
        for _, _, row in iter_rows(location, allow_incomplete=allow_incomplete):
            if seen == target:
                return row
            seen += 1
        raise KeyError(f"{location}: only {seen} rows, no row #{target}")
    for _, _, row in iter_rows(location, allow_incomplete=allow_incomplete):
        if row["id"] == key:
            return row
    raise KeyError(f"{location}: no row with id {key!r} (ids look like <recipe>/<shard>/<row>, e.g. 'demo/00000/00003')")


def table_of(ref: ShardRef) -> pa.Table:
    """Load one shard."""
    return read_table(ref)


__all__ = ["ShardRef", "catalog", "list_shards", "iter_rows", "find_row", "table_of", "MANIFEST", "join"]
