"""Plan a run, skip complete shards, execute the rest, keep manifest.json current.

Executors:
- ``ray``: one Ray task per shard (``ray.init()`` attaches to the job's cluster, to
  ``RAY_ADDRESS``, or starts a local one). Tasks are retried on worker crashes and on I/O
  errors (``max_retries``, ``retry_exceptions=[OSError]``), never on a generator's error:
  generation is deterministic, so it would fail again.
- ``local``: in-process for one worker, a process pool for more. No Ray needed (what the
  GPU machine uses).

Only the driver writes manifest.json, after each shard lands, so a killed run resumes
with every shard the manifest lists (each re-checked against its sha256) and regenerates
the rest, byte for byte.

The run's lifecycle (docs/formats.md, "Runs"):
1. everything that can be checked without writing is checked first (recipe, ``--out``, a
   foreign manifest): a refused run touches nothing;
2. the driver takes the output's lease (``synth.lease``); a live run there refuses this one;
3. only then are a killed writer's temporaries swept and the manifest (re)written;
4. Ctrl-C or SIGTERM stops the run within a second or two: in-flight shards are abandoned
   (their workers are killed; temporaries are swept next time), finished ones are in the
   manifest, and ``RunCancelled`` says how many and how to resume (exit 130 / 143);
5. a failing shard stops the run the same way, with the failing row's id and seed;
6. the lease is released; a complete run gets its Hugging Face sidecars and dataset card.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
from concurrent.futures.process import BrokenProcessPool
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

import synth
from synth.lease import Lease, LeaseHeld, LeaseLost, LeaseToken
from synth.recipe import Recipe, load_recipe
from synth.shards import (
    MANIFEST,
    ShardStats,
    discard,
    file_sha256,
    join,
    read_manifest,
    resolve_filesystem,
    write_dataset_dict,
    write_hf_sidecars,
    write_json,
)
from synth.threads import one_thread_children
from synth.worker import GenerationError, build_shard, watch_parent

EXECUTORS = ("ray", "local")
MANIFEST_VERSION = 1
POLL_S = 0.25  # how often a waiting driver wakes up to notice a signal

log = logging.getLogger("synth.runner")


class RunError(RuntimeError):
    """A run that must not start (foreign output directory, bad --out ...): a usage error."""

    exit_code = 2


class RunFailed(RunError):
    """A run that could not go on: I/O failure, another run's lease, a failing shard."""

    exit_code = 1


