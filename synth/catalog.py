"""Which files are a dataset's shards: the one answer every reader uses.

Readers (``synth.raydata``, the ``annotate`` CLI and ``verify``, the trainer's
``ShardSet``) never glob ``*.arrow``: a folder also collects files that are not shards,
such as the ``cache-<hash>.arrow`` that ``datasets`` writes after ``.map()`` or a killed
run's temporaries. :func:`open_catalog` takes the shard list

1. from ``manifest.json`` when there is one: the shards it lists, in shard order; a run
   it does not mark complete is refused unless ``allow_incomplete`` (``--allow-incomplete``);
   a listed shard that is missing or whose size differs is an error naming the file;
2. else from ``dataset_dict.json`` (a ``DatasetDict`` saved by ``datasets``): each split
   folder's ``data-*-of-*.arrow``;
3. else from ``data-NNNNN-of-MMMMM.arrow`` in the folder: all M of them must be there
   (else the set is incomplete, as above).

Every other ``.arrow`` file is ignored with a warning. A split folder of a run
(``DIR/test``) reads that split with the run's manifest; a single file is read as is.
Errors are :class:`CatalogError` (a ``ValueError``) and name the file at fault.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.ipc as ipc

from synth.shards import DATASET_DICT, MANIFEST, SCHEMA, join, open_table, read_file_bytes, resolve_filesystem, shard_paths

log = logging.getLogger("synth.catalog")

_SHARD = re.compile(r"^data-(\d{5})-of-(\d{5})\.arrow$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_WARNED: set[tuple[str, tuple[str, ...]]] = set()


class CatalogError(ValueError):
    """A dataset that cannot be read as it is; the message names the file and what to do."""


class IncompleteRun(CatalogError):
    """A run whose shards are not all there (refused unless ``allow_incomplete``)."""


@dataclass(frozen=True)
class ShardRef:
    """One shard of a dataset: its path in the dataset, where to open it, its manifest entry."""

    name: str  # relative to the dataset root: data-00000-of-00004.arrow or test/data-00000-of-00001.arrow
    uri: str
    split: str | None = None
    rows: int | None = None
    bytes: int | None = None
    sha256: str | None = None


@dataclass
class Catalog:
    """The shards of a dataset (or of one of its splits) and what was found around them."""

    location: str
    shards: list[ShardRef]
    manifest: dict[str, Any] | None = None
    splits: list[str] = field(default_factory=list)
    complete: bool = True
    expected: int | None = None  # shards the whole run should have (None: unknown)
    foreign: list[str] = field(default_factory=list)  # .arrow files that are not shards: ignored
    missing: list[str] = field(default_factory=list)  # listed in the manifest, not on disk
    resized: list[str] = field(default_factory=list)  # on disk with another size than listed


def _uri(location: str, base: str, name: str) -> str:
    """Where to open ``name`` of a dataset given as ``location`` (a URI keeps its query)."""
    if "://" not in location:
        return join(base, name)
    head, sep, query = location.partition("?")
    return head.rstrip("/") + "/" + name + sep + query


def _parent_location(location: str) -> str:
    head, sep, query = location.partition("?") if "://" in location else (location, "", "")
    return head.rstrip("/").rsplit("/", 1)[0] + sep + query


def _listing(fs: pafs.FileSystem, base: str, subdirs: list[str] | tuple[str, ...] = ()) -> dict[str, int]:
    """{relative path: size} of the files in base and its split folders (not a recursive walk)."""
    out: dict[str, int] = {}
    for sub in ("", *subdirs):
        for i in fs.get_file_info(pafs.FileSelector(join(base, sub) if sub else base, allow_not_found=True)):
            if i.type == pafs.FileType.File:
                out[f"{sub}/{i.base_name}" if sub else i.base_name] = i.size
    return out


def _is_candidate(rel: str) -> bool:
    # .arrow files count; temporaries of a live or killed writer and hidden files do not.
    last = rel.rsplit("/", 1)[-1]
    return last.endswith(".arrow") and ".tmp-" not in last and not last.startswith(".")


def _load_json(fs: pafs.FileSystem, path: str, what: str) -> Any:
    try:
        return json.loads(read_file_bytes(fs, path).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: {what} is not valid JSON ({exc})") from exc


def check_manifest(manifest: Any, path: str) -> dict[str, Any]:
    """``manifest`` if it has the structure readers rely on, else CatalogError naming the entry."""
    if not isinstance(manifest, dict):
        raise CatalogError(f"{path}: expected a JSON object with 'shards', 'complete' and 'recipe', "
                           f"got a JSON {type(manifest).__name__} ({json.dumps(manifest)[:40]})")
    shards = manifest.get("shards")
    if not isinstance(shards, dict):
        raise CatalogError(f"{path}: 'shards' must be an object of shard name -> entry, got {json.dumps(shards)[:40]}")
    for name, entry in shards.items():
        if not isinstance(entry, dict):
            raise CatalogError(f"{path}: shard entry {name!r} must be an object with rows, bytes, sha256")
        for key, ok in (("rows", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0),
                        ("bytes", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0),
                        ("sha256", lambda v: isinstance(v, str) and bool(_SHA256.match(v)))):
            if key not in entry:
                raise CatalogError(f"{path}: shard entry {name!r} has no {key!r} (each entry needs rows, bytes, sha256)")
            if not ok(entry[key]):
                raise CatalogError(f"{path}: shard entry {name!r} has an invalid {key!r}: {entry[key]!r}")
    return manifest


def _expected_paths(manifest: dict[str, Any]) -> tuple[list[str] | None, list[str]]:
    """The shard paths the manifest's recipe makes and its split names (None: unknown)."""
    recipe = manifest.get("recipe")
    if not isinstance(recipe, dict) or not isinstance(recipe.get("shards"), int):
        return None, []
    splits = recipe.get("splits") or {}
    if not isinstance(splits, dict):
        return None, []
    pairs = [(str(k), int(v)) for k, v in splits.items()]
    return shard_paths(recipe["shards"], pairs), [k for k, _ in pairs]


