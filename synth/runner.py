"""Plan a run, skip complete shards, execute the rest, keep manifest.json current.

Executors:
- ``ray``: one Ray task per shard (``ray.init()`` attaches to the job's cluster, to
  ``RAY_ADDRESS``, or starts a local one). Tasks are retried on worker crashes and on
  exceptions (``max_retries``, ``retry_exceptions``).
- ``local``: in-process for one worker, a process pool for more. No Ray needed (what the
  GPU machine uses).
Only the driver writes manifest.json, after each shard lands, so a killed run resumes
with every shard the manifest lists and regenerates the rest, byte for byte.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

import synth
from synth.recipe import Recipe, load_recipe
from synth.shards import (
    MANIFEST,
    ShardStats,
    join,
    read_manifest,
    resolve_filesystem,
    shard_name,
    write_hf_sidecars,
    write_json,
)
from synth.worker import build_shard

EXECUTORS = ("ray", "local")
MANIFEST_VERSION = 1


class RunError(RuntimeError):
    """A run that must not start (foreign output directory, bad --out ...)."""


def code_version() -> str:
    """Package version plus the git commit of the checkout when there is one."""
    version = synth.__version__
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if out.returncode == 0 and out.stdout.strip():
            version += "+g" + out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return version


def running_under_ray_job() -> bool:
    """True when this driver was started by ``ray job submit``."""
    # The job supervisor hands the entry point its job config (runtime env, submission id)
    # through this variable; nothing else sets it.
    return "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ


def resolve_out(out: str) -> str:
    """Absolute output location; a relative path is refused under ``ray job submit``.

    A job's entry point runs inside an extracted copy of ``--working-dir``, so a relative
    path would land in a temporary directory that Ray deletes.
    """
    if "://" in out:
        return out
    if not os.path.isabs(out) and running_under_ray_job():
        raise RunError(
            f"--out {out!r} is relative, and this runs under `ray job submit`, whose working directory "
            "is a temporary copy; give an absolute path (e.g. --out $PWD/{out}) or a URI such as s3://bucket/dir"
        )
    return os.path.abspath(out)


def _fresh_manifest(recipe: Recipe) -> dict[str, Any]:
    return {
        "format_version": MANIFEST_VERSION,
        "recipe": recipe.resolved(),
        "recipe_fingerprint": recipe.fingerprint(),
        "recipe_source": recipe.source,
        "code_version": code_version(),
        "generator_version": synth.GENERATOR_VERSION,
        "complete": False,
        "shards": {},
        "totals": {},
    }


def _totals(manifest: dict[str, Any]) -> dict[str, Any]:
    rows = sum(e["rows"] for e in manifest["shards"].values())
    size = sum(e["bytes"] for e in manifest["shards"].values())
    tasks: dict[str, int] = {}
    fams: dict[str, int] = {}
    for e in manifest["shards"].values():
        for k, v in e["tasks"].items():
            tasks[k] = tasks.get(k, 0) + v
        for k, v in e["families"].items():
            fams[k] = fams.get(k, 0) + v
    return {"rows": rows, "bytes": size, "tasks": dict(sorted(tasks.items())), "families": dict(sorted(fams.items()))}


def prepare_output(recipe: Recipe, out_uri: str) -> tuple[pafs.FileSystem, str, dict[str, Any], list[int]]:
    """Create or reopen the output directory; return (fs, path, manifest, pending shards).

    A directory holding another recipe's manifest, or shard files without a manifest, is
    refused. Shards listed in the manifest whose file is present with the listed size
    count as done; anything else is (re)generated.
    """
    fs, base = resolve_filesystem(out_uri)
    if fs.get_file_info(base).type == pafs.FileType.File:
        raise RunError(f"--out {out_uri}: is a file; give a directory (new or holding this recipe's shards)")
    try:
        fs.create_dir(base, recursive=True)
    except OSError as exc:
        raise RunError(f"--out {out_uri}: cannot create the output directory: {exc}") from exc
    manifest = read_manifest(fs, base)
    listing = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    present = {info.base_name: info.size for info in listing if info.type == pafs.FileType.File}
    for name in [n for n in present if ".tmp-" in n]:
        # A killed writer's temporary: never listed, never renamed, safe to sweep.
        fs.delete_file(join(base, name))
        del present[name]
    if manifest is None:
        strays = sorted(n for n in present if n.endswith(".arrow"))
        if strays:
            raise RunError(
                f"{out_uri}: holds shard files ({', '.join(strays[:3])}...) but no {MANIFEST}; "
                "refusing to mix them with this run: pick an empty --out"
            )
        manifest = _fresh_manifest(recipe)
    elif manifest.get("recipe_fingerprint") != recipe.fingerprint():
        other = manifest.get("recipe", {}).get("name", "?")
        raise RunError(
            f"{out_uri}: holds shards of a different recipe ({other!r}, fingerprint "
            f"{str(manifest.get('recipe_fingerprint'))[:12]}) than {recipe.source} ({recipe.name!r}, "
            f"fingerprint {recipe.fingerprint()[:12]}); refusing to overwrite: pick another --out"
        )
    else:
        manifest["code_version"] = code_version()
        manifest["generator_version"] = synth.GENERATOR_VERSION
    done = {}
    for name, entry in manifest["shards"].items():
        if present.get(name) == entry["bytes"]:
            done[name] = entry
    manifest["shards"] = done
    pending = [i for i in range(recipe.shards) if shard_name(i, recipe.shards) not in done]
    manifest["complete"] = not pending
    manifest["totals"] = _totals(manifest)
    write_json(fs, join(base, MANIFEST), manifest)
    return fs, base, manifest, pending


def _run_local(recipe: Recipe, pending: list[int], out_uri: str, workers: int) -> Iterator[ShardStats]:
    if workers <= 1:
        for shard in pending:
            yield build_shard(recipe, shard, out_uri)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: fork would copy a driver that may hold threads (tqdm, Ray) and font caches.
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(build_shard, recipe, shard, out_uri) for shard in pending]
        for fut in as_completed(futures):
            yield fut.result()


def _run_ray(recipe: Recipe, pending: list[int], out_uri: str, workers: int | None) -> Iterator[ShardStats]:
    import ray

    if not ray.is_initialized():
        init_kwargs: dict[str, Any] = {"logging_level": "WARNING", "log_to_driver": True}
        if not (os.environ.get("RAY_ADDRESS") or running_under_ray_job()):
            # Embedded local Ray: always a fresh one (address="local"), never a stale cluster
            # that /tmp/ray/ray_current_cluster still names; sized by --workers, with a small
            # object store (tasks return stats only). Attach to a running cluster with
            # RAY_ADDRESS or `ray job submit`.
            init_kwargs.update(address="local", num_cpus=workers or os.cpu_count() or 1,
                               object_store_memory=256 * 1024 * 1024, include_dashboard=False)
        ray.init(**init_kwargs)
    task = ray.remote(num_cpus=1, max_retries=3, retry_exceptions=True)(build_shard)
    limit = max(1, workers or int(ray.cluster_resources().get("CPU", 1))) * 2
    queue = list(pending)
    in_flight = []
    while queue or in_flight:
        while queue and len(in_flight) < limit:
            in_flight.append(task.remote(recipe, queue.pop(0), out_uri))
        ready, in_flight = ray.wait(in_flight, num_returns=1)
        yield ray.get(ready[0])


def generate_dataset(
    recipe: Recipe | str | os.PathLike,
    out: str,
    workers: int | None = None,
    executor: str = "local",
    progress: bool = False,
    on_shard: Callable[[ShardStats], None] | None = None,
) -> dict[str, Any]:
    """Generate (or finish) every shard of ``recipe`` under ``out``; return the manifest."""
    if executor not in EXECUTORS:
        raise RunError(f"executor {executor!r} is not one of {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise RunError(f"--workers must be >= 1, got {workers}")
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    out_uri = resolve_out(str(out))
    fs, base, manifest, pending = prepare_output(recipe, out_uri)
    bar = None
    if progress and pending:
        from tqdm import tqdm

        done_rows = manifest["totals"].get("rows", 0)
        bar = tqdm(total=recipe.shards, initial=recipe.shards - len(pending), unit="shard", desc=recipe.name, file=sys.stderr)
        bar.set_postfix(pages=done_rows)
    if not pending:
        runner: Iterator[ShardStats] = iter(())  # nothing to do: do not even start Ray
    elif executor == "ray":
        runner = _run_ray(recipe, pending, out_uri, workers)
    else:
        runner = _run_local(recipe, pending, out_uri, workers or 1)
    for stats in runner:
        # Per shard too: a resumed run may be made by newer code than its first shards.
        manifest["shards"][stats.name] = {**stats.manifest_entry(), "code_version": manifest["code_version"],
                                          "generator_version": synth.GENERATOR_VERSION}
        manifest["shards"] = dict(sorted(manifest["shards"].items()))
        manifest["totals"] = _totals(manifest)
        manifest["complete"] = len(manifest["shards"]) == recipe.shards
        write_json(fs, join(base, MANIFEST), manifest)
        if bar is not None:
            bar.set_postfix(pages=manifest["totals"]["rows"], refresh=False)
            bar.update(1)
        if on_shard is not None:
            on_shard(stats)
    if bar is not None:
        bar.close()
    if manifest["complete"]:
        names = [shard_name(i, recipe.shards) for i in range(recipe.shards)]
        write_hf_sidecars(fs, base, names, recipe.fingerprint(), recipe.description or recipe.name)
    return manifest