class RunCancelled(RunError):
    """A run stopped by Ctrl-C or SIGTERM; the message says how far it got."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class _Cancelled(KeyboardInterrupt):
    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (pyarrow and Ray messages span several)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


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
    """Absolute output location; an empty, unknown-scheme or (under ``ray job submit``)
    relative one is refused.

    A job's entry point runs inside an extracted copy of ``--working-dir``, so a relative
    path would land in a temporary directory that Ray deletes.
    """
    if not out or not out.strip():
        raise RunError("--out is empty: give an output directory or a URI such as s3://bucket/dir")
    if "://" in out:
        try:
            resolve_filesystem(out)
        except (ValueError, OSError) as exc:  # pyarrow: ArrowInvalid for an unknown scheme
            raise RunError(f"--out {out!r}: {one_line(exc)}; give a local path or a pyarrow filesystem URI "
                           "(s3://, gs://, hdfs://, file://)") from exc
        return out
    if not os.path.isabs(out) and running_under_ray_job():
        raise RunError(
            f"--out {out!r} is relative, and this runs under `ray job submit`, whose working directory "
            f"is a temporary copy; give an absolute path (e.g. --out $PWD/{out}) or a URI such as s3://bucket/dir"
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
    sums: dict[str, dict[str, int]] = {"tasks": {}, "families": {}, "langs": {}}
    for e in manifest["shards"].values():
        for key, acc in sums.items():
            for k, v in (e.get(key) or {}).items():
                acc[k] = acc.get(k, 0) + v
    return {"rows": rows, "bytes": size, **{k: dict(sorted(v.items())) for k, v in sums.items()}}


def _listing(fs: pafs.FileSystem, base: str, subdirs: list[str] | tuple[str, ...] = ()) -> dict[str, int]:
    """{path relative to base: size} of the files in base and in its split folders
    ``subdirs`` (never a recursive walk: --out may be a big existing directory)."""
    out: dict[str, int] = {}
    for sub in ("", *subdirs):
        where = join(base, sub) if sub else base
        for i in fs.get_file_info(pafs.FileSelector(where, allow_not_found=True)):
            if i.type == pafs.FileType.File:
                out[f"{sub}/{i.base_name}" if sub else i.base_name] = i.size
    return out


def _split_dirs(recipe: Recipe, manifest: Any) -> list[str]:
    """Split folders of this recipe and of the run a manifest describes."""
    names = [n for n, _ in recipe.splits]
    if isinstance(manifest, dict):
        names += [str(k) for k in ((manifest.get("recipe") or {}).get("splits") or {})]
    return list(dict.fromkeys(names))


def _is_shard_file(rel: str) -> bool:
    return rel.endswith(".arrow") and ".tmp-" not in rel


def _refusal(recipe: Recipe, manifest: dict[str, Any] | None, present: dict[str, int], out_uri: str) -> str | None:
    """Why ``out_uri`` must not take this recipe's shards, or None."""
    if manifest is None:
        strays = sorted(n for n in present if _is_shard_file(n))
        if strays:
            return (f"{out_uri}: holds shard files ({', '.join(strays[:3])}...) but no {MANIFEST}; "
                    "refusing to mix them with this run: pick an empty --out")
        return None
    if not isinstance(manifest, dict):
        return f"{out_uri}/{MANIFEST}: not a run manifest (a JSON {type(manifest).__name__}); move it away or pick another --out"
    if manifest.get("recipe_fingerprint") == recipe.fingerprint():
        return None
    if not manifest.get("shards") and not any(_is_shard_file(n) for n in present):
        return None  # a run that failed before its first shard: nothing of it to keep
    other = (manifest.get("recipe") or {}).get("name", "?")
    return (f"{out_uri}: holds shards of a different recipe ({other!r}, fingerprint "
            f"{str(manifest.get('recipe_fingerprint'))[:12]}) than {recipe.source} ({recipe.name!r}, "
            f"fingerprint {recipe.fingerprint()[:12]}); refusing to overwrite: pick another --out")


def _read_manifest(fs: pafs.FileSystem, base: str) -> dict[str, Any] | None:
    try:
        return read_manifest(fs, base)
    except ValueError as exc:
        raise RunError(str(exc)) from exc


def open_output(recipe: Recipe, out_uri: str) -> tuple[pafs.FileSystem, str]:
    """Check ``out_uri`` for this recipe without writing anything, then create it."""
    fs, base = resolve_filesystem(out_uri)
    kind = fs.get_file_info(base).type
    if kind == pafs.FileType.File:
        raise RunError(f"--out {out_uri}: is a file; give a directory (new or holding this recipe's shards)")
    if kind == pafs.FileType.Directory:
        manifest = _read_manifest(fs, base)
        why = _refusal(recipe, manifest, _listing(fs, base, _split_dirs(recipe, manifest)), out_uri)
        if why:
            raise RunError(why)
    try:
        fs.create_dir(base, recursive=True)
    except OSError as exc:
        raise RunFailed(f"--out {out_uri}: cannot create the output directory: {one_line(exc)}") from exc
    return fs, base


