"""Ray paths: the embedded local cluster, task retry, and `ray job submit` on a real head."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from synth.runner import generate_dataset
from tests.conftest import REPO, run_cli, write_recipe
from tests.test_runner import _free_port, shard_digests

pytestmark = pytest.mark.slow


def test_embedded_ray_matches_local_and_retries_a_crashed_task(tmp_path: Path):
    recipe = write_recipe(tmp_path / "r.yaml", shards=4, rows_per_shard=2)
    generate_dataset(recipe, str(tmp_path / "ref"), executor="local")
    marker = tmp_path / "crashed-once"
    res = run_cli(
        "-m", "synth", str(recipe), "--out", str(tmp_path / "ray"), "--workers", "2", "--no-progress",
        env={"SYNTH_FAULT_MARKER": str(marker), "SYNTH_FAULT_SHARD": "2", "RAY_ADDRESS": "", "RAY_DISABLE_USAGE_STATS": "1"},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert marker.exists(), "the fault hook never fired: shard 2 was not retried after a crash"
    assert shard_digests(tmp_path / "ray") == shard_digests(tmp_path / "ref")


@pytest.fixture(scope="module")
def ray_head():
    # Own ports, so a developer's running cluster is not reused by mistake, and its own
    # process group: `ray start --block` stays in the foreground, and at the end only this
    # head's processes are stopped (`ray stop` would stop every Ray of this user on the host).
    env = dict(os.environ, RAY_DISABLE_USAGE_STATS="1")
    dash = _free_port()
    head = subprocess.Popen(
        ["ray", "start", "--head", "--block", "--num-cpus", "2", "--disable-usage-stats", "--port", str(_free_port()),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )
    try:
        deadline = time.time() + 180
        while True:  # ready when the dashboard (the job server) answers
            assert head.poll() is None, "ray start --head exited"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{dash}/api/version", timeout=2)
                break
            except urllib.error.HTTPError:  # it answers (401 under token auth): up
                break
            except OSError:
                assert time.time() < deadline, "the Ray head did not come up"
                time.sleep(1)
        yield f"http://127.0.0.1:{dash}"
    finally:
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
            try:
                os.killpg(head.pid, sig)
            except ProcessLookupError:
                break
            try:
                head.wait(timeout=wait)
                time.sleep(1)  # let the group's other processes go too
            except subprocess.TimeoutExpired:
                continue


def _submit(address: str, *args: str) -> subprocess.CompletedProcess:
    # Ray >= 2.59 turns token auth on for local heads (token in ~/.ray/auth_token), but its
    # CLI client only sends the token when told to: the README's submit command sets this.
    env = dict(os.environ, RAY_ADDRESS=address, RAY_DISABLE_USAGE_STATS="1", RAY_AUTH_MODE="token")
    deadline = time.time() + 60
    while True:  # the job server, and the agent that runs jobs, may need a moment after `ray start`
        res = subprocess.run(["ray", "job", "submit", "--working-dir", ".", "--", *args],
                             cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
        not_ready = "Connection" in res.stderr or "No available agent to submit job" in res.stderr
        if res.returncode == 0 or not not_ready or time.time() > deadline:
            return res
        time.sleep(2)


def test_ray_job_submit_writes_the_same_shards(ray_head, tmp_path: Path):
    recipe = write_recipe(REPO / "manifests" / ".test_job.yaml", shards=3, rows_per_shard=2)
    try:
        generate_dataset(recipe, str(tmp_path / "ref"), executor="local")
        out = tmp_path / "job"
        res = _submit(ray_head, "python", "-m", "synth", "manifests/.test_job.yaml", "--out", str(out), "--no-progress")
        assert res.returncode == 0, res.stdout + res.stderr
        assert shard_digests(out) == shard_digests(tmp_path / "ref")
        rel = _submit(ray_head, "python", "-m", "synth", "manifests/.test_job.yaml", "--out", "relative/out", "--no-progress")
        assert rel.returncode != 0
        assert "is relative" in rel.stdout + rel.stderr
    finally:
        recipe.unlink()
