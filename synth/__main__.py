"""``python -m synth RECIPE --out DIR``: generate a recipe's shards (see README).

Exit codes: 0 done; 1 the run failed (I/O, another run holds --out, a failing shard);
2 a usage error (bad flag, recipe or --out); 130 / 143 cancelled by Ctrl-C / SIGTERM.
Every error is one line (a failing shard: one paragraph), never a traceback.
"""

from __future__ import annotations

from synth.threads import one_thread_here

one_thread_here()  # before NumPy loads (synth.threads says why)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from synth.recipe import RecipeError, load_recipe  # noqa: E402
from synth.runner import EXECUTORS, RunCancelled, RunError, generate_dataset, stop_embedded_ray  # noqa: E402


def _split(text: str) -> tuple[str, int]:
    name, sep, count = text.partition("=")
    if not sep or not count.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=SHARDS, e.g. test=1")
    return name.strip(), int(count)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    ap = argparse.ArgumentParser(prog="python -m synth", description="Generate annotated Arrow shards from a recipe.")
    ap.add_argument("recipe", help="recipe YAML (see manifests/)")
    ap.add_argument("--out", required=True, help="output directory or pyarrow filesystem URI (s3://...)")
    ap.add_argument("--workers", type=int, default=None, help="parallel shard tasks (default: the cluster's CPUs)")
    ap.add_argument("--executor", choices=EXECUTORS, default="ray",
                    help="ray (default: attach to the job's cluster or RAY_ADDRESS, else start a local one) or local (no Ray)")
    ap.add_argument("--shards", type=int, default=None, help="override the recipe's shard count")
    ap.add_argument("--rows-per-shard", type=int, default=None, help="override the recipe's rows per shard")
    ap.add_argument("--seed", type=int, default=None, help="override the recipe's seed")
    ap.add_argument("--split", type=_split, action="append", default=None, metavar="NAME=SHARDS",
                    help="override the recipe's splits, in order: --split train=7 --split test=1 "
                         "(consecutive shard ranges; see docs/formats.md)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    overrides = {"shards": args.shards, "rows_per_shard": args.rows_per_shard, "seed": args.seed, "splits": args.split}
    try:
        recipe = load_recipe(args.recipe, overrides=overrides)
        manifest = generate_dataset(recipe, args.out, workers=args.workers, executor=args.executor, progress=not args.no_progress)
    except RecipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RunCancelled as exc:
        print(str(exc), file=sys.stderr)
        if "ray" in sys.modules and sys.modules["ray"].is_initialized():
            # Ray's graceful shutdown at exit takes seconds; the run is recorded and its lease
            # released, so end the embedded cluster's processes and exit now.
            stop_embedded_ray()
            sys.stderr.flush()
            os._exit(exc.exit_code)
        return exc.exit_code
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps({"out": args.out, "complete": manifest["complete"], **manifest["totals"]}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    from synth.worker import dedicate_process

    dedicate_process()  # this process exists to make shards: its GC may be frozen (synth.worker.settle_gc)
    sys.exit(main())
