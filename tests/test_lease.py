"""One writer per output (issue 16, items 1-5): the lease, a refused run that touches
nothing, a failed run's empty manifest, resume that re-checks sha256, workers that commit
only into the run that started them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synth.lease import LEASE_PREFIX, Lease, LeaseLost
from synth.recipe import load_recipe
from synth.runner import RunError, RunFailed, generate_dataset
from synth.shards import resolve_filesystem
from synth.worker import build_shard
from tests.conftest import REPO, write_recipe
from tests.test_runner import shard_digests

GEO = {"geometry": {"weight": 1}}  # the family quickest to start (no text corpus to load)


def _snapshot(out: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in out.iterdir()}


def test_two_runs_started_together_one_writes_the_other_is_refused(tmp_path: Path):
    # Issue 16.1: two recipes (seeds 0 and 1) into one --out at the same moment both exited 0
    # and left a mix of both runs' shards.
    recipe = write_recipe(tmp_path / "r.yaml", shards=4, rows_per_shard=2, mixture=GEO)
    out = tmp_path / "D"
    env = dict(os.environ, PYTHONPATH=str(REPO), SYNTH_SLOW_ROW_S="0.4")
    procs = [subprocess.Popen([sys.executable, "-m", "synth", str(recipe), "--out", str(out), "--executor", "local",
                               "--no-progress", "--seed", str(s)], cwd=REPO, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for s in (0, 1)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _, _ in results)
    assert codes[0] == 0 and codes[1] != 0, results
    _, _, err = next(r for r in results if r[0] != 0)
    # Refused either by the live run's lease or, had it already finished, by its manifest.
    assert "another run is writing here" in err or "different recipe" in err, err
    if "another run" in err:
        assert f"host {socket.gethostname()}" in err and "pid" in err and "last heartbeat" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    from annotate.verify import verify

    report = verify(str(out))
    assert report.ok, [str(p) for p in report.problems]
    assert not list(out.glob(f"{LEASE_PREFIX}*")), "the winner released its lease"


def test_live_lease_refuses_and_the_refused_run_touches_nothing(tmp_path: Path):
    # Issue 16.2: a refused run swept *.tmp-* first and so killed the live run's shard write.
    out = tmp_path / "out"
    a = load_recipe(write_recipe(tmp_path / "a.yaml", name="a", shards=2, rows_per_shard=1, mixture=GEO))
    b = load_recipe(write_recipe(tmp_path / "b.yaml", name="b", shards=2, rows_per_shard=1, mixture=GEO))
    out.mkdir()
    (out / "data-00000-of-00002.arrow.tmp-0123456789ab").write_bytes(b"a live writer's temporary")
    fs, base = resolve_filesystem(str(out))
    live = Lease.acquire(fs, base, str(out), "a")
    try:
        before = _snapshot(out)
        for recipe in (a, b):  # the same recipe and another one: both wait for the live run
            with pytest.raises(RunFailed) as err:
                generate_dataset(recipe, str(out), executor="local")
            msg = str(err.value)
            assert "another run is writing here" in msg and f"pid {os.getpid()}" in msg, msg
            assert f"host {socket.gethostname()}" in msg and "started" in msg and "last heartbeat" in msg, msg
            assert _snapshot(out) == before
    finally:
        live.release()
    assert not list(out.glob(f"{LEASE_PREFIX}*"))
    generate_dataset(a, str(out), executor="local")  # released: the directory is free again
    assert not list(out.glob("*.tmp-*")), "the run that held the lease swept the dead temporary"


def test_stale_leases_expire(tmp_path: Path, monkeypatch, caplog):
    recipe = write_recipe(tmp_path / "r.yaml", shards=1, rows_per_shard=1, mixture=GEO)
    out = tmp_path / "out"
    out.mkdir()
    now = time.time()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leases = {
        # a run on this machine whose driver was killed: stale at once
        "dead": {"host": socket.gethostname(), "pid": dead.pid, "heartbeat": now},
        # a run elsewhere that stopped beating more than the expiry ago
        "silent": {"host": "elsewhere", "pid": 1, "heartbeat": now - 61},
    }
    for key, fields in leases.items():
        from synth.lease import _boot_id

        info = {"run_id": key * 4, "boot_id": _boot_id(), "pid_start": "", "started": now - 100, "ttl": 60.0,
                "recipe": "old", "out": str(out), **fields}
        (out / f"{LEASE_PREFIX}{key}.json").write_text(json.dumps(info))
    caplog.set_level("WARNING", logger="synth.lease")
    manifest = generate_dataset(recipe, str(out), executor="local")
    assert manifest["complete"]
    assert "no longer running on this host" in caplog.text and "61 s old (expiry 60 s)" in caplog.text
    # ...but a run elsewhere that beat recently holds the output
    info = {"run_id": "live", "host": "elsewhere", "boot_id": "", "pid": 1, "pid_start": "", "started": now,
            "heartbeat": time.time(), "ttl": 60.0, "recipe": "other", "out": str(out)}
    (out / f"{LEASE_PREFIX}live.json").write_text(json.dumps(info))
    with pytest.raises(RunFailed, match="host elsewhere, pid 1"):
        generate_dataset(recipe, str(out), executor="local")


def test_failed_run_with_no_shard_does_not_block_the_corrected_recipe(tmp_path: Path, monkeypatch):
    # Issue 16.3: a run that failed left a manifest with zero shards, and the corrected recipe
    # was then refused as "a different recipe".
    out = tmp_path / "out"
    bad = write_recipe(tmp_path / "bad.yaml", name="bad", shards=2, rows_per_shard=1, mixture=GEO)
    good = write_recipe(tmp_path / "good.yaml", name="good", shards=2, rows_per_shard=1, mixture=GEO)
    import synth.geometry

    real = synth.geometry.generate
    monkeypatch.setattr(synth.geometry, "generate", lambda cfg, rng: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        generate_dataset(bad, str(out), executor="local")
    assert json.loads((out / "manifest.json").read_text())["shards"] == {}
    monkeypatch.setattr(synth.geometry, "generate", real)
    manifest = generate_dataset(good, str(out), executor="local")
    assert manifest["complete"] and manifest["recipe"]["name"] == "good"


def test_resume_rechecks_each_shard_sha256(tmp_path: Path):
    # Issue 16.4: a re-run trusted the size only, so a same-size corrupt shard counted as done.
    recipe = write_recipe(tmp_path / "r.yaml", shards=2, rows_per_shard=2, mixture=GEO)
    out = tmp_path / "out"
    generate_dataset(recipe, str(out), executor="local")
    good = shard_digests(out)
    victim = out / "data-00001-of-00002.arrow"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    ran = []
    generate_dataset(recipe, str(out), executor="local", on_shard=ran.append)
    assert [s.name for s in ran] == ["data-00001-of-00002.arrow"]
    assert shard_digests(out) == good


def test_worker_commits_only_while_its_run_holds_the_lease(tmp_path: Path):
    # Issue 16.5: workers of a killed run A wrote their shards into run B's folder.
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", shards=2, rows_per_shard=1, mixture=GEO))
    out = tmp_path / "out"
    out.mkdir()
    fs, base = resolve_filesystem(str(out))
    lease = Lease.acquire(fs, base, str(out), recipe.name)
    token = lease.token
    assert build_shard(recipe, 0, str(out), token).name == "data-00000-of-00002.arrow"
    lease.release()  # run A is over (or its folder was deleted and B started there)
    b = Lease.acquire(fs, base, str(out), "b")
    try:
        with pytest.raises(LeaseLost, match="not committed"):
            build_shard(recipe, 1, str(out), token)
    finally:
        b.release()
    assert sorted(p.name for p in out.iterdir()) == ["data-00000-of-00002.arrow"]  # no shard, no temporary
    # a worker whose driver died on this machine stops before generating anything
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = type(token)(**{**token.__dict__, "pid": dead.pid, "pid_start": ""})
    with pytest.raises(LeaseLost, match="abandoned"):
        build_shard(recipe, 1, str(out), orphan)


def test_refused_foreign_recipe_writes_nothing(tmp_path: Path):
    out = tmp_path / "out"
    a = write_recipe(tmp_path / "a.yaml", name="a", shards=1, rows_per_shard=1, mixture=GEO)
    b = write_recipe(tmp_path / "b.yaml", name="b", shards=1, rows_per_shard=1, mixture=GEO)
    generate_dataset(a, str(out), executor="local")
    (out / "data-00000-of-00001.arrow.tmp-deadbeef0000").write_bytes(b"x")
    before = _snapshot(out)
    with pytest.raises(RunError, match="different recipe"):
        generate_dataset(b, str(out), executor="local")
    assert _snapshot(out) == before
