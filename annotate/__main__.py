"""The dataset inspection CLI: ``python -m annotate {stats,show,sheet,verify} DATASET``."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from annotate import prompts
from annotate.dataset import find_row, iter_rows, list_shards


def _summary(values: list[int]) -> str:
    if not values:
        return "-"
    return f"min {min(values)}  median {int(statistics.median(values))}  max {max(values)}"


def cmd_stats(args: argparse.Namespace) -> int:
    """Rows per family, records per task, region labels per family, image sizes, target lengths."""
    shards, manifest = list_shards(args.dataset, args.allow_incomplete)
    fams: dict[str, int] = {}
    tasks: dict[str, list[int]] = {}
    labels: dict[str, dict[str, int]] = {}
    widths, heights, img_bytes = [], [], []
    rows = 0
    pages = _PageFeatures()
    cols = ["family", "records", "width", "height", "image", "regions", "truth"]
    for _, _, row in iter_rows(args.dataset, columns=cols, allow_incomplete=args.allow_incomplete):
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
    out = {
        "dataset": args.dataset,
        "shards": len(shards),
        "rows": rows,
        "complete": None if manifest is None else manifest.get("complete"),
        "families": {k: {"rows": v, "share": round(v / rows, 4)} for k, v in sorted(fams.items())},
        "tasks": {k: {"records": len(v), "target_chars": _summary(v)} for k, v in sorted(tasks.items())},
        "region_labels": {f: dict(sorted(c.items(), key=lambda kv: -kv[1])) for f, c in sorted(labels.items())},
        "image_width": _summary(widths),
        "image_height": _summary(heights),
        "image_bytes": _summary(img_bytes),
        "ocr1_pages": pages.summary(),
    }
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    print(f"{args.dataset}: {len(shards)} shards, {rows} rows, complete={out['complete']}")
    print("families:")
    for k, v in out["families"].items():
        print(f"  {k:<10} {v['rows']:>7} rows  {100 * v['share']:5.1f}%")
    print("tasks (records, target length in characters):")
    for k, v in out["tasks"].items():
        print(f"  {k:<28} {v['records']:>7}  {v['target_chars']}")
    for fam, counts in out["region_labels"].items():
        print(f"{fam} region labels (regions per label):")
        print("  " + ", ".join(f"{label} {n}" for label, n in counts.items()))
    print(f"image width   {out['image_width']}")
    print(f"image height  {out['image_height']}")
    print(f"image bytes   {out['image_bytes']}")
    if out["ocr1_pages"]:
        print("ocr1 pages (pages per value; formulas and listings in all):")
        for k, v in out["ocr1_pages"].items():
            print(f"  {k:<16} " + (", ".join(f"{a} {n}" for a, n in v.items()) if isinstance(v, dict) else str(v)))
    return 0


class _PageFeatures:
    """Counts of what OCR 1.0 pages hold, from each row's truth and free-OCR text."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}
        self.formulas = 0
        self.listings = 0

    def _count(self, key: str, value: object) -> None:
        c = self.counts.setdefault(key, {})
        c[str(value)] = c.get(str(value), 0) + 1

    def add(self, row: dict) -> None:
        """Count one ocr1 row."""
        truth = json.loads(row["truth"]) if isinstance(row["truth"], str) else (row["truth"] or {})
        self._count("lang", truth.get("lang"))
        self._count("columns", truth.get("columns"))
        self._count("font", truth.get("font"))
        self._count("page", truth.get("page", {}).get("size"))
        realism = truth.get("realism", {})
        self._count("look", "photo" if realism.get("photo") else "scan" if realism.get("scan") else "clean")
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


def _overlay(row):
    from synth import families

    return families.annotator_module(row["family"]).overlay(row)


