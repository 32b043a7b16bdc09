"""Arrow IPC stream shards, their Hugging Face metadata, and the run's manifest.

Layout of an output directory (any pyarrow filesystem: local path, ``s3://`` ...):

    data-00000-of-00004.arrow   Arrow IPC *stream* files, uncompressed, 100-row batches
    ...
    manifest.json               resolved recipe, code version, one entry per complete shard
    dataset_info.json           Hugging Face features (written when the run is complete)
    state.json                  lets ``datasets.load_from_disk(dir)`` open the directory

Every file is written to a temporary name and renamed into place, so a reader never sees
a partial shard, and a shard listed in manifest.json is complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.ipc as ipc

BATCH_ROWS = 100  # what `datasets` writes when images are present

_BOX = pa.list_(pa.int16())
SCHEMA_FIELDS = [
    pa.field("id", pa.string()),
    pa.field("family", pa.string()),
    pa.field("task", pa.string()),
    pa.field("prompt", pa.string()),
    pa.field("target", pa.string()),
    pa.field("records", pa.list_(pa.struct([("task", pa.string()), ("prompt", pa.string()), ("target", pa.string())]))),
    pa.field("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("regions", pa.list_(pa.struct([("label", pa.string()), ("box", _BOX), ("text", pa.string())]))),
    pa.field("lines", pa.list_(pa.struct([("text", pa.string()), ("box", _BOX)]))),
    pa.field("truth", pa.string()),
    pa.field("lang", pa.string()),
]


def _value(dtype: str) -> dict[str, str]:
    return {"dtype": dtype, "_type": "Value"}


def _list(feature: Any) -> dict[str, Any]:
    return {"feature": feature, "_type": "List"}


# The `datasets` (>= 4) features of SCHEMA, as Features.to_dict() writes them.
HF_FEATURES: dict[str, Any] = {
    "id": _value("string"),
    "family": _value("string"),
    "task": _value("string"),
    "prompt": _value("string"),
    "target": _value("string"),
    "records": _list({"task": _value("string"), "prompt": _value("string"), "target": _value("string")}),
    "image": {"_type": "Image"},
    "width": _value("int32"),
    "height": _value("int32"),
    "regions": _list({"label": _value("string"), "box": _list(_value("int16")), "text": _value("string")}),
    "lines": _list({"text": _value("string"), "box": _list(_value("int16"))}),
    "truth": _value("string"),
    "lang": _value("string"),
}

SCHEMA = pa.schema(SCHEMA_FIELDS, metadata={"huggingface": json.dumps({"info": {"features": HF_FEATURES}})})
MANIFEST = "manifest.json"
DATASET_DICT = "dataset_dict.json"


def shard_name(index: int, total: int) -> str:
    """``data-NNNNN-of-MMMMM.arrow``, the naming ``datasets.load_from_disk`` expects."""
    return f"data-{index:05d}-of-{total:05d}.arrow"


def shard_paths(total: int, splits: Sequence[tuple[str, int]] = ()) -> list[str]:
    """Each shard's path relative to the run directory, in shard order.

    Without splits: ``data-NNNNN-of-MMMMM.arrow``. With splits (consecutive shard ranges,
    in order): ``SPLIT/data-KKKKK-of-NNNNN.arrow``, numbered within the split, the layout
    of ``datasets.DatasetDict.save_to_disk``.
    """
    if not splits:
        return [shard_name(i, total) for i in range(total)]
    return [f"{name}/{shard_name(k, n)}" for name, n in splits for k in range(n)]


def resolve_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and path for a local path or a URI (s3://, gs://, file://, mock://)."""
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def join(base: str, name: str) -> str:
    """Join a directory and a file name on a pyarrow filesystem path."""
    return base.rstrip("/") + "/" + name


_INTS = {pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64}


def _buffer(a: np.ndarray) -> pa.Buffer:
    return pa.py_buffer(np.ascontiguousarray(a).tobytes())


def _column(values: list, typ: pa.DataType) -> pa.Array:
    """An Arrow array of ``values`` (Python objects, None for null) of type ``typ``, built
    from its buffers. ``pa.array`` and ``Table.from_pylist`` would do the same, but their
    first call imports pandas (0.2 s of every worker's start-up) to test for its types."""
    n = len(values)
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=n)
    nulls = int(n - valid.sum())
    validity = pa.py_buffer(np.packbits(valid, bitorder="little").tobytes()) if nulls else None
    if pa.types.is_string(typ) or pa.types.is_binary(typ):
        raw = [b"" if v is None else v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in values]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([len(r) for r in raw], out=offsets[1:])
        if offsets[-1] >= 2**31:
            raise ValueError(f"a shard's {typ} column holds {offsets[-1]} bytes, over Arrow's 2 GiB; "
                             "use fewer rows_per_shard")
        return pa.Array.from_buffers(typ, n, [validity, _buffer(offsets.astype(np.int32)), pa.py_buffer(b"".join(raw))],
                                     null_count=nulls)
    if typ in _INTS:
        data = np.asarray([0 if v is None else v for v in values], dtype=_INTS[typ])
        return pa.Array.from_buffers(typ, n, [validity, _buffer(data)], null_count=nulls)
    if pa.types.is_list(typ):
        items = [() if v is None else v for v in values]
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum([len(v) for v in items], out=offsets[1:])
        child = _column([x for v in items for x in v], typ.value_type)
        return pa.Array.from_buffers(typ, n, [validity, _buffer(offsets)], null_count=nulls, children=[child])
    if pa.types.is_struct(typ):
        children = [_column([None if v is None else v[f.name] for v in values], f.type) for f in typ]
        return pa.Array.from_buffers(typ, n, [validity], null_count=nulls, children=children)
    raise TypeError(f"shard column type {typ} has no builder; add one to synth.shards._column")


