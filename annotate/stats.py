"""What a dataset holds, counted in one pass: rows per family, records per task, region
labels, image sizes, target lengths and what OCR 1.0 pages hold (``annotate stats`` and
the HTML report)."""

from __future__ import annotations

import json
import statistics
from typing import Any

from annotate import prompts
from annotate.dataset import iter_rows, list_shards
from synth.cli import DataError

STATS_COLUMNS = ["family", "records", "width", "height", "image", "regions", "truth"]


def summary(values: list[int]) -> dict[str, int] | None:
    """min, median and max of ``values`` (None when there are none)."""
    if not values:
        return None
    return {"min": min(values), "median": int(statistics.median(values)), "max": max(values)}


def show_summary(s: dict[str, int] | None) -> str:
    """A :func:`summary` as ``min 1  median 2  max 3`` (``-`` for none)."""
    return "-" if s is None else f"min {s['min']}  median {s['median']}  max {s['max']}"


def row_truth(row: dict[str, Any]) -> dict[str, Any]:
    """A row's truth as a dict (stored as JSON text)."""
    truth = row.get("truth")
    truth = json.loads(truth) if isinstance(truth, str) else truth
    return truth if isinstance(truth, dict) else {}


def look(truth: dict[str, Any]) -> str:
    """A page's look: photo, scan or clean; ``-`` for rows that have no realism setting."""
    realism = truth.get("realism")
    if not isinstance(realism, dict):
        return "-"
    return "photo" if realism.get("photo") else "scan" if realism.get("scan") else "clean"


class PageFeatures:
    """Counts of what OCR 1.0 pages hold, from each row's truth and free-OCR record."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}
        self.formulas = 0
        self.listings = 0

    def _count(self, key: str, value: object) -> None:
        c = self.counts.setdefault(key, {})
        c[str(value)] = c.get(str(value), 0) + 1

    def add(self, row: dict) -> None:
        """Count one ocr1 row."""
        truth = row_truth(row)
        self._count("lang", truth.get("lang"))
        self._count("columns", truth.get("columns"))
        self._count("font", truth.get("font"))
        self._count("page", truth.get("page", {}).get("size"))
        self._count("look", look(truth))
        self._count("inner_page", bool(truth.get("inner_page")))
        self._count("watermark", truth.get("watermark") is not None)
        self._count("hyphenated", bool(truth.get("hyphenated")))
        free = [r["target"] for r in row.get("records") or () if r["task"] == prompts.TASK_FREE]
        n = (free[0] if free else "").count("\\( ")
        self._count("inline_math", n > 0)
        self.formulas += n
        k = sum(r["label"] == "text" and r["text"].startswith("```") for r in row.get("regions") or ())
        self._count("code", k > 0)
        self.listings += k

    def summary(self) -> dict:
        """Per feature, pages per value (most frequent first), and the totals of inline
        formulas and code listings."""
        if not self.counts:
            return {}
        out: dict = {k: dict(sorted(c.items(), key=lambda kv: -kv[1])) for k, c in self.counts.items()}
        out["inline_formulas"] = self.formulas
        out["code_listings"] = self.listings
        return out


def dataset_stats(location: str, allow_incomplete: bool = False) -> dict[str, Any]:
    """Everything ``annotate stats`` reports, numbers as numbers.

    Raises DataError when ``location`` holds no shard (an empty or wrong folder).
    """
    shards, manifest = list_shards(location, allow_incomplete)
    if not shards:
        raise DataError(f"{location}: no shards here (no manifest.json listing any, no data-*-of-*.arrow)")
    fams: dict[str, int] = {}
    tasks: dict[str, list[int]] = {}
    labels: dict[str, dict[str, int]] = {}
    widths, heights, img_bytes = [], [], []
    rows = 0
    pages = PageFeatures()
    for _, _, row in iter_rows(location, columns=STATS_COLUMNS, allow_incomplete=allow_incomplete):
        rows += 1
        fams[row["family"]] = fams.get(row["family"], 0) + 1
        if row["family"] == "ocr1":
            pages.add(row)
        for region in row.get("regions") or ():
            counts = labels.setdefault(row["family"], {})
            counts[region["label"]] = counts.get(region["label"], 0) + 1
        for rec in row["records"]:
            tasks.setdefault(rec["task"], []).append(len(rec["target"]))
        if row["image"] is not None:
            widths.append(row["width"])
            heights.append(row["height"])
            img_bytes.append(len(row["image"]["bytes"]))
    return {
        "dataset": location,
        "shards": len(shards),
        "rows": rows,
        "complete": None if manifest is None else manifest.get("complete"),
        "families": {k: {"rows": v, "share": round(v / rows, 4) if rows else 0.0} for k, v in sorted(fams.items())},
        "tasks": {k: {"records": len(v), "target_chars": summary(v)} for k, v in sorted(tasks.items())},
        "region_labels": {f: dict(sorted(c.items(), key=lambda kv: -kv[1])) for f, c in sorted(labels.items())},
        "image_width": summary(widths),
        "image_height": summary(heights),
        "image_bytes": summary(img_bytes),
        "ocr1_pages": pages.summary(),
    }


def format_stats(out: dict[str, Any]) -> list[str]:
    """The text report of :func:`dataset_stats`, line by line."""
    lines = [f"{out['dataset']}: {out['shards']} shards, {out['rows']} rows, complete={out['complete']}", "families:"]
    for k, v in out["families"].items():
        lines.append(f"  {k:<10} {v['rows']:>7} rows  {100 * v['share']:5.1f}%")
    lines.append("tasks (records, target length in characters):")
    for k, v in out["tasks"].items():
        lines.append(f"  {k:<28} {v['records']:>7}  {show_summary(v['target_chars'])}")
    for fam, counts in out["region_labels"].items():
        lines.append(f"{fam} region labels (regions per label):")
        lines.append("  " + ", ".join(f"{label} {n}" for label, n in counts.items()))
    lines.append(f"image width   {show_summary(out['image_width'])}")
    lines.append(f"image height  {show_summary(out['image_height'])}")
    lines.append(f"image bytes   {show_summary(out['image_bytes'])}")
    if out["ocr1_pages"]:
        lines.append("ocr1 pages (pages per value; formulas and listings in all):")
        for k, v in out["ocr1_pages"].items():
            shown = ", ".join(f"{a} {n}" for a, n in v.items()) if isinstance(v, dict) else str(v)
            lines.append(f"  {k:<16} {shown}")
    return lines
