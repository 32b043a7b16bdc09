"""The dataset inspection CLI: ``python -m annotate {stats,show,sheet,report,verify} DATASET``.

Exit codes (synth.cli): 0 done, 1 bad or empty data, 2 usage (a path that does not
exist, an unknown row id, options that contradict each other); errors are one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from annotate.dataset import find_row, list_shards
from synth.cli import DataError, Parser, UsageError, run, show_defaults


def _existing(args: argparse.Namespace) -> str:
    """The dataset argument when it exists (a usage error naming it otherwise); an
    incomplete run is refused unless ``--allow-incomplete``."""
    location = args.dataset
    try:
        list_shards(location, args.allow_incomplete)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    return location


def cmd_stats(args: argparse.Namespace) -> int:
    """Rows per family, records per task, region labels per family, image sizes, target lengths."""
    from annotate.stats import dataset_stats, format_stats

    out = dataset_stats(_existing(args), args.allow_incomplete)
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print("\n".join(format_stats(out)))
    return 0


def _overlay(row):
    from synth import families

    return families.annotator_module(row["family"]).overlay(row)


def cmd_show(args: argparse.Namespace) -> int:
    """Write one row's inspection picture and print its records."""
    try:
        row = find_row(_existing(args), args.id, allow_incomplete=args.allow_incomplete)
    except KeyError as exc:  # an id or row number the dataset does not have
        raise UsageError(exc.args[0] if exc.args else str(exc)) from None
    stem = f"show-{row['id'].replace('/', '_')}"
    if args.raw:  # the stored image bytes as they are: what a model is given
        data = (row.get("image") or {}).get("bytes")
        if data is None:
            raise DataError(f"{args.dataset}: row {row['id']} ({row['family']}) has no image")
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

    if args.random and args.offset:
        raise UsageError("--offset and --random: give one (--offset pages through the rows in order, "
                         "--random --seed N draws a sample)")
    from annotate.pick import pick_rows

    rows = pick_rows(_existing(args), args.n, args.family, args.offset, args.seed if args.random else None,
                     args.allow_incomplete)
    if not rows:
        what = f"rows of family {args.family}" if args.family else "rows"
        where = f" after the first {args.offset}" if args.offset else ""
        raise DataError(f"{args.dataset}: no {what}{where}")
    images = [_overlay(row) for row in rows]
    caps = [f"{row['id']} {row['family']}" for row in rows]
    out = Path(args.out)
    contact_sheet(images, caps, cell=args.cell, cols=args.cols).save(out)
    print(f"wrote {out} ({len(images)} samples)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """One self-contained HTML page: stats, per-family thumbnails with targets, looks, languages."""
    from annotate.report import write_report

    size = write_report(_existing(args), args.out, rows_per_family=args.rows_per_family, thumb=args.thumb,
                        seed=args.seed, max_target_chars=args.max_target_chars,
                        allow_incomplete=args.allow_incomplete)
    print(f"wrote {args.out} ({size / 1e6:.2f} MB)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0 when the dataset is sound; else print the problems and exit 1."""
    from annotate.verify import verify

    report = verify(_existing(args), max_problems=args.max_problems, allow_incomplete=args.allow_incomplete)
    for p in report.problems:
        print(f"BAD {p}")
    status = "OK" if report.ok else f"FAILED: {len(report.problems)} problems, {len(report.bad_rows)} bad rows"
    print(f"verify {args.dataset}: {report.shards} shards, {report.rows} rows: {status}")
    return 0 if report.ok else 1


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be >= 1")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: must be >= 0")
    return value


DATASET_HELP = "a run directory (local path or pyarrow URI such as s3://bucket/dir) or one .arrow shard"


def build_parser() -> argparse.ArgumentParser:
    """The CLI's parser: one subcommand per job, every option with its help and default."""
    ap = Parser(prog="python -m annotate", description="Inspect a generated dataset.")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    p = sub.add_parser("stats", help="rows per family/task, region labels, image sizes, target lengths",
                       description="Count what a dataset holds; exit 1 when it holds no shard.")
    p.add_argument("dataset", help=DATASET_HELP)
    p.add_argument("--json", action="store_true", help="print the counts as JSON (numbers as numbers)")
    p.set_defaults(fn=cmd_stats)
    p = sub.add_parser("show", help="draw one row's boxes/labels to a PNG and print its records")
    p.add_argument("dataset", help=DATASET_HELP)
    p.add_argument("id", help="row id (e.g. demo/00000/00003) or a global row number")
    p.add_argument("--out", help="PNG path (default: show-<id>.png)")
    p.add_argument("--raw", action="store_true",
                   help="write the stored image unchanged, no boxes (default path: show-<id>.jpg or .png)")
    p.set_defaults(fn=cmd_show)
    p = sub.add_parser("sheet", help="contact sheet of N samples as one PNG")
    p.add_argument("dataset", help=DATASET_HELP)
    p.add_argument("--n", type=_positive, default=16, help="samples on the sheet")
    p.add_argument("--family", default=None, help="only rows of this family (ocr1, chart, molecule, ...)")
    p.add_argument("--offset", type=_count, default=0, help="skip this many rows first (in shard order)")
    p.add_argument("--random", action="store_true", help="a random sample instead of the first rows")
    p.add_argument("--seed", type=int, default=0, help="the random sample's seed (with --random)")
    p.add_argument("--cols", type=_positive, default=4, help="thumbnails per row of the sheet")
    p.add_argument("--cell", type=_positive, default=768,
                   help="thumbnail cell size in pixels (768 keeps a page's body text legible)")
    p.add_argument("--out", default="sheet.png", help="PNG path")
    p.set_defaults(fn=cmd_sheet)
    p = sub.add_parser("report", help="one self-contained HTML page: stats and per-family samples",
                       description="Stats, then per family a few samples (boxes drawn), each with its "
                                   "targets, look and language; images inlined, no external file.")
    p.add_argument("dataset", help=DATASET_HELP)
    p.add_argument("--out", default="report.html", help="HTML path")
    p.add_argument("--rows-per-family", type=_positive, default=6, help="samples shown per family")
    p.add_argument("--thumb", type=_positive, default=512, help="longest side of a thumbnail in pixels (JPEG)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random sample of each family")
    p.add_argument("--max-target-chars", type=_positive, default=1500,
                   help="a longer target is cut there, saying how much was left out")
    p.set_defaults(fn=cmd_report)
    p = sub.add_parser("verify", help="schema, sha256 vs manifest, boxes, targets; exit 1 on problems")
    p.add_argument("dataset", help=DATASET_HELP)
    p.add_argument("--max-problems", type=_positive, default=1000, help="stop after this many problems")
    p.set_defaults(fn=cmd_verify)
    for p in sub.choices.values():
        p.add_argument("--allow-incomplete", action="store_true",
                       help="read the finished shards of a run that is not complete (refused by default)")
    return show_defaults(ap)


def _dispatch(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    return args.fn(args)


def main(argv: list[str] | None = None) -> int:
    """Entry point: the exit code, with what goes wrong printed as one line (synth.cli.run)."""
    return run(_dispatch, argv, prog="python -m annotate")


if __name__ == "__main__":
    sys.exit(main())
