"""Export a fine-tuned run in the released DeepSeek-OCR checkpoint's format.

    python -m train.export --run runs/ft --out export/DeepSeek-OCR-ft [--checkpoint C] [--dtype bfloat16]
    python -m train.export --run runs/ft-lora --adapter --out export/DeepSeek-OCR-lora


The result loads in the official HF remote code unchanged (docs/finetune.md): official
key names and layouts, config.json, tokenizer files, and the remote code and configs of
the snapshot the run started from (``--init-official``). A LoRA run's adapters are merged
into the base weights first (``train.lora.merge_lora``). The run must use DeepSeek-OCR's
tokenizer: the official code hard-codes ``<image>`` = 128815, bos 0 and eos 1. A run that
did not start from a snapshot (``--official-tokenizer`` from scratch) has no remote code to
carry over: its export holds the weights, config.json and tokenizer, and the official
``*.py`` files and ``auto_map`` have to be copied in from a hub snapshot.

``--adapter`` writes a LoRA run's adapters alone, as a PEFT adapter of the official model
(``adapter_model.safetensors`` under official module names, ``adapter_config.json``;
train.official.adapter): ``PeftModel.from_pretrained(official_model, DIR)`` applies it to
the model the run started from (docs/finetune.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from synth.cli import Parser, UsageError, show_defaults
from synth.cli import run as run_cli

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
SOURCE_DTYPES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}  # safetensors' names


class NotExportable(ValueError):
    """A run that cannot become an official checkpoint (stage 1, the project's own tokenizer), or an
    adapter (not a LoRA run)."""


def _run_info(run: Path) -> tuple[dict[str, Any], Any]:
    """run.json of an exportable run (stage 2, DeepSeek-OCR's tokenizer) and its tokenizer."""
    from train.loop import RUN_FILE, TOKENIZER_FILE
    from train.tokenizer import OCRTokenizer

    info_path = run / RUN_FILE
    if not info_path.is_file():
        raise NotExportable(f"--run {run}: no {RUN_FILE} (not a training run directory)")
    info = json.loads(info_path.read_text())
    if info["args"].get("stage") != 2:
        raise NotExportable(f"--run {run}: a stage-{info['args'].get('stage')} run; only stage-2 models (the full "
                            f"DeepSeek-OCR) can be exported")
    tok = OCRTokenizer.load(run / TOKENIZER_FILE)
    if not tok.official:
        raise NotExportable(f"--run {run}: trained with the project's own tokenizer; the official code needs "
                            f"DeepSeek-OCR's (train with --init-official or --official-tokenizer)")
    return info, tok


def _base_model_name(run: Path, info: dict[str, Any]) -> str | None:
    """What the adapter applies to: the snapshot's hub name (its config.json's ``_name_or_path``,
    "deepseek-ai/DeepSeek-OCR" for the release), else the snapshot's or base checkpoint's path."""
    from train.official.export import RUN_SUBDIR

    base = info.get("base") or {}
    kept = run / RUN_SUBDIR / "config.json"
    if base.get("init_official") and kept.is_file():
        name = json.loads(kept.read_text()).get("_name_or_path")
        if name:
            return str(name)
    return base.get("init_official") or base.get("init_from")


def export_run(run: str | Path, out: str | Path, checkpoint: str | Path | None = None,
               dtype: str | None = None) -> Path:
    """Export run ``run``'s checkpoint (default: its latest) to ``out``; returns ``out``."""
    from train.configs import config_from_dict
    from train.loop import RUN_FILE, load_model_from_checkpoint, resolve_checkpoint
    from train.official.export import PATCH_FILE, RUN_SUBDIR, SOURCE_FILE, export_official
    from train.official.load import empty_model
    from train.official.st_io import read_header, read_tensor

    run = Path(run)
    info, tok = _run_info(run)
    cfg = config_from_dict(info["model_config"], str(run / RUN_FILE))
    kept = run / RUN_SUBDIR
    source = json.loads((kept / SOURCE_FILE).read_text()) if (kept / SOURCE_FILE).is_file() else {}
    dtype = dtype or SOURCE_DTYPES.get(source.get("dtype", ""), "bfloat16")
    if dtype not in DTYPES:
        raise NotExportable(f"--dtype {dtype}: valid are {', '.join(DTYPES)}")
    out_dtype = DTYPES[dtype]
    ckpt = resolve_checkpoint(checkpoint or run)
    found, _ = read_header(ckpt / "model.safetensors")
    # A LoRA run's checkpoint holds adapters only: its recorded base is loaded, the adapters
    # applied and merged (train.loop.load_model_from_checkpoint), at the export's dtype.
    work_dtype = out_dtype if info.get("lora") else next(iter(found.values())).dtype
    model = empty_model(cfg, int(info["vocab_size"]), tok.image_id, work_dtype)
    load_model_from_checkpoint(model, ckpt)
    extras = {}
    if (kept / PATCH_FILE).is_file():
        extras = {k: read_tensor(v) for k, v in read_header(kept / PATCH_FILE)[0].items()}
    return export_official(model, cfg, tok, out, dtype=out_dtype, extras=extras,
                           files_from=kept if kept.is_dir() else None)


def export_adapter(run: str | Path, out: str | Path, checkpoint: str | Path | None = None) -> Path:
    """Write LoRA run ``run``'s adapters (its checkpoint ``checkpoint``, default the latest)
    as a PEFT adapter of the official model in ``out``; returns ``out``."""
    from safetensors.torch import load_file

    from train.checkpoint import ADAPTERS, CheckpointMismatch
    from train.configs import config_from_dict
    from train.loop import RUN_FILE, resolve_checkpoint
    from train.lora import LoraConfig
    from train.official.adapter import write_peft_adapter

    run = Path(run)
    info, _tok = _run_info(run)
    if not info.get("lora"):
        raise NotExportable(f"--run {run}: not a LoRA run (its checkpoints hold the whole model); --adapter "
                            f"exports a LoRA run's adapters, export this run without it")
    cfg = config_from_dict(info["model_config"], str(run / RUN_FILE))
    ckpt = resolve_checkpoint(checkpoint or run)
    meta = json.loads((ckpt / "state.json").read_text()) if (ckpt / "state.json").is_file() else {}
    if meta.get("model_tensors") != ADAPTERS:
        raise CheckpointMismatch(f"{ckpt / 'model.safetensors'}: holds a whole model, not the LoRA adapters "
                                 f"of run {run}")
    adapters = load_file(str(ckpt / "model.safetensors"))
    want = {f"{p}.lora_{ab}.weight" for p in info.get("lora_modules") or [] for ab in "AB"}
    if want and set(adapters) != want:
        odd = sorted(set(adapters) ^ want)
        raise CheckpointMismatch(f"{ckpt / 'model.safetensors'}: adapter keys differ from the run's "
                                 f"lora_modules ({len(odd)} keys, e.g. {odd[:3]})")
    try:
        return write_peft_adapter(adapters, cfg, LoraConfig(**info["lora"]), out, _base_model_name(run, info))
    except ValueError as exc:
        raise CheckpointMismatch(f"{ckpt / 'model.safetensors'}: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    """The CLI's options, each with its help and default."""
    p = Parser(prog="python -m train.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="training run directory (stage 2, DeepSeek-OCR tokenizer)")
    p.add_argument("--out", required=True, help="directory to write the official-format snapshot to")
    p.add_argument("--checkpoint", default=None, help="checkpoint directory (default: the run's newest valid one)")
    p.add_argument("--dtype", default=None, choices=sorted(DTYPES),
                   help="dtype of the written tensors (default: the dtype of the checkpoint the run started from, "
                        "bfloat16 for the released one); not with --adapter (adapters stay float32)")
    p.add_argument("--adapter", action="store_true",
                   help="LoRA runs: write the adapters alone, as a PEFT adapter of the official model "
                        "(adapter_model.safetensors, adapter_config.json), instead of the merged weights")
    return show_defaults(p)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: one JSON line on stdout (errors reach synth.cli.run: one line, exit 2 for
    a run that cannot be exported, 1 for a damaged checkpoint)."""
    a = build_parser().parse_args(argv)
    from train.official.config import OfficialFormatError

    try:
        if a.adapter and a.dtype:
            raise NotExportable(f"--dtype {a.dtype} with --adapter: the adapters are written as trained (float32)")
        out = export_adapter(a.run, a.out, a.checkpoint) if a.adapter else export_run(a.run, a.out, a.checkpoint,
                                                                                      a.dtype)
    except (NotExportable, OfficialFormatError) as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps({"out": str(out), "files": sorted(f.name for f in Path(out).iterdir())}))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="python -m train.export"))
