"""A per-node disk cache of what the engine derives from installed files.

Parsing the English word chain (a 46 MB JSON), jieba's dictionary, or rendering the
equation and chart pools costs seconds (parsing the font faces and the hyphenation
patterns, a tenth of one), and every worker process used to pay it. Each
such product is built once per node (on first use, or ahead with ``python -m
synth.cache``) into a compact binary file of plain arrays, and every later process on
the node loads it in milliseconds.

- **Where:** ``$SYNTH_CACHE_DIR``, else ``$XDG_CACHE_HOME/synth``, else
  ``~/.cache/synth``. A directory that cannot be written is not an error: the product is
  built in memory, as before, and a warning says so once.
- **Which file:** named by a key, the sha256 of everything the product depends on (the
  builder's version, the installed source's size and modification time, library versions,
  the source code of the renderer...): a changed input gives a new file, never a stale one.
- **Checked by hash:** each file stores the sha256 of its own arrays, verified on every
  load; a file that fails it (cut short, overwritten) is rebuilt.
- **Same bytes either way:** a product is a set of numpy arrays, stored as their raw
  bytes, and callers build their objects from the arrays alone, so a loaded product
  and a freshly built one give the same pages.
- **Once per node:** a build runs under an exclusive file lock, so workers that start
  together build it once; files are written to a temporary name and renamed into place.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

ENV = "SYNTH_CACHE_DIR"
_DIGEST = "__sha256__"


def directory() -> Path:
    """The cache directory (not created here)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "synth"


def key(*parts) -> str:
    """A file key: the sha256 of the JSON of ``parts`` (anything the product depends on)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def file_stamp(path: str | os.PathLike) -> list:
    """An installed file's identity for a key: its path, size and modification time."""
    st = os.stat(path)
    return [str(path), st.st_size, st.st_mtime_ns]


@functools.lru_cache(maxsize=None)
def source_digest(*modules: str) -> str:
    """sha256 of the source files of the named modules or packages (every ``.py`` under a
    package), so a product rendered by that code is rebuilt when the code changes."""
    import importlib.util

    h = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            h.update(f"{name}:missing".encode())
            continue
        if spec.submodule_search_locations:
            root = Path(list(spec.submodule_search_locations)[0])
            files = sorted(root.rglob("*.py"))
        else:
            files = [Path(spec.origin)]
        for f in files:
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def library_versions(*names: str) -> dict[str, str]:
    """Installed versions of distributions (for keys of products they render)."""
    from importlib import metadata

    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = "missing"
    return out


_MAGIC = b"SYNTHCACHE2\n"


def _contiguous(a) -> np.ndarray:
    a = np.asarray(a)  # (np.ascontiguousarray would turn a 0-d array into a 1-d one)
    return a if a.flags.c_contiguous else a.copy(order="C")


