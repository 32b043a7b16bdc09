"""``python -m synth RECIPE --out DIR``: generate a recipe's shards (see README)."""

from __future__ import annotations

import argparse
import json
import sys

from synth.recipe import RecipeError, load_recipe
from synth.runner import EXECUTORS, RunError, generate_dataset


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
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    try:
        recipe = load_recipe(args.recipe, overrides={"shards": args.shards, "rows_per_shard": args.rows_per_shard, "seed": args.seed})
        manifest = generate_dataset(recipe, args.out, workers=args.workers, executor=args.executor, progress=not args.no_progress)
    except (RecipeError, RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"out": args.out, "complete": manifest["complete"], **manifest["totals"]}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