def cmd_show(args: argparse.Namespace) -> int:
    """Write one row's inspection picture and print its records."""
    row = find_row(args.dataset, args.id, allow_incomplete=args.allow_incomplete)
    stem = f"show-{row['id'].replace('/', '_')}"
    if args.raw:  # the stored image bytes as they are: what a model is given
        data = (row.get("image") or {}).get("bytes")
        if data is None:
            print(f"{args.dataset}: row {row['id']} ({row['family']}) has no image", file=sys.stderr)
            return 1
        ext = ".jpg" if data[:2] == b"\xff\xd8" else ".png"
        out = Path(args.out or stem + ext)
        if out.suffix.lower() in ("", ext, ".jpeg" if ext == ".jpg" else ext):
            out.write_bytes(data)
        else:  # another format asked for by name: re-encode the same pixels
            import io

            from PIL import Image

            Image.open(io.BytesIO(data)).save(out)
    else:
        out = Path(args.out or stem + ".png")
        _overlay(row).save(out)
    print(f"id: {row['id']}  family: {row['family']}  size: {row['width']}x{row['height']}  lang: {row['lang']}")
    for rec in row["records"]:
        print(f"--- task: {rec['task']}")
        print(f"prompt: {rec['prompt']!r}")
        print("target:")
        print(rec["target"])
    print(f"wrote {out}")
    return 0


def cmd_sheet(args: argparse.Namespace) -> int:
    """A contact sheet of N samples (optionally of one family) as one PNG."""
    from annotate.draw import contact_sheet

    images, caps = [], []
    for _, _, row in iter_rows(args.dataset, allow_incomplete=args.allow_incomplete):
        if args.family and row["family"] != args.family:
            continue
        images.append(_overlay(row))
        caps.append(f"{row['id']} {row['family']}")
        if len(images) >= args.n:
            break
    if not images:
        print(f"error: no rows{' of family ' + args.family if args.family else ''} in {args.dataset}", file=sys.stderr)
        return 1
    out = Path(args.out)
    contact_sheet(images, caps, cell=args.cell, cols=args.cols).save(out)
    print(f"wrote {out} ({len(images)} samples)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0 when the dataset is sound; else print the problems and exit 1."""
    from annotate.verify import verify

    report = verify(args.dataset, max_problems=args.max_problems, allow_incomplete=args.allow_incomplete)
    for p in report.problems:
        print(f"BAD {p}")
    status = "OK" if report.ok else f"FAILED: {len(report.problems)} problems, {len(report.bad_rows)} bad rows"
    print(f"verify {args.dataset}: {report.shards} shards, {report.rows} rows: {status}")
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(prog="python -m annotate", description="Inspect a generated dataset.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("stats", help="rows per family/task, image sizes, target lengths")
    p.add_argument("dataset")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_stats)
    p = sub.add_parser("show", help="draw one row's boxes/labels to a PNG and print its records")
    p.add_argument("dataset")
    p.add_argument("id", help="row id (e.g. demo/00000/00003) or a global row number")
    p.add_argument("--out", help="PNG path (default show-<id>.png)")
    p.add_argument("--raw", action="store_true",
                   help="write the stored image unchanged, no boxes (default show-<id>.jpg or .png)")
    p.set_defaults(fn=cmd_show)
    p = sub.add_parser("sheet", help="contact sheet of N samples")
    p.add_argument("dataset")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--family", default=None)
    p.add_argument("--cols", type=int, default=4)
    p.add_argument("--cell", type=int, default=320)
    p.add_argument("--out", default="sheet.png")
    p.set_defaults(fn=cmd_sheet)
    p = sub.add_parser("verify", help="schema, sha256 vs manifest, boxes, targets; non-zero exit on problems")
    p.add_argument("dataset")
    p.add_argument("--max-problems", type=int, default=1000)
    p.set_defaults(fn=cmd_verify)
    for p in sub.choices.values():
        p.add_argument("--allow-incomplete", action="store_true",
                       help="read the finished shards of a run that is not complete (refused by default)")
    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