def prepare_output(recipe: Recipe, fs: pafs.FileSystem, base: str, out_uri: str) -> tuple[dict[str, Any], list[int]]:
    """Under the lease: sweep temporaries, keep the listed shards whose sha256 still
    matches, write the manifest; return it and the shards still to make."""
    manifest = _read_manifest(fs, base)
    present = _listing(fs, base, _split_dirs(recipe, manifest))
    why = _refusal(recipe, manifest, present, out_uri)  # again: it may have changed before we held the lease
    if why:
        raise RunError(why)
    for name in [n for n in present if ".tmp-" in n]:
        # A killed writer's temporary: never listed, never renamed, safe to sweep now that
        # this run holds the lease.
        discard(fs, join(base, name))
        del present[name]
    if manifest is None or manifest.get("recipe_fingerprint") != recipe.fingerprint():
        manifest = _fresh_manifest(recipe)
    else:
        manifest["code_version"] = code_version()
        manifest["generator_version"] = synth.GENERATOR_VERSION
    done = {}
    for name, entry in manifest["shards"].items():
        if present.get(name) != entry.get("bytes"):
            if name in present:
                log.warning("%s: size differs from %s; regenerating it", name, MANIFEST)
            continue
        if file_sha256(fs, join(base, name)) != entry.get("sha256"):
            log.warning("%s: sha256 differs from %s (corrupt or replaced); regenerating it", name, MANIFEST)
            continue
        done[name] = entry
    manifest["shards"] = done
    paths = recipe.shard_paths
    pending = [i for i in range(recipe.shards) if paths[i] not in done]
    manifest["complete"] = not pending
    manifest["totals"] = _totals(manifest)
    for name, _ in recipe.splits:
        fs.create_dir(join(base, name), recursive=True)
    write_json(fs, join(base, MANIFEST), manifest)
    return manifest, pending


