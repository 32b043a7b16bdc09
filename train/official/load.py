"""Loading a local snapshot of the released DeepSeek-OCR checkpoint into our model.

    loaded = load_official("ckpt/DeepSeek-OCR")          # bf16 on the CPU by default
    loaded.model, loaded.tokenizer, loaded.config

Everything is checked before a weight is read: config.json (a DeepSeek-OCR one, settings
our decoder implements), every file's header (truncation), and the full key set and every
shape against what the config implies; missing, unexpected or misshapen keys give one
error naming them. The model is then built on the meta device (no random init, no
memory), given uninitialised storage in the target dtype, and filled one official tensor
at a time (:mod:`train.official.st_io`): peak host memory is the model plus the largest
tensor. Every parameter element is written by exactly one piece (:mod:`train.official.names`).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from train.configs import ModelConfig, config_from_dict
from train.official.config import OfficialFormatError, model_config_from_official, read_config_json
from train.official.names import CLIP_PATCH_EMBEDDING, official_shapes, pieces, region
from train.official.st_io import TensorInfo, read_header, read_tensor
from train.official.tokenizer import snapshot_tokenizer
from train.tokenizer import OCRTokenizer

INDEX_FILE = "model.safetensors.index.json"
# Keys that only DeepSeek-OCR-2's encoder has (its CLIP is replaced by a Qwen2-style model).
_OCR2_HINT = re.compile(r"qwen2|query_768|query_1024")


@dataclass
class Snapshot:
    """A checked snapshot: its config.json, tensors, derived ModelConfig and vocabulary."""

    path: Path
    raw_config: dict[str, Any]
    tensors: dict[str, TensorInfo]
    config: ModelConfig
    dtype: torch.dtype  # the checkpoint's (most common) dtype

    @property
    def vocab_rows(self) -> int:
        """Rows of the checkpoint's embedding (its vocabulary size)."""
        return self.config.decoder.vocab_size


@dataclass
class LoadedOfficial:
    """What :func:`load_official` returns."""

    model: torch.nn.Module
    config: ModelConfig
    tokenizer: OCRTokenizer
    snapshot: Snapshot
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # official tensors we do not use


def find_tensors(snapshot: Path) -> dict[str, TensorInfo]:
    """Every tensor of a snapshot: through model.safetensors.index.json when present, else
    every ``*.safetensors`` file of the directory."""
    index = snapshot / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise OfficialFormatError(f"{index}: no readable weight_map ({exc})") from None
        files = sorted(set(weight_map.values()))
        absent = [f for f in files if not (snapshot / f).is_file()]
        if absent:
            raise OfficialFormatError(f"{index}: names {absent} which are not in {snapshot} (incomplete download?)")
    else:
        files = sorted(p.name for p in snapshot.glob("*.safetensors"))
        if not files:
            raise OfficialFormatError(f"{snapshot}: no *.safetensors weights and no {INDEX_FILE}")
        weight_map = None
    tensors: dict[str, TensorInfo] = {}
    for name in files:
        found, _meta = read_header(snapshot / name)
        for key, info in found.items():
            if key in tensors:
                raise OfficialFormatError(f"{snapshot / name}: tensor {key} is also in {tensors[key].file.name}")
            tensors[key] = info
    if weight_map is not None:
        wrong = [k for k, f in weight_map.items() if k not in tensors or tensors[k].file.name != f]
        if wrong:
            raise OfficialFormatError(f"{index}: {len(wrong)} keys not in the file it names, e.g. {wrong[:3]}")
    return tensors


def _listing(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def check_keys(tensors: dict[str, TensorInfo], cfg: ModelConfig, source: str) -> None:
    """Refuse, in one line, missing, unexpected and misshapen keys."""
    want = official_shapes(cfg)
    missing = sorted(set(want) - set(tensors))
    unexpected = sorted(set(tensors) - set(want))
    if any(_OCR2_HINT.search(k) for k in unexpected):
        raise OfficialFormatError(f"{source}: keys such as {_listing([k for k in unexpected if _OCR2_HINT.search(k)], 2)} "
                                  f"belong to DeepSeek-OCR-2's encoder, which differs from DeepSeek-OCR's; only "
                                  f"DeepSeek-OCR checkpoints can be loaded")
    wrong = [f"{k} {list(tensors[k].shape)} (expected {list(want[k])})" for k in want
             if k in tensors and tensors[k].shape != want[k]]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} keys of the wrong shape: {_listing(wrong, 4)}")
    if problems:
        raise OfficialFormatError(f"{source}: does not match the DeepSeek-OCR model its config.json describes: "
                                  + "; ".join(problems))


