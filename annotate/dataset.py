"""Open a generated dataset (a run directory or single shard files) for inspection."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from synth.shards import MANIFEST, join, open_table, read_manifest, resolve_filesystem


@dataclass(frozen=True)
class ShardRef:
    """One shard file of a dataset."""

    name: str
    uri: str


def _uri(base_uri: str, name: str) -> str:
    # Keep a URI's query (s3://b/dir?endpoint_override=...) after the file name.
    head, sep, query = base_uri.partition("?")
    return head.rstrip("/") + "/" + name + sep + query


def list_shards(location: str) -> tuple[list[ShardRef], dict[str, Any] | None]:
    """The shard files of a run directory (sorted) and its manifest, or one .arrow file."""
    fs, path = resolve_filesystem(location)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{location}: no such file or directory")
    if info.type == pafs.FileType.File:
        return [ShardRef(info.base_name, location)], None
    manifest = read_manifest(fs, path)
    entries = fs.get_file_info(pafs.FileSelector(path))
    names = sorted(e.base_name for e in entries if e.type == pafs.FileType.File and e.base_name.endswith(".arrow"))
    base_uri = location if "://" in location else path
    return [ShardRef(n, _uri(base_uri, n)) for n in names], manifest


def iter_rows(location: str, columns: list[str] | None = None) -> Iterator[tuple[ShardRef, int, dict[str, Any]]]:
    """Every row of a dataset as (shard, row index within shard, row dict)."""
    shards, _ = list_shards(location)
    for ref in shards:
        table = open_table(ref.uri)
        if columns is not None:
            table = table.select([c for c in columns if c in table.column_names])
        index = 0
        for batch in table.to_batches():
            for row in batch.to_pylist():
                yield ref, index, row
                index += 1
        del table


def find_row(location: str, key: str) -> dict[str, Any]:
    """A row by its id, or by its global position (an integer) in shard order."""
    if key.isdigit():
        target, seen = int(key), 0
        for _, _, row in iter_rows(location):
            if seen == target:
                return row
            seen += 1
        raise KeyError(f"{location}: only {seen} rows, no row #{target}")
    for _, _, row in iter_rows(location):
        if row["id"] == key:
            return row
    raise KeyError(f"{location}: no row with id {key!r} (ids look like <recipe>/<shard>/<row>, e.g. 'demo/00000/00003')")


def table_of(ref: ShardRef) -> pa.Table:
    """Load one shard."""
    return open_table(ref.uri)


__all__ = ["ShardRef", "list_shards", "iter_rows", "find_row", "table_of", "MANIFEST", "join"]