class _CancelSignals:
    """SIGINT and SIGTERM raise ``_Cancelled`` in the main thread while installed; inside
    :meth:`held` they wait until the block is done."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.saved: dict[int, Any] = {}
        self.holding = 0
        self.pending: int | None = None

    def _raise(self, signum: int, frame: Any) -> None:
        if self.holding:
            if self.pending is None:
                self.pending = signum
            return
        raise _Cancelled(signum)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """A block that a cancelling signal does not cut in two: one that arrives meanwhile
        is raised as the block ends (not if the block itself raised)."""
        self.holding += 1
        try:
            yield
        finally:
            self.holding -= 1
        if not self.holding and self.pending is not None:
            signum, self.pending = self.pending, None
            raise _Cancelled(signum)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers; a library caller keeps its own
        for sig in self.SIGNALS:
            old = signal.signal(sig, self._raise)
            self.saved.setdefault(sig, old)

    def restore(self) -> None:
        for sig, old in self.saved.items():
            signal.signal(sig, old)
        self.saved.clear()


class _InProcess:
    """One worker: the driver builds the shards itself."""

    def __init__(self, recipe: Recipe, out_uri: str, token: LeaseToken):
        self.recipe, self.out_uri, self.token = recipe, out_uri, token

    def results(self, pending: list[int]) -> Iterator[ShardStats]:
        for shard in pending:
            yield build_shard(self.recipe, shard, self.out_uri, self.token)

    def harvest(self) -> list[ShardStats]:
        return []

    def stop(self, abandon: bool = False) -> None:
        pass


class _Pool:
    """A process pool of spawned workers that watch the driver and ignore Ctrl-C."""

    def __init__(self, recipe: Recipe, out_uri: str, token: LeaseToken, workers: int):
        import multiprocessing as mp

        self.recipe, self.out_uri, self.token = recipe, out_uri, token
        # spawn: fork would copy a driver that may hold threads (tqdm, Ray) and font caches.
        self.pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                           initializer=watch_parent)
        self.futures: set[cf.Future] = set()

    def results(self, pending: list[int]) -> Iterator[ShardStats]:
        with one_thread_children():  # the pool spawns its workers as these are submitted
            self.futures = {self.pool.submit(build_shard, self.recipe, s, self.out_uri, self.token) for s in pending}
        while self.futures:
            done, _ = cf.wait(self.futures, timeout=POLL_S, return_when=cf.FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: f.exception() is not None):  # successes first
                self.futures.discard(fut)
                yield fut.result()

    def harvest(self) -> list[ShardStats]:
        out = []
        for fut in list(self.futures):
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                out.append(fut.result())
                self.futures.discard(fut)
        return out

    def stop(self, abandon: bool = False) -> None:
        # The futures are not cancelled here: killing the workers breaks the pool, and its
        # manager thread then fails every pending future itself. A future cancelled beside
        # it made that thread raise InvalidStateError, printed as a traceback on exit
        # (6 stops in 30; tests/test_cancel.py).
        procs = list((getattr(self.pool, "_processes", None) or {}).values())
        for p in procs:  # in-flight shards are abandoned; their temporaries are swept next run
            try:
                p.kill()
            except (OSError, AttributeError):
                pass
        self.pool.shutdown(wait=False, cancel_futures=False)
        for p in procs:
            p.join(timeout=2)


class _Ray:
    """One Ray task per shard, at most twice the cluster's CPUs in flight."""

    def __init__(self, recipe: Recipe, out_uri: str, token: LeaseToken, workers: int | None, signals: _CancelSignals):
        import ray

        self.ray, self.recipe, self.out_uri, self.token = ray, recipe, out_uri, token
        self.started_here = False
        if not ray.is_initialized():
            init_kwargs: dict[str, Any] = {"logging_level": "WARNING", "log_to_driver": True}
            if not (os.environ.get("RAY_ADDRESS") or running_under_ray_job()):
                # Embedded local Ray: always a fresh one (address="local"), never a stale cluster
                # that /tmp/ray/ray_current_cluster still names; sized by --workers, with a small
                # object store (tasks return stats only). Attach to a running cluster with
                # RAY_ADDRESS or `ray job submit`.
                init_kwargs.update(address="local", num_cpus=workers or os.cpu_count() or 1,
                                   object_store_memory=256 * 1024 * 1024, include_dashboard=False)
            try:
                ray.init(**init_kwargs)
            except Exception as exc:
                where = os.environ.get("RAY_ADDRESS") or ("the job's cluster" if running_under_ray_job() else "a local Ray")
                raise RunFailed(f"--executor ray: could not start or reach Ray ({where}): {one_line(exc)} "
                                "(run without Ray with --executor local)") from exc
            self.started_here = True
        signals.install()  # ray.init sets its own SIGTERM handler: ours must win
        # I/O errors are worth a retry (a flaky object store); a generator's error is not.
        self.task = ray.remote(num_cpus=1, max_retries=3, retry_exceptions=[OSError])(build_shard)
        self.limit = max(1, workers or int(ray.cluster_resources().get("CPU", 1))) * 2
        self.in_flight: list[Any] = []

    def _get(self, ref: Any) -> ShardStats:
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from None  # the worker's own error (GenerationError, LeaseLost, OSError)
            raise RunFailed(f"a Ray task failed: {one_line(exc)}") from None
        except self.ray.exceptions.RayError as exc:  # a worker or node lost past its retries
            raise RunFailed(f"a Ray task failed: {one_line(exc)}") from None

    def results(self, pending: list[int]) -> Iterator[ShardStats]:
        queue = list(pending)
        while queue or self.in_flight:
            while queue and len(self.in_flight) < self.limit:
                self.in_flight.append(self.task.remote(self.recipe, queue.pop(0), self.out_uri, self.token))
            ready, self.in_flight = self.ray.wait(self.in_flight, num_returns=1, timeout=POLL_S)
            for ref in ready:
                yield self._get(ref)

    def harvest(self) -> list[ShardStats]:
        if not self.in_flight:
            return []
        ready, self.in_flight = self.ray.wait(self.in_flight, num_returns=len(self.in_flight), timeout=0)
        out = []
        for ref in ready:
            try:
                out.append(self.ray.get(ref, timeout=0))
            except Exception:  # a failed or cancelled task: nothing to record
                pass
        return out

    def stop(self, abandon: bool = False) -> None:
        for ref in self.in_flight:
            try:
                self.ray.cancel(ref, force=True)
            except Exception:
                pass
        self.in_flight = []
        if self.started_here and not abandon:
            # A cancelled run leaves the embedded cluster up: its graceful shutdown takes
            # seconds (the CLI ends its processes at once: stop_embedded_ray).
            self.ray.shutdown()


