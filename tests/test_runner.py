"""The runner: determinism across executors and worker counts, resume, refusal, URIs."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from synth.runner import RunError, generate_dataset, resolve_out
from tests.conftest import REPO, write_recipe


def shard_digests(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.arrow"))}


def test_same_bytes_with_one_or_two_workers(tmp_path: Path):
    recipe = write_recipe(tmp_path / "r.yaml", shards=4, rows_per_shard=3)
    m1 = generate_dataset(recipe, str(tmp_path / "w1"), workers=1, executor="local")
    m2 = generate_dataset(recipe, str(tmp_path / "w2"), workers=2, executor="local")
    d1, d2 = shard_digests(tmp_path / "w1"), shard_digests(tmp_path / "w2")
    assert len(d1) == 4 and d1 == d2
    assert {k: v["sha256"] for k, v in m1["shards"].items()} == d1
    assert m1["shards"] == m2["shards"] and m1["complete"] and m2["complete"]
    fams = m1["totals"]["families"]
    assert sum(fams.values()) == 12 and abs(fams["ocr1"] - 6) <= 1 and abs(fams["text"] - 6) <= 1


def test_second_run_skips_complete_shards(tmp_path: Path):
    recipe = write_recipe(tmp_path / "r.yaml", shards=2, rows_per_shard=2, mixture={"text": {"weight": 1}})
    out = tmp_path / "out"
    generate_dataset(recipe, str(out), executor="local")
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.arrow")}
    ran = []
    generate_dataset(recipe, str(out), executor="local", on_shard=ran.append)
    assert ran == []
    assert mtimes == {p.name: p.stat().st_mtime_ns for p in out.glob("*.arrow")}


def test_foreign_output_directory_is_refused(tmp_path: Path):
    out = tmp_path / "out"
    a = write_recipe(tmp_path / "a.yaml", name="a", shards=1, rows_per_shard=2, mixture={"text": {"weight": 1}})
    b = write_recipe(tmp_path / "b.yaml", name="b", shards=1, rows_per_shard=2, mixture={"text": {"weight": 1}})
    generate_dataset(a, str(out), executor="local")
    before = shard_digests(out)
    with pytest.raises(RunError, match="different recipe"):
        generate_dataset(b, str(out), executor="local")
    assert shard_digests(out) == before
    # shards without a manifest are foreign too
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "data-00000-of-00001.arrow").write_bytes(b"x")
    with pytest.raises(RunError, match="no manifest.json"):
        generate_dataset(a, str(stray), executor="local")


def test_relative_out_refused_under_ray_job(monkeypatch):
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")
    with pytest.raises(RunError, match="absolute path"):
        resolve_out("rel/out")
    assert resolve_out("/abs/out") == "/abs/out"
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR")
    assert resolve_out("rel/out") == os.path.abspath("rel/out")


def test_killed_run_resumes_without_loss_or_duplicates(tmp_path: Path):
    recipe = write_recipe(tmp_path / "r.yaml", shards=6, rows_per_shard=3, mixture={"ocr1": {"weight": 1}, "text": {"weight": 1}})
    ref = tmp_path / "ref"
    generate_dataset(recipe, str(ref), executor="local")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        ["python", "-m", "synth", str(recipe), "--out", str(out), "--executor", "local", "--no-progress"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    manifest = out / "manifest.json"
    deadline = time.time() + 120
    while time.time() < deadline:
        if manifest.exists() and 1 <= len(json.loads(manifest.read_text())["shards"]) < 6:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = json.loads(manifest.read_text())
    assert 1 <= len(partial["shards"]) < 6 and not partial["complete"]
    done = []
    final = generate_dataset(recipe, str(out), executor="local", on_shard=done.append)
    assert final["complete"]
    assert len(done) == 6 - len(partial["shards"])  # only the missing shards ran
    assert shard_digests(out) == shard_digests(ref)
    assert not list(out.glob("*.tmp-*"))  # a killed writer's temporaries are swept on resume
    from annotate.dataset import iter_rows

    ids = [row["id"] for _, _, row in iter_rows(str(out), columns=["id"])]
    assert len(ids) == 18 and len(set(ids)) == 18


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_s3_uri_output_via_pyarrow_fs(tmp_path: Path, monkeypatch):
    pytest.importorskip("moto")
    import boto3

    port = _free_port()
    server = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(k, v)
        deadline = time.time() + 30
        while True:
            try:
                boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}").create_bucket(Bucket="shards")
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        uri = f"s3://shards/run1?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
        recipe = write_recipe(tmp_path / "r.yaml", shards=2, rows_per_shard=2)
        manifest = generate_dataset(recipe, uri, executor="local")
        local = generate_dataset(recipe, str(tmp_path / "local"), executor="local")
        assert manifest["complete"] and manifest["shards"] == local["shards"]
        from annotate.verify import verify

        report = verify(uri)
        assert report.ok, [str(p) for p in report.problems]
        assert report.rows == 4
    finally:
        server.terminate()
        server.wait()


def test_out_that_is_a_file_is_refused(tmp_path: Path):
    recipe = write_recipe(tmp_path / "r.yaml", shards=1, rows_per_shard=1, mixture={"text": {"weight": 1}})
    target = tmp_path / "afile"
    target.write_text("keep me")
    with pytest.raises(RunError, match="is a file"):
        generate_dataset(recipe, str(target), executor="local")
    assert target.read_text() == "keep me"