def _incomplete(location: str, have: int, want: int | None, manifest: dict[str, Any] | None,
                holder: dict[str, Any] | None) -> IncompleteRun:
    of = f"{have} of {want}" if want is not None else f"{have}"
    who = ""
    if holder:
        who = f"; a run is writing it now (host {holder.get('host')}, pid {holder.get('pid')})"
    again = ""
    if manifest and manifest.get("recipe_source"):
        again = f" finish it with `python -m synth {manifest['recipe_source']} --out {location}`, or"
    return IncompleteRun(f"{location}: incomplete run ({of} shards complete{who});{again} pass --allow-incomplete "
                         "(allow_incomplete=True) to read the finished shards")


def open_catalog(location: str, *, allow_incomplete: bool = False, split: str | None = None,
                 strict: bool = True, warn: bool = True) -> Catalog:
    """The shards of the dataset at ``location`` (a run directory, a split folder, one
    shard file; a local path or a pyarrow URI), in shard order.

    ``split`` selects one split of a run that has several. ``strict=False`` reports
    missing and resized shards in the catalog instead of raising (what ``verify`` wants).
    """
    try:
        fs, path = resolve_filesystem(location)
        info = fs.get_file_info(path)
    except (ValueError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise CatalogError(f"{location}: cannot open: {' '.join(str(exc).split())}") from exc
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{location}: no such file or directory")
    if info.type == pafs.FileType.File:
        return Catalog(location, [ShardRef(info.base_name, location, bytes=info.size)])
    present = _listing(fs, path)
    if MANIFEST in present:
        cat = _from_manifest(location, fs, path, present, strict)
    else:
        parent, name = path.rstrip("/").rsplit("/", 1) if "/" in path.rstrip("/") else ("", path)
        if parent and fs.get_file_info(join(parent, MANIFEST)).type == pafs.FileType.File:
            pm = _load_json(fs, join(parent, MANIFEST), MANIFEST)
            if isinstance(pm, dict) and name in _expected_paths(pm)[1]:  # DIR/test of a run with splits
                return open_catalog(_parent_location(location), allow_incomplete=allow_incomplete, split=name,
                                    strict=strict, warn=warn)
        cat = _from_files(location, fs, path, present)
    if warn and cat.foreign and (location, tuple(cat.foreign)) not in _WARNED:
        _WARNED.add((location, tuple(cat.foreign)))  # once per process: readers open a catalog more than once
        log.warning("%s: ignoring %d file(s) that are not shards of this dataset: %s", location, len(cat.foreign),
                    ", ".join(cat.foreign[:5]) + (" ..." if len(cat.foreign) > 5 else ""))
    if not cat.complete and not allow_incomplete:
        from synth.lease import current_holder

        raise _incomplete(location, len(cat.shards), cat.expected, cat.manifest, current_holder(fs, path))
    if split is not None:
        if split not in cat.splits:
            valid = ", ".join(cat.splits) if cat.splits else "none: this dataset has no splits"
            raise CatalogError(f"{location}: no split {split!r} (splits: {valid})")
        cat.shards = [s for s in cat.shards if s.split == split]
    return cat


def _from_manifest(location: str, fs: pafs.FileSystem, path: str, present: dict[str, int], strict: bool) -> Catalog:
    mpath = join(path, MANIFEST)
    manifest = check_manifest(_load_json(fs, mpath, MANIFEST), mpath)
    listed: dict[str, dict[str, Any]] = manifest["shards"]
    expected, splits = _expected_paths(manifest)
    subdirs = sorted({n.split("/", 1)[0] for n in listed if "/" in n} | set(splits))
    if subdirs:
        present = _listing(fs, path, subdirs)
    order = {p: i for i, p in enumerate(expected or [])}
    names = sorted(listed, key=lambda n: (order.get(n, len(order)), n))
    shards, missing, resized = [], [], []
    for name in names:
        e = listed[name]
        if name not in present:
            missing.append(name)
            continue
        if present[name] != e["bytes"]:
            resized.append(name)
        sp = name.split("/", 1)[0] if "/" in name else None
        shards.append(ShardRef(name, _uri(location, path, name), sp, e["rows"], e["bytes"], e["sha256"]))
    if strict and missing:
        raise CatalogError(f"{_uri(location, path, missing[0])}: listed in {MANIFEST} but missing"
                           + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                           + "; run the recipe again to regenerate it")
    if strict and resized:
        n = resized[0]
        raise CatalogError(f"{_uri(location, path, n)}: {present[n]} bytes but {MANIFEST} lists {listed[n]['bytes']}: "
                           "truncated or replaced; run the recipe again (it re-checks every shard) to regenerate it")
    foreign = sorted(n for n in present if _is_candidate(n) and n not in listed)
    complete = manifest.get("complete") is True and (expected is None or all(p in listed for p in expected))
    return Catalog(location, shards, manifest, splits, complete, len(expected) if expected else None, foreign,
                   missing, resized)


def _from_files(location: str, fs: pafs.FileSystem, path: str, present: dict[str, int]) -> Catalog:
    splits: list[str] = []
    if DATASET_DICT in present:  # saved by datasets.DatasetDict.save_to_disk
        dd = _load_json(fs, join(path, DATASET_DICT), DATASET_DICT)
        if not isinstance(dd, dict) or not isinstance(dd.get("splits"), list):
            raise CatalogError(f"{join(path, DATASET_DICT)}: expected {{\"splits\": [names]}}")
        splits = [str(s) for s in dd["splits"]]
        present = _listing(fs, path, splits)
    groups = [(s, s + "/") for s in splits] or [(None, "")]
    shards: list[ShardRef] = []
    taken: set[str] = set()
    complete, expected = True, 0
    for sp, prefix in groups:
        found: dict[int, list[tuple[int, str]]] = {}
        for rel in present:
            if not rel.startswith(prefix) or "/" in rel[len(prefix):]:
                continue
            m = _SHARD.match(rel[len(prefix):])
            if m:
                found.setdefault(int(m.group(2)), []).append((int(m.group(1)), rel))
        if len(found) > 1:
            sets = ", ".join(f"{n} files of {total}" for total, n in ((t, len(v)) for t, v in sorted(found.items())))
            raise CatalogError(f"{_uri(location, path, prefix) if prefix else location}: holds shards of several runs "
                               f"({sets}) and no {MANIFEST}; keep one set")
        for total, items in found.items():
            items.sort()
            expected += total
            complete = complete and len(items) == total and [i for i, _ in items] == list(range(total))
            for _, rel in items:
                shards.append(ShardRef(rel, _uri(location, path, rel), sp, bytes=present[rel]))
                taken.add(rel)
    foreign = sorted(n for n in present if _is_candidate(n) and n not in taken)
    return Catalog(location, shards, None, splits, complete, expected or None, foreign)


def schema_problems(schema: pa.Schema, expected: pa.Schema = SCHEMA) -> list[str]:
    """How ``schema`` differs from the engine's, column by column (empty when it does not)."""
    have = {f.name: f for f in schema}
    want = {f.name: f for f in expected}
    out = [f"extra column {n!r} ({have[n].type})" for n in have if n not in want]
    out += [f"missing column {n!r} ({want[n].type})" for n in want if n not in have]
    out += [f"column {n!r} is {have[n].type}, expected {want[n].type}" for n in want
            if n in have and not have[n].type.equals(want[n].type)]
    if not out and [f.name for f in schema] != [f.name for f in expected]:
        out.append(f"columns in another order: {', '.join(f.name for f in schema)}")
    return out


def read_table(ref: ShardRef, columns: list[str] | None = None, require: tuple[str, ...] = ()) -> pa.Table:
    """One shard as a Table (memory-mapped when local), optionally only ``columns`` that it
    has; an unreadable shard, or one without a ``require``d column, is a CatalogError
    naming the file (and the columns)."""
    try:
        table = open_table(ref.uri)
    except (pa.ArrowInvalid, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise CatalogError(f"{ref.uri}: shard file is missing") from exc
        raise CatalogError(f"{ref.uri}: not a readable Arrow IPC stream ({' '.join(str(exc).split())}); "
                           "the shard is truncated or corrupt: run the recipe again to regenerate it") from exc
    missing = [c for c in require if c not in table.column_names]
    if missing:
        raise CatalogError(f"{ref.uri}: not a shard of this engine: no column {', '.join(map(repr, missing))} "
                           f"({'; '.join(schema_problems(table.schema))})")
    if columns is not None:
        table = table.select([c for c in columns if c in table.column_names])
    return table


def read_schema(ref: ShardRef) -> pa.Schema:
    """A shard's schema without reading its rows."""
    fs, p = resolve_filesystem(ref.uri)
    try:
        with fs.open_input_stream(p) as f:
            return ipc.open_stream(f).schema
    except (pa.ArrowInvalid, OSError) as exc:
        raise CatalogError(f"{ref.uri}: not a readable Arrow IPC stream ({' '.join(str(exc).split())})") from exc