def read_snapshot(path: str | Path, overrides: dict[str, Any] | None = None) -> Snapshot:
    """Check a snapshot (config, headers, keys, shapes) without reading weights.

    ``overrides``: ``encoder`` / ``decoder`` field overrides applied to the derived config
    (e.g. ``{"encoder": {"gundam_max_tiles": 6}}``, vLLM's tiling); overriding a dimension
    makes the shape check fail, naming the keys.
    """
    snapshot = Path(path)
    if not snapshot.is_dir():
        raise OfficialFormatError(f"--init-official {snapshot}: not a directory (give the local snapshot of "
                                  f"deepseek-ai/DeepSeek-OCR)")
    raw = read_config_json(snapshot)
    tensors = find_tensors(snapshot)
    source = str(snapshot)
    cfg = model_config_from_official(raw, {k: v.shape for k, v in tensors.items()}, source)
    if overrides:
        data = dataclasses.asdict(cfg)
        unknown = sorted(set(overrides) - {"encoder", "decoder"})
        if unknown:
            raise OfficialFormatError(f"config overrides: unknown section(s) {unknown}; valid are encoder, decoder")
        for sec in ("encoder", "decoder"):
            data[sec].update(overrides.get(sec) or {})
        try:
            cfg = config_from_dict(data, source="config overrides")
        except ValueError as exc:
            raise OfficialFormatError(str(exc)) from None
    check_keys(tensors, cfg, source)
    counts: dict[torch.dtype, int] = {}
    for info in tensors.values():
        counts[info.dtype] = counts.get(info.dtype, 0) + (info.end - info.start)
    return Snapshot(snapshot, raw, tensors, cfg, max(counts, key=counts.get))


def empty_model(cfg: ModelConfig, vocab_size: int, image_token_id: int, dtype: torch.dtype = torch.bfloat16,
                device: str | torch.device = "cpu") -> torch.nn.Module:
    """A stage-2 OCRModel of ``cfg`` with uninitialised storage on ``device``: built on the
    meta device, so no random init runs and nothing is allocated twice."""
    from train.model.ocr_model import OCRModel

    with torch.device("meta"):
        model = OCRModel(cfg, vocab_size=vocab_size, image_token_id=image_token_id, stage=2)
    return model.to(dtype).to_empty(device=device)


def load_weights(model: torch.nn.Module, snap: Snapshot) -> dict[str, torch.Tensor]:
    """Fill ``model``'s parameters from the snapshot, one official tensor at a time;
    returns the official tensors the model has no parameter for (CLIP's patch embedding)."""
    params = dict(model.named_parameters())
    by_key: dict[str, list] = {}
    covered = {name: 0 for name in params}
    for p in pieces(snap.config):
        by_key.setdefault(p.official, []).append(p)
        covered[p.ours] += region(params[p.ours], p.ours_index).numel()
    partial = [n for n, c in covered.items() if c != params[n].numel()]
    if partial:  # the mapping itself is wrong: a bug, never a bad checkpoint
        raise RuntimeError(f"train.official.names covers {partial[:3]} only partly or more than once")
    extras: dict[str, torch.Tensor] = {}
    order = sorted(snap.tensors.items(), key=lambda kv: (str(kv[1].file), kv[1].start))  # sequential reads
    with torch.no_grad():
        for key, info in order:
            t = read_tensor(info)
            if key not in by_key:
                extras[key] = t
                continue
            for p in by_key[key]:
                dest = region(params[p.ours].data, p.ours_index)
                dest.copy_(region(t, p.official_index).reshape(dest.shape))
            del t
    return extras


def load_official(path: str | Path, *, dtype: torch.dtype = torch.bfloat16, device: str | torch.device = "cpu",
                  tokenizer: str | Path | None = None, overrides: dict[str, Any] | None = None) -> LoadedOfficial:
    """The released model (or any DeepSeek-OCR-format snapshot) as our OCRModel, in eval mode.

    path: the snapshot directory (config.json, model.safetensors or an index of several,
        tokenizer files if present). dtype/device: of the parameters (bf16 halves the
        memory of float32, the trainer's choice). tokenizer: a tokenizer.json to use
        instead of the snapshot's (or the package's) DeepSeek-OCR tokenizer.
    overrides: see :func:`read_snapshot`.
    """
    snap = read_snapshot(path, overrides)
    tok = snapshot_tokenizer(snap.path, snap.vocab_rows, tokenizer)
    model = empty_model(snap.config, snap.vocab_rows, tok.image_id, dtype, device)
    extras = load_weights(model, snap)
    unknown = sorted(set(extras) - {CLIP_PATCH_EMBEDDING})
    if unknown:  # check_keys let them through only if the mapping and official_shapes disagree
        raise RuntimeError(f"train.official: tensors {unknown[:3]} passed the key check but have no piece")
    model.eval()
    return LoadedOfficial(model, snap.config, tok, snap, extras)
