"""One writer per output: an exclusive, heartbeated lease on a run's output location.

The lease is a small JSON object beside manifest.json, ``.lease-<run id>.json``, on any
pyarrow filesystem (local disk, ``s3://`` ...). Object stores have no "create if absent"
through pyarrow.fs, so taking the lease is a write-then-list protocol that needs only
atomic single-object writes and read-after-write listings (local disks, S3, GCS):

1. list the lease objects; drop those that are stale (below); any live one refuses the run;
2. write our own lease object;
3. list again: alone, we hold the lease; not alone, another run is taking it at the same
   moment: delete ours, wait a random moment, and go back to 1 (a few times).

Two runs can never both hold it: each lists *after* its own write, so the later of the two
writes is seen by both, and a run that sees another backs off. (Both may back off; the
random wait makes one of them win the next round.)

Stale leases: the holder rewrites its object every ``heartbeat_s`` (``ttl / 6``). A lease
whose heartbeat is older than ``ttl`` (default 60 s, ``SYNTH_LEASE_TTL_S``) is stale,
so a run killed with SIGKILL on another machine blocks its output for at most a minute.
On the same machine (same host name and boot id) a lease whose driver process is gone is
stale at once, so a killed local run can be resumed immediately. Heartbeats compare the
writer's clock with the reader's: hosts sharing an output must keep their clocks within a
few seconds (NTP does).

Workers get a :class:`LeaseToken` and commit a shard (rename its temporary into place)
only while the lease object is still the one of the run that started them and its driver
is alive: a worker of a killed run never writes into the run that replaced it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import pyarrow.fs as pafs

LEASE_PREFIX = ".lease-"
DEFAULT_TTL_S = 60.0
ACQUIRE_ROUNDS = 6

log = logging.getLogger("synth.lease")


class LeaseHeld(RuntimeError):
    """Another live run holds the output location."""


class LeaseLost(RuntimeError):
    """This run's lease is gone (taken over, released, or its driver died)."""


def lease_ttl() -> float:
    """Seconds after its last heartbeat at which a lease is stale (``SYNTH_LEASE_TTL_S``)."""
    raw = os.environ.get("SYNTH_LEASE_TTL_S", "")
    try:
        ttl = float(raw) if raw else DEFAULT_TTL_S
    except ValueError:
        ttl = DEFAULT_TTL_S
    return ttl if ttl > 0 else DEFAULT_TTL_S


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


def _pid_start(pid: int) -> str:
    # Field 22 of /proc/PID/stat: the process's start time in clock ticks since boot, which
    # tells a live driver from an unrelated process that reused its pid.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def pid_alive(pid: int, start: str = "") -> bool:
    """True when process ``pid`` runs on this machine (and started at ``start``, if given)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not start or _pid_start(pid) in ("", start)


def _join(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


def _put(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    # A local file is written beside and renamed (a reader never sees half of it); an
    # object-store PUT is atomic by itself and a rename there is a copy.
    if isinstance(fs, pafs.LocalFileSystem):
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            with fs.open_output_stream(tmp) as out:
                out.write(data)
            fs.move(tmp, path)
        except BaseException:
            try:
                fs.delete_file(tmp)
            except OSError:
                pass
            raise
    else:
        with fs.open_output_stream(path) as out:
            out.write(data)


def _get(fs: pafs.FileSystem, path: str) -> bytes | None:
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class LeaseToken:
    """What a worker needs to check that its run still holds the output (picklable)."""

    fs_uri: str  # the run's output URI (a local path or a pyarrow filesystem URI)
    name: str  # the lease object's file name
    run_id: str
    host: str
    boot_id: str
    pid: int
    pid_start: str
    ttl: float

    def _same_machine(self) -> bool:
        return self.host == socket.gethostname() and self.boot_id == _boot_id()

    def driver_gone(self) -> str | None:
        """Why the run's driver is known to be dead, checked cheaply (same machine only)."""
        if self._same_machine() and not pid_alive(self.pid, self.pid_start):
            return f"its driver (pid {self.pid} on {self.host}) is gone"
        return None

    def problem(self, fs: pafs.FileSystem, base: str) -> str | None:
        """None while the run holds its lease, else why it does not."""
        gone = self.driver_gone()
        if gone:
            return gone
        data = _get(fs, _join(base, self.name))
        if data is None:
            return "its lease object is gone (the run ended, was cancelled, or another run took over)"
        try:
            info = json.loads(data)
        except ValueError:
            return "its lease object is unreadable"
        if info.get("run_id") != self.run_id:
            return "its lease object names another run"
        age = time.time() - float(info.get("heartbeat", 0))
        if age > self.ttl:
            return f"its lease's last heartbeat is {age:.0f} s old (expiry {self.ttl:.0f} s)"
        return None