def encode_table(rows: list[dict[str, Any]]) -> bytes:
    """Serialise rows as an uncompressed Arrow IPC stream in ``BATCH_ROWS`` batches."""
    sink = io.BytesIO()
    with ipc.new_stream(sink, SCHEMA) as writer:
        for at in range(0, len(rows), BATCH_ROWS):
            part = rows[at:at + BATCH_ROWS]
            columns = [_column([r[f.name] for r in part], f.type) for f in SCHEMA]
            writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=SCHEMA))
    return sink.getvalue()


def write_temp(fs: pafs.FileSystem, path: str, data: bytes) -> str:
    """Write bytes to a fresh temporary sibling of ``path`` and return its path.

    A failed write (full disk, lost connection) removes what it left behind.
    """
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        with fs.open_output_stream(tmp) as out:
            out.write(data)
    except OSError as exc:  # say which file: pyarrow's message may not
        discard(fs, tmp)
        raise OSError(exc.errno, f"cannot write {path}: {' '.join(str(exc).split())}") from exc
    except BaseException:
        discard(fs, tmp)
        raise
    return tmp


def discard(fs: pafs.FileSystem, path: str) -> None:
    """Delete a file if it is there (best effort: a temporary left now is swept next run)."""
    try:
        fs.delete_file(path)
    except OSError:
        pass


def commit_temp(fs: pafs.FileSystem, tmp: str, path: str) -> None:
    """Rename a temporary onto ``path`` (removing the temporary if that fails)."""
    try:
        fs.move(tmp, path)
    except BaseException:
        discard(fs, tmp)
        raise


def atomic_write(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write bytes to a temporary sibling, then rename it onto ``path``."""
    commit_temp(fs, write_temp(fs, path, data), path)


@dataclass(frozen=True)
class ShardStats:
    """What a finished shard task reports back (small: never the data itself)."""

    index: int
    name: str
    rows: int
    bytes: int
    sha256: str
    tasks: dict[str, int]
    families: dict[str, int]
    seconds: float
    langs: dict[str, int] = field(default_factory=dict)

    def manifest_entry(self) -> dict[str, Any]:
        """The shard's entry in manifest.json."""
        return {
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "tasks": dict(sorted(self.tasks.items())),
            "families": dict(sorted(self.families.items())),
            "langs": dict(sorted(self.langs.items())),
        }


def count_tasks(rows: Iterable[dict[str, Any]]) -> tuple[dict[str, int], dict[str, int]]:
    """Records per task and rows per family."""
    tasks: dict[str, int] = {}
    fams: dict[str, int] = {}
    for row in rows:
        fams[row["family"]] = fams.get(row["family"], 0) + 1
        for rec in row["records"]:
            tasks[rec["task"]] = tasks.get(rec["task"], 0) + 1
    return tasks, fams


def count_langs(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Rows per language code (rows without one are not counted)."""
    out: dict[str, int] = {}
    for row in rows:
        if row.get("lang"):
            out[row["lang"]] = out.get(row["lang"], 0) + 1
    return out


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(fs: pafs.FileSystem, path: str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed in 1 MiB reads (never the whole file in memory)."""
    h = hashlib.sha256()
    with fs.open_input_stream(path) as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def read_file_bytes(fs: pafs.FileSystem, path: str) -> bytes:
    """Read a whole file from a pyarrow filesystem."""
    with fs.open_input_stream(path) as f:
        return f.read()


def open_table(uri: str) -> pa.Table:
    """Read one shard (memory-mapped when local) as a Table."""
    fs, path = resolve_filesystem(uri)
    if isinstance(fs, pafs.LocalFileSystem):
        with pa.memory_map(path, "r") as source:
            return ipc.open_stream(source).read_all()
    return ipc.open_stream(pa.py_buffer(read_file_bytes(fs, path))).read_all()


def read_manifest(fs: pafs.FileSystem, out_dir: str) -> dict[str, Any] | None:
    """The directory's manifest.json, or None when there is none."""
    path = join(out_dir, MANIFEST)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return None
    try:
        return json.loads(read_file_bytes(fs, path).decode("utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path}: manifest is not valid JSON ({exc}); move it away or pick another --out") from exc


def write_json(fs: pafs.FileSystem, path: str, obj: Any) -> None:
    """Atomically write pretty JSON."""
    atomic_write(fs, path, (json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode("utf-8"))


def write_hf_sidecars(fs: pafs.FileSystem, out_dir: str, shard_names: list[str], fingerprint: str, description: str,
                      split: str | None = None) -> None:
    """dataset_info.json and state.json so ``datasets.load_from_disk(out_dir)`` opens the shards
    (one directory: a ``Dataset``; ``split`` names it when it is one split of a ``DatasetDict``)."""
    info = {
        "description": description,
        "citation": "",
        "homepage": "",
        "license": "",
        "features": HF_FEATURES,
    }
    state = {
        "_data_files": [{"filename": n} for n in shard_names],
        "_fingerprint": fingerprint[:16],
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": split,
    }
    write_json(fs, join(out_dir, "dataset_info.json"), info)
    write_json(fs, join(out_dir, "state.json"), state)


def write_dataset_dict(fs: pafs.FileSystem, out_dir: str, splits: list[str]) -> None:
    """dataset_dict.json: ``datasets.load_from_disk(out_dir)`` then gives a ``DatasetDict``
    of the split folders (each of which has its own sidecars)."""
    write_json(fs, join(out_dir, DATASET_DICT), {"splits": list(splits)})
