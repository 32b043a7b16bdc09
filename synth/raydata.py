"""Read the shards with Ray Data, which has no Arrow-IPC reader of its own.

    import ray
    from synth.raydata import read_shards
    ds = read_shards("/data/run1")      # a directory, a file, a list, or s3://...
    ds.take(2)

``ArrowStreamDatasource`` is a Ray ``FileBasedDatasource`` that yields one block per
record batch of each ``.arrow`` stream file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
from ray.data.datasource.file_based_datasource import FileBasedDatasource


class ArrowStreamDatasource(FileBasedDatasource):
    """Ray Data datasource for Arrow IPC stream files (the engine's shard format)."""

    _FILE_EXTENSIONS = ["arrow"]

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        reader = ipc.open_stream(f)
        for batch in reader:
            yield pa.Table.from_batches([batch], schema=reader.schema)


def read_shards(paths: str | list[str], **read_kwargs: Any):
    """A ``ray.data.Dataset`` over shard files or directories of shards."""
    import ray.data

    return ray.data.read_datasource(ArrowStreamDatasource(paths, file_extensions=["arrow"]), **read_kwargs)