@dataclass
class LeaseInfo:
    """The content of a lease object."""

    run_id: str
    host: str
    boot_id: str
    pid: int
    pid_start: str
    started: float
    heartbeat: float
    ttl: float
    recipe: str
    out: str

    @classmethod
    def parse(cls, data: bytes) -> "LeaseInfo | None":
        """A lease object's content, or None when it is not one."""
        try:
            d = json.loads(data)
            return cls(**{k: d[k] for k in cls.__dataclass_fields__})
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self, now: float | None = None) -> str:
        """Who holds it, in words: host, pid, start time and last heartbeat."""
        now = time.time() if now is None else now
        started = datetime.fromtimestamp(self.started, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return (f"run {self.run_id[:8]} of recipe {self.recipe!r} on host {self.host}, pid {self.pid}, "
                f"started {started}, last heartbeat {max(0.0, now - self.heartbeat):.0f} s ago")

    def stale_reason(self, now: float) -> str | None:
        """Why this lease no longer counts, or None while it is live."""
        if self.host == socket.gethostname() and self.boot_id == _boot_id() and not pid_alive(self.pid, self.pid_start):
            return f"its driver (pid {self.pid}) is no longer running on this host"
        if now - self.heartbeat > self.ttl:
            return f"its last heartbeat is {now - self.heartbeat:.0f} s old (expiry {self.ttl:.0f} s)"
        return None


def _lease_names(fs: pafs.FileSystem, base: str) -> list[str]:
    infos = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.File
                  and i.base_name.startswith(LEASE_PREFIX) and ".tmp-" not in i.base_name)


class Lease:
    """This run's hold on an output location: acquire, heartbeat, check, release."""

    def __init__(self, fs: pafs.FileSystem, base: str, info: LeaseInfo):
        self.fs, self.base, self.info = fs, base, info
        self.name = f"{LEASE_PREFIX}{info.run_id}.json"
        self.path = _join(base, self.name)
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def token(self) -> LeaseToken:
        """The picklable token that workers check before committing a shard."""
        i = self.info
        return LeaseToken(i.out, self.name, i.run_id, i.host, i.boot_id, i.pid, i.pid_start, i.ttl)

    @classmethod
    def acquire(cls, fs: pafs.FileSystem, base: str, out_uri: str, recipe: str, ttl: float | None = None) -> "Lease":
        """Take the lease on ``base`` or raise :class:`LeaseHeld` naming the live holder."""
        ttl = lease_ttl() if ttl is None else ttl
        now = time.time()
        info = LeaseInfo(uuid.uuid4().hex, socket.gethostname(), _boot_id(), os.getpid(), _pid_start(os.getpid()),
                         now, now, ttl, recipe, out_uri)
        lease = cls(fs, base, info)
        for round_ in range(ACQUIRE_ROUNDS):
            holder = lease._live_other()
            if holder is not None:
                raise LeaseHeld(f"{out_uri}: another run is writing here ({holder}); wait for it to finish, "
                                f"or stop it (a killed run's lease expires {ttl:.0f} s after its last heartbeat)")
            lease._write()
            if lease._live_other() is None:
                lease._start_heartbeat()
                return lease
            # Someone wrote theirs between our two listings: back off and let one of us win.
            lease._delete()
            time.sleep(random.uniform(0.05, 0.25) * (round_ + 1))
        raise LeaseHeld(f"{out_uri}: another run keeps starting here at the same moment; try again")

    def _live_other(self) -> str | None:
        now = time.time()
        for name in _lease_names(self.fs, self.base):
            if name == self.name:
                continue
            path = _join(self.base, name)
            data = _get(self.fs, path)
            if data is None:
                continue
            other = LeaseInfo.parse(data)
            if other is None:
                mtime = self.fs.get_file_info(path).mtime
                if mtime is not None and now - mtime.timestamp() > self.info.ttl:
                    self._remove_stale(path, "it is unreadable and old")
                    continue
                return f"an unreadable lease object {name}"
            reason = other.stale_reason(now)
            if reason:
                self._remove_stale(path, f"{other.describe(now)}: {reason}")
                continue
            return other.describe(now)
        return None

    def _remove_stale(self, path: str, why: str) -> None:
        log.warning("taking over a stale lease (%s)", why)
        try:
            self.fs.delete_file(path)
        except FileNotFoundError:
            pass

    def _write(self) -> None:
        _put(self.fs, self.path, (json.dumps(asdict(self.info), indent=1) + "\n").encode())

    def _delete(self) -> None:
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            pass

    def _start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="synth-lease-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        interval = self.info.ttl / 6
        warned = False
        while not self._stop.wait(interval):
            try:
                current = LeaseInfo.parse(_get(self.fs, self.path) or b"")
                if current is None or current.run_id != self.info.run_id:
                    self.lost = "its lease object was removed or replaced by another run"
                    return
                self.info.heartbeat = time.time()
                self._write()
                warned = False
            except OSError as exc:  # keep trying: the lease expires only after ttl
                if not warned:
                    log.warning("lease heartbeat failed (%s); retrying", " ".join(str(exc).split()))
                    warned = True

    def check(self) -> None:
        """Raise :class:`LeaseLost` when the heartbeat found the lease gone."""
        if self.lost:
            raise LeaseLost(f"{self.info.out}: this run lost its lease ({self.lost}); stopped without writing more")

    def release(self) -> None:
        """Stop the heartbeat and delete the lease object if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            current = LeaseInfo.parse(_get(self.fs, self.path) or b"")
            if current is not None and current.run_id == self.info.run_id:
                self._delete()
        except OSError as exc:
            log.warning("could not release the lease %s: %s", self.path, " ".join(str(exc).split()))


def current_holder(fs: pafs.FileSystem, base: str) -> dict[str, Any] | None:
    """The live lease on ``base`` as a dict, or None (for readers that want to say so)."""
    now = time.time()
    for name in _lease_names(fs, base):
        info = LeaseInfo.parse(_get(fs, _join(base, name)) or b"")
        if info is not None and info.stale_reason(now) is None:
            return asdict(info)
    return None
