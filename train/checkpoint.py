"""Checkpoints: model and optimizer tensors in safetensors, everything else in JSON.

Layout of one checkpoint directory (``RUN_DIR/checkpoints/step-00001000/``):

    model.safetensors      the model's state (shared/tied tensors stored once); in a LoRA
                           run the adapters alone (state.json: ``model_tensors: "lora_adapters"``)
    optimizer.safetensors  optimizer state tensors ``opt.<param index>.<name>`` and the
                           RNG states ``rng.torch`` / ``rng.cuda.<device>``
    state.json             step, epoch, batch position in the epoch, scheduler settings,
                           optimizer param_groups and non-tensor state, run metadata
    checksums.json         size and sha256 of every other file; written last

A checkpoint is written into ``step-N.tmp/`` and renamed into place, and its
``checksums.json`` is the last file written: a directory without it is incomplete. On
resume every ``step-*`` directory is a candidate, newest first, and the first one whose
files all match their recorded size and sha256 is taken (:func:`find_latest`); the others
are reported with the reason, one line each. ``RUN_DIR/checkpoints/latest`` names the
newest checkpoint written, for people and older tools; resume does not trust it, so a
``latest`` holding garbage or naming a deleted directory cannot send a run back to step 0.
Pruning removes only complete checkpoints older than the ``keep`` newest, so the last
valid one always stays.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file, save_model

LATEST = "latest"
ADAPTERS = "lora_adapters"  # state.json's model_tensors when model.safetensors holds LoRA adapters only
CHECKSUMS = "checksums.json"
REQUIRED = ("model.safetensors", "optimizer.safetensors", "state.json")
_STEP_DIR = re.compile(r"^step-(\d+)$")
_CHUNK = 1 << 22  # 4 MiB reads: hashing runs at the disk's speed, in bounded memory


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file at fault and why."""


class CheckpointMismatch(CheckpointError):
    """A readable checkpoint whose tensors are not the model's (another config or model)."""


def step_dir(run_dir: str | Path, step: int) -> Path:
    """The directory of the checkpoint taken after ``step`` optimizer steps."""
    return Path(run_dir) / "checkpoints" / f"step-{step:08d}"


def sha256_file(path: str | Path) -> str:
    """The sha256 hex digest of a file, read in chunks (never whole into memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def write_checksums(ckpt: Path) -> None:
    files = sorted(p.name for p in ckpt.iterdir() if p.is_file() and p.name != CHECKSUMS)
    doc = {"algorithm": "sha256",
           "files": {n: {"bytes": (ckpt / n).stat().st_size, "sha256": sha256_file(ckpt / n)} for n in files}}
    tmp = ckpt / (CHECKSUMS + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, ckpt / CHECKSUMS)


def check(ckpt: str | Path, files: tuple[str, ...] | None = None) -> str | None:
    """Why the checkpoint directory ``ckpt`` cannot be used, in one line; None when it can.

    Complete means ``checksums.json`` exists and lists model, optimizer and state files;
    valid means every listed file (or only ``files``, when given: generation needs the
    weights alone) has its recorded size and sha256. Size is compared first, so a
    truncated file is named as such without being read.
    """
    ckpt = Path(ckpt)
    if not ckpt.is_dir():
        return f"{ckpt}: no such checkpoint directory"
    sums = ckpt / CHECKSUMS
    if not sums.is_file():
        return f"{sums}: missing, so the checkpoint is incomplete (its save did not finish)"
    try:
        listed = json.loads(sums.read_text())["files"]
        assert isinstance(listed, dict)
    except (ValueError, KeyError, TypeError, AssertionError, UnicodeDecodeError) as exc:
        return f"{sums}: unreadable ({type(exc).__name__}: {exc})"
    missing = [n for n in REQUIRED if n not in listed]
    if missing:
        return f"{sums}: lists no {', '.join(missing)}"
    for name in files if files is not None else sorted(listed):
        path = ckpt / name
        if name not in listed:
            return f"{path}: not listed in {CHECKSUMS}"
        want = listed[name]
        if not path.is_file():
            return f"{path}: missing (listed in {CHECKSUMS})"
        size = path.stat().st_size
        if size != want.get("bytes"):
            kind = "truncated" if size < want.get("bytes", 0) else "grown"
            return f"{path}: {size} bytes where {CHECKSUMS} records {want.get('bytes')} ({kind})"
        if sha256_file(path) != want.get("sha256"):
            return f"{path}: sha256 differs from the one in {CHECKSUMS} (the file changed after it was written)"
    return None


def verify(ckpt: str | Path, files: tuple[str, ...] | None = None) -> Path:
    """``ckpt`` as a Path after :func:`check`; raises CheckpointError with its reason."""
    why = check(ckpt, files)
    if why is not None:
        raise CheckpointError(why)
    return Path(ckpt)


def _step_of(p: Path) -> int | None:
    m = _STEP_DIR.match(p.name)
    return int(m.group(1)) if m and p.is_dir() else None


def checkpoints(run_dir: str | Path) -> list[Path]:
    """A run's checkpoint directories (``step-N``, no temporaries), newest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(s, p) for p in root.iterdir() if (s := _step_of(p)) is not None]
    return [p for _, p in sorted(found, reverse=True)]


