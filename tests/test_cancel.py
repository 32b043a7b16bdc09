"""Clean cancel and kill (issue 16, items 5-6), with real processes and signals.

Ctrl-C is sent as a terminal sends it, to the driver's whole process group; SIGTERM to the
driver alone. Each run is slowed per row (SYNTH_SLOW_ROW_S) so that a signal lands while
shards are in flight. The time from the signal to the driver's exit is printed
(``pytest -s``) and must stay under 2 s.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from synth.runner import generate_dataset
from tests.conftest import REPO, write_recipe
from tests.test_runner import shard_digests

GEO = {"geometry": {"weight": 1}}
STOPPED = re.compile(r"^cancelled \((SIGINT|SIGTERM)\): (\d+) of 8 shards are done and recorded in (\S+manifest\.json); "
                     r"run the same command again to resume\.$")


def _start(recipe: Path, out: Path, *flags: str, slow: str = "0.3", **env: str) -> subprocess.Popen:
    full = dict(os.environ, PYTHONPATH=str(REPO), SYNTH_SLOW_ROW_S=slow, RAY_DISABLE_USAGE_STATS="1", **env)
    return subprocess.Popen([sys.executable, "-m", "synth", str(recipe), "--out", str(out), "--no-progress", *flags],
                            cwd=REPO, env=full, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def _listed(out: Path) -> dict:
    try:
        return json.loads((out / "manifest.json").read_text())["shards"]
    except (OSError, ValueError, KeyError):
        return {}


def _wait_for_shards(proc: subprocess.Popen, out: Path, n: int = 1, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while len(_listed(out)) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no shard finished in time"
        time.sleep(0.02)


def _signal_and_time(proc: subprocess.Popen, sig: int, group: bool) -> tuple[float, int, str]:
    t0 = time.monotonic()
    if group:
        os.killpg(proc.pid, sig)  # what Ctrl-C in a terminal does
    else:
        proc.send_signal(sig)
    rc = proc.wait(timeout=30)
    dt = time.monotonic() - t0
    return dt, rc, proc.stderr.read()


def _alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def _gone_within(pids: list[int], seconds: float) -> None:
    # (the pool's resource tracker, too, leaves when its driver's pipe closes)
    deadline = time.time() + seconds
    while _alive(pids) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(pids), [psutil.Process(p).cmdline() for p in _alive(pids)]


def _check_cancelled(out: Path, rc: int, err: str, sig: int) -> int:
    lines = [ln for ln in err.strip().splitlines() if "WARNING" not in ln]  # Ray's own start-up warnings
    assert rc == 128 + sig, err
    assert "Traceback" not in err and len(lines) == 1, err
    m = STOPPED.match(lines[0])
    assert m and m.group(1) == signal.Signals(sig).name, lines[0]
    done = int(m.group(2))
    assert done == len(_listed(out)) >= 1
    assert sorted(p.name for p in out.glob("data-*.arrow")) == sorted(_listed(out))  # finished = recorded
    assert not list(out.glob(".lease-*")), "a cancelled run releases its lease"
    return done


@pytest.fixture(scope="module")
def slow_recipe(tmp_path_factory) -> tuple[Path, Path]:
    """An 8-shard geometry recipe and its uninterrupted output (the resume reference)."""
    root = tmp_path_factory.mktemp("cancel")
    recipe = write_recipe(root / "r.yaml", shards=8, rows_per_shard=2, mixture=GEO)
    generate_dataset(recipe, str(root / "ref"), executor="local")
    return recipe, root / "ref"


def test_ctrl_c_in_process_stops_at_once_records_and_resumes(slow_recipe, tmp_path: Path):
    # Issue 16.6: Ctrl-C took 20 s, built every queued shard, recorded none, and printed a traceback.
    recipe, ref = slow_recipe
    out = tmp_path / "out"
    proc = _start(recipe, out, "--executor", "local")
    _wait_for_shards(proc, out)
    dt, rc, err = _signal_and_time(proc, signal.SIGINT, group=True)
    print(f"\nCtrl-C -> exit, --executor local (in-process): {dt:.2f} s")
    assert dt < 2.0
    _check_cancelled(out, rc, err, signal.SIGINT)
    generate_dataset(recipe, str(out), executor="local")  # resume: temporaries swept, the rest made
    assert shard_digests(out) == shard_digests(ref)
    assert not list(out.glob("*.tmp-*"))


def test_failing_shard_stops_the_run_with_one_paragraph(slow_recipe, tmp_path: Path, monkeypatch, capsys):
    # Issue 16.6: one failing shard (local) built most of the files, recorded few, then a traceback.
    from synth.__main__ import main

    recipe, _ = slow_recipe
    out = tmp_path / "out"
    monkeypatch.setenv("SYNTH_FAIL_SHARD", "2")
    rc = main([str(recipe), "--out", str(out), "--executor", "local", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "t/00002/00000" in err and "seed 5" in err and "RuntimeError: SYNTH_FAIL_SHARD=2" in err, err
    assert "2 of 8 shards are done and recorded" in err and "run the same command again to resume" in err, err
    assert sorted(_listed(out)) == ["data-00000-of-00008.arrow", "data-00001-of-00008.arrow"]
    assert sorted(p.name for p in out.iterdir()) == ["data-00000-of-00008.arrow", "data-00001-of-00008.arrow",
                                                     "manifest.json"]


@pytest.mark.slow
def test_process_pool_sigterm_failure_and_kill9_leave_no_workers(slow_recipe, tmp_path: Path):
    # Issue 16.5: kill -9 of a --workers 2 driver left its pool workers alive (reparented to
    # PID 1), still writing shards and holding the driver's stdout.
    recipe, ref = slow_recipe
    out = tmp_path / "term"
    proc = _start(recipe, out, "--executor", "local", "--workers", "2")
    _wait_for_shards(proc, out)
    workers = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    assert workers
    dt, rc, err = _signal_and_time(proc, signal.SIGTERM, group=False)
    print(f"\nSIGTERM -> exit, --executor local --workers 2: {dt:.2f} s")
    assert dt < 2.0
    _check_cancelled(out, rc, err, signal.SIGTERM)
    _gone_within(workers, 2.0)

    out = tmp_path / "kill9"
    proc = _start(recipe, out, "--executor", "local", "--workers", "2", slow="0.5")
    _wait_for_shards(proc, out)
    workers = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    _gone_within(workers, 2.0)  # workers of a killed driver stop themselves
    assert proc.stdout.read() == ""  # nobody holds the pipe any more: this returned
    shards = sorted(p.name for p in out.glob("data-*.arrow"))
    time.sleep(1.0)
    assert sorted(p.name for p in out.glob("data-*.arrow")) == shards, "no shard written after the kill"
    generate_dataset(recipe, str(out), executor="local")  # the dead driver's lease is stale at once
    assert shard_digests(out) == shard_digests(ref)

    out = tmp_path / "fail"
    proc = _start(recipe, out, "--executor", "local", "--workers", "2", slow="0", SYNTH_FAIL_SHARD="3")
    rc = proc.wait(timeout=120)
    err = proc.stderr.read()
    assert rc == 1 and "Traceback" not in err and "t/00003/00000" in err and "seed 5" in err, err
    n = int(re.search(r"(\d+) of 8 shards are done", err).group(1))
    assert n == len(_listed(out)) and sorted(p.name for p in out.glob("data-*.arrow")) == sorted(_listed(out))


@pytest.mark.slow
def test_ray_ctrl_c_stops_within_two_seconds(slow_recipe, tmp_path: Path):
    recipe, _ = slow_recipe
    out = tmp_path / "ray"
    proc = _start(recipe, out, "--executor", "ray", "--workers", "2", slow="0.5", RAY_ADDRESS="")
    _wait_for_shards(proc, out)
    family = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    dt, rc, err = _signal_and_time(proc, signal.SIGINT, group=True)
    print(f"\nCtrl-C -> exit, --executor ray --workers 2: {dt:.2f} s")
    assert dt < 2.0
    _check_cancelled(out, rc, err, signal.SIGINT)
    _gone_within(family, 2.0)  # the embedded Ray's processes end with the driver
