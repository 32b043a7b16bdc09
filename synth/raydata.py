"""Read the shards with Ray Data, which has no Arrow-IPC reader of its own.

    import ray
    from synth.raydata import read_shards
    ds = read_shards("/data/run1")                            # rows as stored (image = {bytes, path})
    ds = read_shards("/data/run1", decode_images="numpy")     # image = HxWx3 uint8 array, like ray.data.read_images
    ds = read_shards("/data/run1/test", decode_images="pil")  # one split; image = PIL.Image
    ds.take(2)

The shard list comes from ``synth.catalog`` (manifest.json, never a glob): files that are
not shards are ignored with a warning, and an incomplete run is refused unless
``allow_incomplete=True``. Each shard becomes one block (a shard is a few hundred rows;
``ds.repartition`` splits further). ``decode_images`` decodes the ``image`` column in the
read tasks: ``"numpy"`` gives RGB ``uint8`` arrays of shape (height, width, 3) in a tensor
column (variable-shaped when sizes differ, as ``ray.data.read_images`` does) and ``"pil"``
gives ``PIL.Image.Image`` objects (Ray stores them as Python objects); text-only rows
get None either way. ``image_mode`` ("RGB" by default, "L" ...) is the PIL mode images are
converted to first.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
from ray.data.datasource.file_based_datasource import FileBasedDatasource

DECODE = (None, "numpy", "pil")


def _decode(cells: list[Any], how: str, mode: str) -> list[Any]:
    import numpy as np
    from PIL import Image

    out: list[Any] = []
    for cell in cells:
        if cell is None or cell.get("bytes") is None:
            out.append(None)
            continue
        img = Image.open(io.BytesIO(cell["bytes"]))
        img = img.convert(mode) if img.mode != mode else img
        if how == "numpy":
            out.append(np.asarray(img))
        else:
            img.load()
            out.append(img)
    return out


class ArrowStreamDatasource(FileBasedDatasource):
    """Ray Data datasource for Arrow IPC stream files (the engine's shard format): one
    block per file, images optionally decoded."""

    _FILE_EXTENSIONS = ["arrow"]

    def __init__(self, paths: str | list[str], decode_images: str | None = None, image_mode: str = "RGB",
                 **kwargs: Any):
        if decode_images not in DECODE:
            raise ValueError(f"decode_images={decode_images!r}: valid are None, 'numpy', 'pil'")
        super().__init__(paths, **kwargs)
        self.decode_images, self.image_mode = decode_images, image_mode

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[Any]:
        try:
            table = ipc.open_stream(f).read_all()
        except pa.ArrowInvalid as exc:
            raise ValueError(f"{path}: not a readable Arrow IPC stream ({' '.join(str(exc).split())}); "
                             "the shard is truncated or corrupt") from exc
        if not self.decode_images or "image" not in table.column_names:
            yield table
            return
        from ray.data._internal.delegating_block_builder import DelegatingBlockBuilder

        batch = {name: table.column(name).to_pylist() if name == "image" else table.column(name).to_numpy(
            zero_copy_only=False) for name in table.column_names}
        batch["image"] = _decode(batch["image"], self.decode_images, self.image_mode)
        builder = DelegatingBlockBuilder()
        builder.add_batch(batch)
        yield builder.build()


def read_shards(paths: str | list[str], *, allow_incomplete: bool = False, split: str | None = None,
                decode_images: str | None = None, image_mode: str = "RGB", **read_kwargs: Any):
    """A ``ray.data.Dataset`` over the shards of a dataset (a run directory, a split folder,
    shard files, or a list of them; local or ``s3://`` ...), one block per shard.

    ``split`` picks one split of a run with splits; ``decode_images`` is None (stored
    ``{bytes, path}``), ``"numpy"`` or ``"pil"``; other keywords go to
    ``ray.data.read_datasource``.
    """
    import ray.data

    from synth.catalog import open_catalog

    files: list[str] = []
    for p in [paths] if isinstance(paths, str) else list(paths):
        files.extend(ref.uri for ref in open_catalog(p, allow_incomplete=allow_incomplete, split=split).shards)
    if not files:
        raise ValueError(f"{paths}: no shards to read")
    fs = None
    if "://" in files[0]:
        from synth.shards import resolve_filesystem

        fs, _ = resolve_filesystem(files[0])
        files = [resolve_filesystem(f)[1] for f in files]
    source = ArrowStreamDatasource(files, decode_images=decode_images, image_mode=image_mode, filesystem=fs,
                                   file_extensions=["arrow"])
    read_kwargs.setdefault("override_num_blocks", len(files))
    return ray.data.read_datasource(source, **read_kwargs)