@dataclass
class Found:
    """What :func:`find_latest` decided: the checkpoint to use (or None) and one line per
    checkpoint (or ``latest`` marker) it passed over, with the reason."""

    path: Path | None
    skipped: list[str] = field(default_factory=list)


def find_latest(run_dir: str | Path, files: tuple[str, ...] | None = None) -> Found:
    """The newest complete and valid checkpoint of a run, and why newer ones were passed over.

    ``files``: verify only these files (see :func:`check`); default every file.
    """
    root = Path(run_dir) / "checkpoints"
    out = Found(None)
    examined = set()
    for ck in checkpoints(run_dir):
        examined.add(ck.name)
        why = check(ck, files)
        if why is None:
            out.path = ck
            break
        out.skipped.append(why)
    marker = root / LATEST
    if marker.is_file() and out.path is not None:
        try:
            named: str | None = marker.read_text().strip()
        except (OSError, UnicodeDecodeError):
            named = None
        if named not in examined:  # a checkpoint examined above has its own line already
            shown = repr(named[:40]) if named is not None else "unreadable bytes"
            what = "an older checkpoint" if named and _STEP_DIR.match(named) and (root / named).is_dir() \
                else "no checkpoint directory"
            out.skipped.append(f"{marker}: names {shown}, {what}; ignored")
    return out


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{idx}.{k}"] = v.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(idx), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def save(run_dir: str | Path, step: int, model: torch.nn.Module, opt: torch.optim.Optimizer,
         state: dict[str, Any], keep: int = 2, extra: dict[str, dict[str, torch.Tensor]] | None = None,
         model_state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write a checkpoint of the (unwrapped) model, optimizer, RNG and ``state``.

    state: JSON-serialisable training position (epoch, batch in epoch, schedule ...).
    keep: how many newest complete checkpoints to keep (at least this one is kept).
    extra: more safetensors files to write into the checkpoint, {file name: tensors}.
    model_state: tensors to store as model.safetensors instead of the whole model (a LoRA
      run's adapters; ``state`` then says ``model_tensors: ADAPTERS``).
    """
    final = step_dir(run_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    if model_state is None:
        save_model(model, str(tmp / "model.safetensors"))
    else:
        save_file({k: v.detach().contiguous().cpu() for k, v in model_state.items()}, str(tmp / "model.safetensors"))
    tensors, opt_json = _optimizer_tensors(opt)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    for name, ts in (extra or {}).items():
        save_file({k: v.detach().cpu().clone().contiguous() for k, v in ts.items()}, str(tmp / name))
    meta = {"step": step, **state, "optimizer": opt_json}
    (tmp / "state.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    write_checksums(tmp)  # last: its presence is what makes the checkpoint complete
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    latest = final.parent / LATEST
    latest_tmp = final.parent / (LATEST + ".tmp")
    latest_tmp.write_text(final.name + "\n")
    os.replace(latest_tmp, latest)
    _prune(Path(run_dir), step, keep)
    return final


def _prune(run_dir: Path, step: int, keep: int) -> None:
    """Delete complete checkpoints older than the ``keep`` newest up to ``step``.

    Checkpoints after ``step`` (left by a run that resumed before them because they were
    invalid) and incomplete ones are left for a person to look at; the one just written is
    always kept, whatever ``keep`` says.
    """
    done = [p for p in checkpoints(run_dir) if _step_of(p) <= step and (p / CHECKSUMS).is_file()]
    for old in done[max(1, keep):]:
        shutil.rmtree(old, ignore_errors=True)


def latest(run_dir: str | Path, files: tuple[str, ...] | None = None) -> Path | None:
    """The newest complete and valid checkpoint of a run, or None (see :func:`find_latest`)."""
    return find_latest(run_dir, files).path


def _load(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def load_model_weights(ckpt: str | Path, model: torch.nn.Module, strict: bool = True) -> None:
    """Load a checkpoint's model.safetensors into model (in place), one tensor at a time, so
    the host holds the model plus its largest tensor (the paper model's file is 13 GB)."""
    path = Path(ckpt) / "model.safetensors"
    state = model.state_dict()  # the model's own parameter and buffer tensors, by name
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
            missing, unexpected = sorted(set(state) - set(keys)), sorted(set(keys) - set(state))
            if strict and (missing or unexpected):
                raise CheckpointMismatch(f"{path}: does not match the model: missing keys {missing[:5]}, "
                                         f"unexpected keys {unexpected[:5]}")
            with torch.no_grad():
                for key in keys:
                    if key in state:
                        state[key].copy_(f.get_tensor(key))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def load_state_dict(ckpt: str | Path) -> dict[str, torch.Tensor]:
    """A checkpoint's model tensors as a plain state dict (on CPU)."""
    return _load(Path(ckpt) / "model.safetensors")


def restore(ckpt: str | Path, model: torch.nn.Module, opt: torch.optim.Optimizer | None,
            load_adapters: Callable[[dict[str, torch.Tensor]], None] | None = None) -> dict[str, Any]:
    """Load model, optimizer and RNG state; return state.json's contents.

    load_adapters: for a LoRA run, what loads its adapters (the checkpoint must hold them,
    and nothing but them); None for a run that trains the whole model.
    """
    ckpt = Path(ckpt)
    try:
        meta = json.loads((ckpt / "state.json").read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{ckpt / 'state.json'}: unreadable ({exc})") from None
    adapters = meta.get("model_tensors") == ADAPTERS
    if adapters != (load_adapters is not None):
        held, run = ("LoRA adapters only", "is not") if adapters else ("a whole model", "is")
        raise ValueError(f"{ckpt}: holds {held}, but this run {run} a LoRA run: resume it with the --lora-* "
                         "options it was started with")
    if adapters:
        load_adapters(_load(ckpt / "model.safetensors"))
    else:
        load_model_weights(ckpt, model)
    tensors = _load(ckpt / "optimizer.safetensors")
    if opt is not None:
        opt_json = meta["optimizer"]
        state: dict[int, dict[str, Any]] = {}
        for key, v in tensors.items():
            if key.startswith("opt."):
                _, idx, name = key.split(".", 2)
                state.setdefault(int(idx), {})[name] = v
        for idx, sc in opt_json["scalars"].items():
            state.setdefault(int(idx), {}).update(sc)
        opt.load_state_dict({"state": state, "param_groups": opt_json["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    if torch.cuda.is_available():
        cuda_states = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))]
        if cuda_states:
            torch.cuda.set_rng_state_all(cuda_states[: torch.cuda.device_count()])
    return meta
