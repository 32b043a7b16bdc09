"""Our model -> a snapshot in the released checkpoint's format, and what a run keeps for it.

An export directory holds ``model.safetensors`` (official names and layouts,
:mod:`train.official.names`), ``config.json``, the tokenizer files, and the files of the
snapshot the run started from (the HF remote code ``*.py`` its ``auto_map`` names,
``processor_config.json``...), so ``AutoModel.from_pretrained(dir, trust_remote_code=True)``
loads it as it loads the hub's. CLIP's unused ``patch_embedding`` is written back as it
was loaded, or as zeros for a run that never had one.

A run started with ``--init-official`` keeps in ``RUN/official/`` what an export needs
besides the weights: the snapshot's config.json and other small files, the patch
embedding, and ``source.json`` (the snapshot path and its dtype, the export's default).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterator

import torch

from train.configs import ModelConfig
from train.official.config import official_config_json
from train.official.names import CLIP_PATCH_EMBEDDING, official_shapes, pieces, region
from train.official.st_io import NAMES, SafetensorsWriter, read_header, read_tensor
from train.tokenizer import OFFICIAL_BOS, OFFICIAL_EOS, OFFICIAL_PAD, OCRTokenizer

RUN_SUBDIR = "official"
PATCH_FILE = "patch_embedding.safetensors"
SOURCE_FILE = "source.json"
WEIGHTS_FILE = "model.safetensors"
MAX_KEPT_FILE = 64 * 2 ** 20  # snapshot files kept in a run: code and configs, never weights
_NOT_KEPT = ("model.safetensors.index.json", "tokenizer.json")  # rebuilt at export


def keep_snapshot_files(snapshot: Path, source_dtype: torch.dtype, extras: dict[str, torch.Tensor],
                        run_dir: Path) -> Path:
    """Store in ``run_dir/official`` what a later export needs (module docstring)."""
    from safetensors.torch import save_file

    d = run_dir / RUN_SUBDIR
    d.mkdir(parents=True, exist_ok=True)
    for f in sorted(snapshot.iterdir()):
        if f.is_file() and f.suffix != ".safetensors" and f.name not in _NOT_KEPT and f.stat().st_size <= MAX_KEPT_FILE:
            shutil.copy2(f, d / f.name)
    if CLIP_PATCH_EMBEDDING in extras:
        save_file({CLIP_PATCH_EMBEDDING: extras[CLIP_PATCH_EMBEDDING].contiguous()}, str(d / PATCH_FILE))
    (d / SOURCE_FILE).write_text(json.dumps({"snapshot": str(snapshot.resolve()), "dtype": NAMES[source_dtype]}))
    return d


def official_tensors(model: torch.nn.Module, cfg: ModelConfig, vocab_size: int,
                     extras: dict[str, torch.Tensor] | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """Every official tensor of ``model`` in turn (name, tensor in the model's dtype), one
    assembled at a time; the unused patch embedding from ``extras``, else zeros."""
    params = dict(model.named_parameters())
    by_key: dict[str, list] = {}
    for p in pieces(cfg):
        by_key.setdefault(p.official, []).append(p)
    for key, shape in official_shapes(cfg, vocab_size).items():
        if key == CLIP_PATCH_EMBEDDING:
            t = (extras or {}).get(key)
            dtype = next(iter(params.values())).dtype
            yield key, (t if t is not None else torch.zeros(shape, dtype=dtype))
            continue
        parts = by_key[key]
        if len(parts) == 1 and not parts[0].official_index:
            yield key, region(params[parts[0].ours].detach(), parts[0].ours_index).reshape(shape)
            continue
        out = torch.empty(shape, dtype=params[parts[0].ours].dtype, device=params[parts[0].ours].device)
        for p in parts:
            dest = region(out, p.official_index)
            dest.copy_(region(params[p.ours].detach(), p.ours_index).reshape(dest.shape))
        yield key, out


def _tokenizer_config(tok: OCRTokenizer) -> dict[str, Any]:
    """A tokenizer_config.json for an export without the snapshot's own (bos 0, eos 1, pad 2)."""
    return {"tokenizer_class": "LlamaTokenizerFast", "bos_token": OFFICIAL_BOS, "eos_token": OFFICIAL_EOS,
            "pad_token": OFFICIAL_PAD, "add_bos_token": False, "add_eos_token": False,
            "clean_up_tokenization_spaces": False, "legacy": True, "model_max_length": 8192}


def export_official(model: torch.nn.Module, cfg: ModelConfig, tok: OCRTokenizer, out: str | Path, *,
                    dtype: torch.dtype = torch.bfloat16, extras: dict[str, torch.Tensor] | None = None,
                    files_from: str | Path | None = None) -> Path:
    """Write ``model`` (a stage-2 OCRModel of ``cfg``) as an official-format snapshot in ``out``.

    dtype: of the written tensors (the released checkpoint's is bfloat16). extras: the
    official tensors the model has no parameter for (the loaded patch embedding).
    files_from: a directory whose files (config.json first of all, the remote code, the
    tokenizer's config) are carried over: ``RUN/official`` or a snapshot. Tensors are
    streamed: memory holds the model plus one tensor.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab = model.decoder.embed.weight.shape[0]
    base = None
    if files_from:
        src = Path(files_from)
        for f in sorted(src.iterdir()):
            if f.is_file() and f.suffix != ".safetensors" and f.name not in (*_NOT_KEPT, PATCH_FILE, SOURCE_FILE):
                shutil.copy2(f, out / f.name)
        if (src / "config.json").is_file():
            base = json.loads((src / "config.json").read_text())
    shapes = official_shapes(cfg, vocab)
    writer = SafetensorsWriter(out / WEIGHTS_FILE, [(k, dtype, s) for k, s in shapes.items()])
    try:
        for key, t in official_tensors(model, cfg, vocab, extras):
            writer.write(key, t.to("cpu", dtype))
    except BaseException:
        writer.abort()
        raise
    writer.close()
    dtype_name = str(dtype).removeprefix("torch.")
    (out / "config.json").write_text(json.dumps(official_config_json(cfg, vocab, base, dtype_name), indent=2))
    tok.save(out / "tokenizer.json")
    if not (out / "tokenizer_config.json").exists():
        (out / "tokenizer_config.json").write_text(json.dumps(_tokenizer_config(tok), indent=2))
    return out
