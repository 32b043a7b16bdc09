"""Checkpoints: model and optimizer tensors in safetensors, everything else in JSON.

Layout of one checkpoint directory (``RUN_DIR/checkpoints/step-00001000/``):

    model.safetensors      the model's state (shared/tied tensors stored once); in a LoRA
                           run the adapters alone (state.json: ``model_tensors: "lora_adapters"``)
    optimizer.safetensors  optimizer state tensors ``opt.<param index>.<name>`` and the
                           RNG states ``rng.torch`` / ``rng.cuda.<device>``
    state.json             step, epoch, batch position in the epoch, scheduler settings,
                           optimizer param_groups and non-tensor state, run metadata

``RUN_DIR/checkpoints/latest`` names the newest complete checkpoint. A checkpoint is
written into a temporary directory and renamed into place, so a kill mid-save leaves the
previous one intact.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file, save_model

LATEST = "latest"
ADAPTERS = "lora_adapters"  # state.json's model_tensors when model.safetensors holds LoRA adapters only


def step_dir(run_dir: str | Path, step: int) -> Path:
    """The directory of the checkpoint taken after ``step`` optimizer steps."""
    return Path(run_dir) / "checkpoints" / f"step-{step:08d}"


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
    keep: how many newest checkpoints to keep (older ones are deleted).
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
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    latest = final.parent / LATEST
    latest_tmp = final.parent / (LATEST + ".tmp")
    latest_tmp.write_text(final.name + "\n")
    os.replace(latest_tmp, latest)
    _prune(final.parent, keep)
    return final


def _prune(ckpt_root: Path, keep: int) -> None:
    done = sorted(p for p in ckpt_root.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp"))
    for old in done[: max(0, len(done) - keep)]:
        shutil.rmtree(old, ignore_errors=True)


def latest(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    marker = Path(run_dir) / "checkpoints" / LATEST
    if not marker.exists():
        return None
    path = marker.parent / marker.read_text().strip()
    return path if (path / "state.json").exists() else None


def load_model_weights(ckpt: str | Path, model: torch.nn.Module, strict: bool = True) -> None:
    """Load a checkpoint's model.safetensors into model (in place), one tensor at a time, so
    the host holds the model plus its largest tensor (the paper model's file is 13 GB)."""
    path = Path(ckpt) / "model.safetensors"
    state = model.state_dict()  # the model's own parameter and buffer tensors, by name
    with safe_open(str(path), framework="pt") as f:
        keys = list(f.keys())
        missing, unexpected = sorted(set(state) - set(keys)), sorted(set(keys) - set(state))
        if strict and (missing or unexpected):
            raise RuntimeError(f"{ckpt}: missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")
        with torch.no_grad():
            for key in keys:
                if key in state:
                    state[key].copy_(f.get_tensor(key))


def load_state_dict(ckpt: str | Path) -> dict[str, torch.Tensor]:
    """A checkpoint's model tensors as a plain state dict (on CPU)."""
    return load_file(str(Path(ckpt) / "model.safetensors"))


def restore(ckpt: str | Path, model: torch.nn.Module, opt: torch.optim.Optimizer | None,
            load_adapters: Callable[[dict[str, torch.Tensor]], None] | None = None) -> dict[str, Any]:
    """Load model, optimizer and RNG state; return state.json's contents.

    load_adapters: for a LoRA run, what loads its adapters (the checkpoint must hold them,
    and nothing but them); None for a run that trains the whole model.
    """
    ckpt = Path(ckpt)
    meta = json.loads((ckpt / "state.json").read_text())
    adapters = meta.get("model_tensors") == ADAPTERS
    if adapters != (load_adapters is not None):
        held, run = ("LoRA adapters only", "is not") if adapters else ("a whole model", "is")
        raise ValueError(f"{ckpt}: holds {held}, but this run {run} a LoRA run: resume it with the --lora-* "
                         "options it was started with")
    if adapters:
        load_adapters(load_file(str(ckpt / "model.safetensors")))
    else:
        load_model_weights(ckpt, model)
    tensors = load_file(str(ckpt / "optimizer.safetensors"))
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
