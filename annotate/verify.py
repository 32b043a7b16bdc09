"""``verify``: prove a dataset is what its manifest says and every row is sound.

The shard list comes from ``synth.catalog`` (an incomplete run is refused unless
``allow_incomplete``; ``.arrow`` files that are not shards, such as ``datasets``' cache
files, are ignored with a warning). Checks, in order: the manifest lists every shard file
(an unlisted ``data-*-of-*.arrow`` is a problem); each shard's
bytes, sha256, row count and per-task counts match the manifest; the schema is the
engine's (Hugging Face metadata included); per row: unique id, known family, records
present and mirrored at top level, every box in 0-999 with x1 < x2 and y1 < y2, and the
family's own ``check`` (targets parse and agree with the structured truth, boxes on ink,
SMILES re-parse, tables match chart data, geometry matches its figure ...).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from formats.bins import valid_bin_box
from synth import families
from synth.catalog import open_catalog, schema_problems
from synth.shards import count_tasks, read_file_bytes, resolve_filesystem, sha256_hex

_SHARD_NAME = re.compile(r"^data-\d{5}-of-\d{5}\.arrow$")


@dataclass
class Problem:
    """One thing wrong, located as precisely as possible."""

    where: str  # shard name, or shard:row id
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Report:
    """Outcome of verify: counts and problems."""

    shards: int = 0
    rows: int = 0
    problems: list[Problem] = field(default_factory=list)
    bad_rows: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.problems


def _row_problems(row: dict[str, Any]) -> list[str]:
    out = []
    fam = row.get("family")
    if fam not in families.FAMILIES:
        return [f"family {fam!r} unknown; valid: {', '.join(families.known())}"]
    recs = row.get("records") or []
    if not recs:
        out.append("no records")
    elif (row["task"], row["prompt"], row["target"]) != (recs[0]["task"], recs[0]["prompt"], recs[0]["target"]):
        out.append("top-level task/prompt/target differ from records[0]")
    for kind in ("regions", "lines"):
        for i, item in enumerate(row.get(kind) or []):
            if not valid_bin_box(item["box"]):
                out.append(f"{kind}[{i}].box {item['box']} is not 4 bins in 0..999 with x1<x2, y1<y2")
    try:
        json.loads(row.get("truth") or "{}")
    except ValueError as exc:
        out.append(f"truth is not JSON: {exc}")
        return out
    try:
        out.extend(families.annotator_module(fam).check(row))
    except Exception as exc:  # a checker crash is a finding, not a verify crash
        out.append(f"{fam} check raised {type(exc).__name__}: {exc}")
    return out


def verify(location: str, max_problems: int = 1000, allow_incomplete: bool = False) -> Report:
    """Verify a run directory (or a split folder, or a single shard file).

    An incomplete run raises ``synth.catalog.IncompleteRun`` unless ``allow_incomplete``.
    """
    report = Report()
    cat = open_catalog(location, allow_incomplete=allow_incomplete, strict=False)
    shards, manifest = cat.shards, cat.manifest
    listed: dict[str, Any] = (manifest or {}).get("shards", {})
    if manifest is None and len(shards) != 1:
        report.problems.append(Problem(location, "no manifest.json: cannot check sha256 or counts"))
    for name in cat.missing:
        report.problems.append(Problem(name, "listed in manifest.json but the file is missing"))
    if manifest is not None:
        for name in cat.foreign:
            if _SHARD_NAME.match(name.rsplit("/", 1)[-1]):
                report.problems.append(Problem(name, "shard file not listed in manifest.json (another run's, or "
                                                     "written after this run's lease ended)"))
        expected = cat.expected
        if manifest.get("complete") and expected is not None and len(listed) != expected:
            report.problems.append(Problem("manifest.json", f"marked complete with {len(listed)} of {expected} shards"))
    seen_ids: dict[str, str] = {}
    for ref in shards:
        report.shards += 1
        fs, path = resolve_filesystem(ref.uri)
        data = read_file_bytes(fs, path)
        entry = listed.get(ref.name)
        if entry is not None:
            if len(data) != entry["bytes"]:
                report.problems.append(Problem(ref.name, f"size {len(data)} != manifest bytes {entry['bytes']} "
                                                         "(truncated or replaced)"))
            digest = sha256_hex(data)
            if digest != entry["sha256"]:
                report.problems.append(Problem(ref.name, f"sha256 {digest[:16]}... != manifest {entry['sha256'][:16]}..."))
        try:
            table = ipc.open_stream(pa.py_buffer(data)).read_all()
        except Exception as exc:
            report.problems.append(Problem(ref.name, f"not a readable Arrow IPC stream ({' '.join(str(exc).split())}): "
                                                     "truncated or corrupt"))
            continue
        diff = schema_problems(table.schema)
        if diff:
            report.problems.append(Problem(ref.name, "schema differs from the engine's: " + "; ".join(diff)))
            continue
        if b"huggingface" not in (table.schema.metadata or {}):
            report.problems.append(Problem(ref.name, "schema metadata lacks the 'huggingface' features key"))
        rows = table.to_pylist()
        report.rows += len(rows)
        if entry is not None:
            if len(rows) != entry["rows"]:
                report.problems.append(Problem(ref.name, f"{len(rows)} rows != manifest rows {entry['rows']}"))
            tasks, fams = count_tasks(rows)
            if tasks != entry.get("tasks"):
                report.problems.append(Problem(ref.name, f"task counts {tasks} != manifest {entry.get('tasks')}"))
        for i, row in enumerate(rows):
            where = f"{ref.name}:{i} ({row.get('id')})"
            if row["id"] in seen_ids:
                report.problems.append(Problem(where, f"duplicate id, also in {seen_ids[row['id']]}"))
            seen_ids[row["id"]] = where
            for msg in _row_problems(row):
                report.problems.append(Problem(where, msg))
                report.bad_rows.add(row.get("id"))
            if len(report.problems) >= max_problems:
                return report
    return report
