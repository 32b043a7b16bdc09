"""Safetensors files read and written one tensor at a time.

Reading parses the header itself and reads each tensor with a plain file read into a
buffer the tensor then owns: unlike a memory map, pages of the file do not stay in the
process's resident set, so loading a 6.7 GB checkpoint holds the model plus one tensor.
Writing takes the list of (name, dtype, shape) first, writes the header, then streams the
tensors in that order: an export never holds the whole official state dict.
The format: 8 bytes little-endian header length N, N bytes of JSON
``{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`` (offsets
relative to the data after the header), then the data.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from train.official.config import OfficialFormatError

DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
NAMES = {v: k for k, v in DTYPES.items()}
MAX_HEADER = 100 * 2 ** 20


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives: file, dtype, shape and absolute byte range."""

    file: Path
    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int
    end: int


def read_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """The tensors of one safetensors file and its metadata; a truncated or malformed file
    is refused with one line saying what is wrong."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise OfficialFormatError(f"{path}: {size} bytes, too short for a safetensors file (truncated download?)")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER or 8 + n > size:
            raise OfficialFormatError(f"{path}: header of {n} bytes does not fit the {size}-byte file "
                                      f"(truncated or not a safetensors file)")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise OfficialFormatError(f"{path}: unreadable safetensors header ({exc})") from None
    meta = header.pop("__metadata__", None) or {}
    base = 8 + n
    out: dict[str, TensorInfo] = {}
    data_end = 0
    for name, d in header.items():
        if d.get("dtype") not in DTYPES:
            raise OfficialFormatError(f"{path}: tensor {name} has dtype {d.get('dtype')!r}; readable are {sorted(DTYPES)}")
        dtype, shape = DTYPES[d["dtype"]], tuple(int(s) for s in d["shape"])
        begin, end = (int(x) for x in d["data_offsets"])
        if end - begin != math.prod(shape) * dtype.itemsize:
            raise OfficialFormatError(f"{path}: tensor {name} of shape {list(shape)} {d['dtype']} spans "
                                      f"{end - begin} bytes (malformed header)")
        out[name] = TensorInfo(path, dtype, shape, base + begin, base + end)
        data_end = max(data_end, end)
    if base + data_end != size:
        raise OfficialFormatError(f"{path}: truncated: the header promises {base + data_end:,} bytes, the file has "
                                  f"{size:,} (an interrupted download? fetch the file again)")
    return out, meta


def read_tensor(info: TensorInfo) -> torch.Tensor:
    """One tensor, read into memory it owns (no memory map)."""
    n = info.end - info.start
    buf = bytearray(n)
    with open(info.file, "rb") as f:
        f.seek(info.start)
        if f.readinto(buf) != n:
            raise OfficialFormatError(f"{info.file}: short read at byte {info.start} (file changed while reading?)")
    if n == 0:
        return torch.empty(info.shape, dtype=info.dtype)
    return torch.frombuffer(buf, dtype=info.dtype).reshape(info.shape)


class SafetensorsWriter:
    """Writes a safetensors file whose tensors are announced up front and then streamed
    in the same order (see the module docstring)."""

    def __init__(self, path: Path, entries: list[tuple[str, torch.dtype, tuple[int, ...]]],
                 metadata: dict[str, str] | None = None):
        header: dict[str, object] = {"__metadata__": dict(metadata or {"format": "pt"})}
        offset = 0
        self.order: list[tuple[str, torch.dtype, tuple[int, ...]]] = []
        for name, dtype, shape in entries:
            nbytes = math.prod(shape) * dtype.itemsize
            header[name] = {"dtype": NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
            self.order.append((name, dtype, tuple(shape)))
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)  # data starts 8-byte aligned
        self.path, self.tmp = path, path.with_name(path.name + ".tmp")
        self.f = open(self.tmp, "wb")
        self.f.write(struct.pack("<Q", len(blob)) + blob)
        self.i = 0

    def write(self, name: str, t: torch.Tensor) -> None:
        """The next tensor (must be the next announced name, dtype and shape)."""
        want = self.order[self.i]
        if (name, t.dtype, tuple(t.shape)) != want:
            raise ValueError(f"SafetensorsWriter: got {name} {t.dtype} {list(t.shape)}, expected {want}")
        if t.numel():
            self.f.write(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)
        self.i += 1

    def abort(self) -> None:
        """Drop the unfinished file (after an error mid-write)."""
        self.f.close()
        if self.tmp.exists():
            os.unlink(self.tmp)

    def close(self) -> None:
        """Finish the file (renamed into place only when every tensor was written)."""
        self.f.close()
        if self.i != len(self.order):
            os.unlink(self.tmp)
            raise ValueError(f"SafetensorsWriter: {len(self.order) - self.i} tensors never written to {self.path}")
        os.replace(self.tmp, self.path)
