"""The runner: determinism across executors and worker counts, resume, refusal, URIs."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.fs as pafs
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
    with pytest.raises(RunError, match=r"absolute path \(e.g. --out \$PWD/rel/out\)"):  # issue 16.11: was a literal {out}
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
        # the lease works on an object store too: a live holder refuses a second run
        from synth.lease import LEASE_PREFIX, Lease
        from synth.runner import RunFailed
        from synth.shards import resolve_filesystem

        fs, base = resolve_filesystem(uri)
        names = lambda: [i.base_name for i in fs.get_file_info(pafs.FileSelector(base))]  # noqa: E731
        assert not [n for n in names() if n.startswith(LEASE_PREFIX)], "a finished run released its lease"
        held = Lease.acquire(fs, base, uri, "other")
        try:
            with pytest.raises(RunFailed, match="another run is writing here"):
                generate_dataset(recipe, uri, executor="local")
        finally:
            held.release()
        assert not [n for n in names() if n.startswith(LEASE_PREFIX)]
        assert "README.md" in names()  # the dataset card
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


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if "WARNING" not in ln]  # Ray's own start-up warnings
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_cli_usage_and_io_errors_are_one_line(tmp_path: Path, monkeypatch, capsys):
    # Issue 16.10-11: `--out ""` wrote into the current directory; an unwritable --out, a URI
    # of no known filesystem, an unreachable S3 endpoint and a failed Ray start each printed
    # a traceback. Exit 2: a usage error; 1: the run could not go on.
    from synth.__main__ import main

    recipe = str(write_recipe(tmp_path / "r.yaml", shards=1, rows_per_shard=1, mixture={"geometry": {"weight": 1}}))
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    cases = [
        (["--out", ""], 2, "--out is empty"),
        (["--out", "foo://x"], 2, "--out 'foo://x': Unrecognized filesystem type in URI"),
        (["--out", "/sys/synth-test-out"], 1, "--out /sys/synth-test-out: cannot create the output directory"),
        (["--out", "/sys"], 1, "--out /sys: cannot use it"),
    ]
    for flags, code, fragment in cases:
        if flags[1].startswith("/sys") and (not os.path.isdir("/sys") or os.access("/sys", os.W_OK)):
            continue  # needs a read-only /sys (Linux)
        assert main([recipe, "--executor", "local", "--no-progress", *flags]) == code, flags
        assert fragment in _one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written into the current directory
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:1")  # not a GCS address: ray.init refuses it at once
    assert main([recipe, "--out", str(tmp_path / "ray"), "--no-progress"]) == 1
    assert "--executor ray: could not start or reach Ray (http://127.0.0.1:1)" in _one_line_error(capsys)


def test_full_disk_is_one_line_and_leaves_no_temporary(tmp_path: Path):
    # Issue 16.11: a full disk printed a traceback and left a *.tmp-* behind. A file-size
    # limit makes the shard write fail the way a full disk does (an OSError mid-write).
    import resource

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))  # manifest.json fits, a shard does not

    recipe = write_recipe(tmp_path / "r.yaml", shards=1, rows_per_shard=2, mixture={"geometry": {"weight": 1}})
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "synth", str(recipe), "--out", str(out), "--executor", "local",
                          "--no-progress"], cwd=REPO, capture_output=True, text=True, preexec_fn=limit_file_size,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert res.returncode == 1 and "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert f"cannot write {out}/data-00000-of-00001.arrow" in res.stderr and "File too large" in res.stderr
    assert "0 of 1 shards are done" in res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]


@pytest.mark.slow
def test_unreachable_s3_endpoint_is_one_line(tmp_path: Path, capsys):
    # pyarrow's S3 client retries for about 7 s before it gives up: slow.
    from synth.__main__ import main

    recipe = str(write_recipe(tmp_path / "r.yaml", shards=1, rows_per_shard=1, mixture={"geometry": {"weight": 1}}))
    uri = f"s3://b/x?endpoint_override=127.0.0.1:{_free_port()}&scheme=http&region=us-east-1"
    assert main([recipe, "--executor", "local", "--no-progress", "--out", uri]) == 1
    line = _one_line_error(capsys)
    assert line.startswith(f"error: --out {uri}: ") and "Could not connect to server" in line


def test_an_in_process_run_leaves_the_callers_gc_alone(tmp_path: Path):
    # Workers freeze their GC after their first row (synth.worker.settle_gc); a program that
    # runs the runner in its own process must not find its objects frozen afterwards.
    import gc

    before = gc.get_freeze_count()
    recipe = write_recipe(tmp_path / "r.yaml", shards=1, rows_per_shard=2, mixture={"geometry": {"weight": 1}})
    generate_dataset(recipe, str(tmp_path / "out"), executor="local")
    assert gc.get_freeze_count() == before


def _thread_names(pid: int | str = "self") -> list[str]:
    task = Path(f"/proc/{pid}/task")
    return sorted((t / "comm").read_text().strip() for t in task.iterdir())


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads threads from Linux's /proc")
def test_the_synth_cli_loads_numpy_with_one_thread():
    # OpenBLAS starts a thread per core as NumPy loads; in a process that exists to make
    # shards they only burn CPU (synth.threads). pyarrow's allocator keeps one thread
    # (jemalloc_bg_thd) either way.
    from synth.threads import ONE_THREAD

    env = {k: v for k, v in os.environ.items() if k not in ONE_THREAD}
    code = ("import synth.__main__, numpy, os, json; from pathlib import Path; "
            "print(json.dumps([sorted((t / 'comm').read_text().strip() for t in Path('/proc/self/task').iterdir()), "
            "os.environ['OPENBLAS_NUM_THREADS']]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True)
    names, value = json.loads(out.stdout)
    assert [n for n in names if n != "jemalloc_bg_thd"] == ["python"] and value == "1"
    # a value the user chose is kept
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OPENBLAS_NUM_THREADS": "2"}, cwd=REPO,
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)[1] == "2"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads environments from Linux's /proc")
def test_pool_workers_start_with_one_math_thread_and_the_caller_keeps_its_environment(tmp_path: Path, monkeypatch):
    import multiprocessing

    from synth.threads import ONE_THREAD

    for name in ONE_THREAD:
        monkeypatch.delenv(name, raising=False)
    seen = []

    def on_shard(_stats):
        for p in multiprocessing.active_children():
            env = dict(e.split("=", 1) for e in Path(f"/proc/{p.pid}/environ").read_text().split("\0") if "=" in e)
            seen.append({name: env.get(name) for name in ONE_THREAD})

    recipe = write_recipe(tmp_path / "r.yaml", shards=3, rows_per_shard=2, mixture={"text": {"weight": 1}})
    generate_dataset(recipe, str(tmp_path / "out"), workers=2, executor="local", on_shard=on_shard)
    assert seen and all(s == ONE_THREAD for s in seen)
    assert not any(name in os.environ for name in ONE_THREAD)


def test_ctrl_c_while_a_shard_is_recorded_leaves_the_message_and_manifest_agreeing(tmp_path: Path, monkeypatch):
    """Bug (tests/test_cancel.py under Ray, 1 run in 3): a Ctrl-C that lands while the
    driver records a finished shard stopped it between updating its manifest in memory and
    writing it, so the stop message counted 2 shards done while manifest.json listed 1 and
    the unlisted shard's file stayed. Recording is now held together: the signal takes
    effect once the manifest is written, and the message, the manifest and the files agree."""
    import synth.runner as runner
    from synth.runner import RunCancelled

    recipe = write_recipe(tmp_path / "r.yaml", shards=4, rows_per_shard=1, mixture={"text": {"weight": 1}})
    out = tmp_path / "out"
    real, writes = runner.write_json, []

    def write_json(fs, path, obj):
        if path.endswith("manifest.json") and len(obj["shards"]) == 2 and not writes:
            writes.append(path)
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the second shard is recorded
        return real(fs, path, obj)

    monkeypatch.setattr(runner, "write_json", write_json)
    with pytest.raises(RunCancelled) as stopped:
        generate_dataset(recipe, str(out), executor="local")
    listed = json.loads((out / "manifest.json").read_text())["shards"]
    assert "2 of 4 shards are done" in str(stopped.value), stopped.value
    assert sorted(listed) == sorted(p.name for p in out.glob("data-*.arrow")) and len(listed) == 2
    assert not list(out.glob(".lease-*"))
    generate_dataset(recipe, str(out), executor="local")  # and the run resumes to the end
    assert json.loads((out / "manifest.json").read_text())["complete"]