def stop_embedded_ray() -> None:
    """End, at once, the processes of a Ray this driver started (raylet, GCS, workers,
    agents: this process's descendants); for a CLI that is about to exit."""
    import psutil

    try:
        procs = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
    deadline = time.monotonic() + 1.0
    while procs and time.monotonic() < deadline:  # a killed process that nobody reaps stays a zombie: dead enough
        procs = [p for p in procs if _running(p)]
        time.sleep(0.02)


def _running(p: Any) -> bool:
    import psutil

    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def generate_dataset(
    recipe: Recipe | str | os.PathLike,
    out: str,
    workers: int | None = None,
    executor: str = "local",
    progress: bool = False,
    on_shard: Callable[[ShardStats], None] | None = None,
) -> dict[str, Any]:
    """Generate (or finish) every shard of ``recipe`` under ``out``; return the manifest.

    Raises RunError (bad arguments, foreign --out), RunFailed (another run holds --out, an
    I/O failure, a failing shard) or RunCancelled (SIGINT / SIGTERM); the message is one
    line (or paragraph) that names what is at fault and how to go on.
    """
    if executor not in EXECUTORS:
        raise RunError(f"executor {executor!r} is not one of {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise RunError(f"--workers must be >= 1, got {workers}")
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    out_uri = resolve_out(str(out))
    try:
        fs, base = open_output(recipe, out_uri)
        lease = Lease.acquire(fs, base, out_uri, recipe.name)
    except LeaseHeld as exc:
        raise RunFailed(str(exc)) from exc
    except OSError as exc:
        raise RunFailed(f"--out {out_uri}: cannot use it: {one_line(exc)}") from exc
    signals = _CancelSignals()
    signals.install()
    state: dict[str, Any] = {"manifest": None}
    try:
        return _run(recipe, fs, base, out_uri, lease, workers, executor, progress, on_shard, signals, state)
    except _Cancelled as exc:
        raise RunCancelled(_stopped_message(recipe, out_uri, state, f"cancelled ({signal.Signals(exc.signum).name}):"),
                           exc.signum) from None
    except KeyboardInterrupt:
        raise RunCancelled(_stopped_message(recipe, out_uri, state, "cancelled (SIGINT):"), signal.SIGINT) from None
    except GenerationError as exc:
        raise RunFailed(_stopped_message(recipe, out_uri, state, f"a shard failed: {one_line(exc)}.",
                                         "fix the cause (or change the recipe) and run the same command again to resume")) from None
    except LeaseLost as exc:
        raise RunFailed(one_line(exc)) from None
    except BrokenProcessPool as exc:
        raise RunFailed(_stopped_message(recipe, out_uri, state, f"a worker process died ({one_line(exc)}; out of memory?).",
                                         "run the same command again to resume")) from None
    except OSError as exc:
        raise RunFailed(_stopped_message(recipe, out_uri, state, f"I/O error: {one_line(exc)}.",
                                         "fix the cause and run the same command again to resume")) from None
    finally:
        signals.restore()
        lease.release()


def _stopped_message(recipe: Recipe, out_uri: str, state: dict[str, Any], what: str,
                     then: str = "run the same command again to resume") -> str:
    manifest = state.get("manifest")
    if manifest is None:
        return f"{what} Nothing was generated; {then}."
    done = len(manifest["shards"])
    return f"{what} {done} of {recipe.shards} shards are done and recorded in {join(out_uri, MANIFEST)}; {then}."


def _run(recipe: Recipe, fs: pafs.FileSystem, base: str, out_uri: str, lease: Lease, workers: int | None,
         executor: str, progress: bool, on_shard: Callable[[ShardStats], None] | None, signals: _CancelSignals,
         state: dict[str, Any]) -> dict[str, Any]:
    manifest, pending = prepare_output(recipe, fs, base, out_uri)
    state["manifest"] = manifest
    bar = None
    if progress and pending:
        from tqdm import tqdm

        done_rows = manifest["totals"].get("rows", 0)
        bar = tqdm(total=recipe.shards, initial=recipe.shards - len(pending), unit="shard", desc=recipe.name, file=sys.stderr)
        bar.set_postfix(pages=done_rows)

    def record(stats: ShardStats) -> None:
        # A Ctrl-C waits for the manifest to be written, and the manifest in memory (what
        # the stop message counts, what _remove_unrecorded keeps) changes only once it is:
        # cut in between, the message counted a shard that manifest.json did not list.
        with signals.held():
            lease.check()  # never write the manifest of a run this driver no longer holds
            # Per shard too: a resumed run may be made by newer code than its first shards.
            entry = {**stats.manifest_entry(), "code_version": manifest["code_version"],
                     "generator_version": synth.GENERATOR_VERSION}
            updated = {**manifest, "shards": dict(sorted({**manifest["shards"], stats.name: entry}.items()))}
            updated["totals"] = _totals(updated)
            updated["complete"] = len(updated["shards"]) == recipe.shards
            write_json(fs, join(base, MANIFEST), updated)
            manifest.update(updated)
        if bar is not None:
            bar.set_postfix(pages=manifest["totals"]["rows"], refresh=False)
            bar.update(1)
        if on_shard is not None:
            on_shard(stats)

    runner: Any = None
    try:
        if pending:  # nothing to do: do not even start Ray
            token = lease.token
            if executor == "ray":
                runner = _Ray(recipe, out_uri, token, workers, signals)
            elif (workers or 1) <= 1:
                runner = _InProcess(recipe, out_uri, token)
            else:
                runner = _Pool(recipe, out_uri, token, workers or 1)
            for stats in runner.results(pending):
                record(stats)
    except BaseException:
        if runner is not None:
            try:
                for stats in runner.harvest():  # finished before we stopped: keep them
                    record(stats)
            finally:
                runner.stop(abandon=True)
                _remove_unrecorded(fs, base, recipe, manifest, pending, lease)
        raise
    finally:
        if bar is not None:
            bar.close()
    if runner is not None:
        runner.stop()
    if manifest["complete"]:
        write_dataset_files(fs, base, recipe, manifest)
    return manifest


def _remove_unrecorded(fs: pafs.FileSystem, base: str, recipe: Recipe, manifest: dict[str, Any],
                       pending: list[int], lease: Lease) -> None:
    """Delete the shard files of ``pending`` that the manifest does not list.

    A worker that committed its shard between the last harvest and being stopped leaves a
    finished file nobody recorded; the run's rule is that the files are what the manifest
    lists (a resume rebuilds that shard, with the same bytes). Nothing is deleted once the
    lease is lost: the files may then be another run's."""
    try:
        lease.check()
    except LeaseLost:
        return
    paths = recipe.shard_paths
    for shard in pending:
        name = paths[shard]
        if name in manifest["shards"]:
            continue
        try:
            fs.delete_file(join(base, name))
        except OSError:  # not there (the usual case), or not removable: a resume rewrites it
            pass


def write_dataset_files(fs: pafs.FileSystem, base: str, recipe: Recipe, manifest: dict[str, Any]) -> None:
    """What a complete run gets besides its shards: the ``datasets`` sidecars (one folder, or
    a folder per split and dataset_dict.json) and the dataset card (README.md)."""
    from synth.card import write_card

    paths = recipe.shard_paths
    description = recipe.description or recipe.name
    if not recipe.splits:
        write_hf_sidecars(fs, base, paths, recipe.fingerprint(), description)
    else:
        for name, _ in recipe.splits:
            names = [p.split("/", 1)[1] for p in paths if p.startswith(name + "/")]
            write_hf_sidecars(fs, join(base, name), names, recipe.fingerprint(), f"{description} ({name} split)", split=name)
        write_dataset_dict(fs, base, [name for name, _ in recipe.splits])
    write_card(fs, base, recipe, manifest)