def _payload_digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = _contiguous(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _read(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a product file, or None when it is missing, cut short or altered."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if not data.startswith(_MAGIC):
        return None
    try:
        end = data.index(b"\n", len(_MAGIC))
        header = json.loads(data[len(_MAGIC):end])
        body = memoryview(data)[end + 1:]
        arrays = {}
        for name, dtype, shape, start, stop in header["arrays"]:
            arrays[name] = np.frombuffer(body[start:stop], dtype=np.dtype(dtype)).reshape(shape)
    except (ValueError, KeyError, TypeError):
        return None
    if header.get("sha256") != _payload_digest(arrays):
        return None
    return arrays


def _write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a product file: a magic line, a JSON header line (each array's name, dtype,
    shape and byte range, and the sha256 of them all), then the arrays' raw bytes. A small
    file reads in tens of microseconds, where a ``.npz`` (a zip) costs a millisecond."""
    entries, chunks, at = [], [], 0
    for name in sorted(arrays):
        a = _contiguous(arrays[name])
        if a.dtype.hasobject:
            raise TypeError(f"cache product array {name!r} holds Python objects; use numbers, bytes or pack_strings")
        raw = a.tobytes()
        entries.append([name, a.dtype.str, list(a.shape), at, at + len(raw)])
        chunks.append(raw)
        at += len(raw)
    header = json.dumps({"arrays": entries, "sha256": _payload_digest(arrays)}).encode()
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC + header + b"\n")
            for raw in chunks:
                f.write(raw)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from other users' workers
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        finally:
            raise


@functools.lru_cache(maxsize=1)
def _warn_unwritable(where: str, why: str) -> None:
    warnings.warn(f"synth cache: {where} is not writable ({why}); products are built in memory in every "
                  f"process (set {ENV} to a writable directory)", RuntimeWarning, stacklevel=3)


class _NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


class _Lock:
    """An exclusive lock on ``path`` (a no-op where fcntl is missing)."""

    def __init__(self, path: Path):
        self.path, self.fd = path, None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # Windows: concurrent builders both build; the rename keeps one
            return self
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # closing releases the lock


def load_or_build(kind: str, file_key: str, build: Callable[[], dict[str, np.ndarray]],
                  lock: bool = True) -> dict[str, np.ndarray]:
    """The arrays of product ``kind`` under ``file_key``: loaded when a valid file exists,
    else built by ``build()`` and stored. With ``lock`` (for products that take seconds)
    the build runs under an exclusive lock, once per node; small products skip the lock
    file, and two processes may then both build one (the same arrays)."""
    folder = directory() / kind
    path = folder / f"{file_key}.bin"
    found = _read(path) if path.exists() else None
    if found is not None:
        return found
    try:
        folder.mkdir(parents=True, exist_ok=True)
        guard = _Lock(folder / f"{file_key}.lock") if lock else _NoLock()
        guard.__enter__()
    except OSError as exc:
        _warn_unwritable(str(folder), str(exc))
        return build()
    try:
        found = _read(path) if lock and path.exists() else None  # another process built it meanwhile
        if found is not None:
            return found
        arrays = {n: np.asarray(a) for n, a in build().items()}
        try:
            _write(path, arrays)
        except OSError as exc:
            _warn_unwritable(str(folder), str(exc))
        return arrays
    finally:
        guard.__exit__()


def pack_strings(strings) -> np.ndarray:
    """Strings (none holding a newline) as one UTF-8 byte array, for a product's arrays."""
    blob = "\n".join(strings)
    if len(blob.split("\n")) != len(strings):
        raise ValueError("pack_strings: a string holds a newline")
    return np.frombuffer(blob.encode("utf-8"), dtype=np.uint8)


def unpack_strings(a: np.ndarray) -> list[str]:
    """The strings of :func:`pack_strings`."""
    if a.size == 0:  # packing no strings and packing one empty string both give this
        return []
    return a.tobytes().decode("utf-8").split("\n")


def main(argv: list[str] | None = None) -> int:
    """``python -m synth.cache [--recipe R]``: build the node's products ahead of a run."""
    import argparse
    import time

    ap = argparse.ArgumentParser(prog="python -m synth.cache", description=(
        "Build the per-node cache (word chain, Chinese lexicon, code listings, equation, inline-formula "
        "and chart pools, the looks' noise tiles) so that workers start in about a second. Safe to run "
        "while workers run."))
    ap.add_argument("--recipe", help="warm the pools of this recipe's ocr1 configs (default: ocr1's defaults)")
    args = ap.parse_args(argv)
    from synth.ocr1 import pools

    configs = [None]
    if args.recipe:
        from synth.recipe import RecipeError, load_recipe

        try:
            recipe = load_recipe(args.recipe)
        except RecipeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        configs = [e.config for e in recipe.mixture if e.family == "ocr1"] or [None]
    t = time.perf_counter()
    for cfg in configs:
        pools.warm(cfg)
    print(f"synth cache: {directory()} ready in {time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
