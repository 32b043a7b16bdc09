"""A LoRA run's adapters as a PEFT adapter of the official DeepSeek-OCR model.

PEFT's on-disk format (checked against peft 0.21's ``save_pretrained``): a directory with

* ``adapter_model.safetensors``: for every adapted ``nn.Linear`` at module path M of the
  official model, ``base_model.model.M.lora_A.weight`` [r, in] and ``...lora_B.weight``
  [out, r] (float32 here, as trained);
* ``adapter_config.json``: ``peft_type: LORA``, ``r``, ``lora_alpha`` (scaling alpha / r),
  ``lora_dropout``, ``target_modules`` (the exact module paths, which PEFT matches by
  equality), ``fan_in_fan_out: false``, ``bias: none``, ``task_type``, ``base_model_name_or_path``.

Our adapters live on our layout (train/lora.py), so each is split into the official
modules it covers with :func:`train.official.names.official_targets`: a fused gate/up
adapter (A, B) becomes gate_proj (A, B[:I]) and up_proj (A, B[I:]); a stacked expert
adapter (A [E, r, in], B [E, out, r]) becomes ``experts.{e}.*`` (A[e], B[e][rows]). Both
are exact: the rows of B A are the rows of B times A. CLIP's ``qkv`` stays fused, as the
official ``qkv_proj`` is. So applying the adapter to the released weights (PEFT's merge,
W + B A * alpha / r per module) gives our merged export's weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from train.configs import ModelConfig
from train.lora import LoraConfig
from train.official.names import official_targets
from train.official.st_io import SafetensorsWriter

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
PEFT_PREFIX = "base_model.model."  # PeftModel.base_model (LoraModel).model is the official model
TASK_TYPE = "CAUSAL_LM"  # DeepseekOCRForCausalLM: PEFT wraps it in PeftModelForCausalLM
_A, _B = ".lora_A.weight", ".lora_B.weight"


def official_adapters(adapters: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Our adapter tensors (train.lora.adapter_state_dict's names) -> {official module path:
    (A, B)}, split as the module docstring says. Every adapter must come as an A/B pair."""
    out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    paths = sorted(k[: -len(_A)] for k in adapters if k.endswith(_A))
    unpaired = sorted(set(adapters) - {p + s for p in paths for s in (_A, _B)})
    if unpaired:
        raise ValueError(f"adapters: {unpaired[:3]} have no lora_A/lora_B partner")
    for path in paths:
        a, b = adapters[path + _A], adapters[path + _B]
        for t in official_targets(path, cfg):
            ae, be = (a[t.expert], b[t.expert]) if t.expert is not None else (a, b)
            if t.rows is not None:
                be = be[t.rows[0]: t.rows[1]]
            if t.module in out:
                raise ValueError(f"adapters: official module {t.module} is adapted twice (from {path})")
            out[t.module] = (ae.contiguous(), be.contiguous())
    return out


def adapter_config(lora: LoraConfig, modules: list[str], base_model: str | None) -> dict[str, Any]:
    """adapter_config.json for adapters on ``modules`` (fields every PEFT >= 0.7 reads)."""
    return {
        "peft_type": "LORA", "task_type": TASK_TYPE, "base_model_name_or_path": base_model, "revision": None,
        "r": lora.rank, "lora_alpha": lora.alpha, "lora_dropout": lora.dropout, "target_modules": sorted(modules),
        "fan_in_fan_out": False, "bias": "none", "modules_to_save": None, "init_lora_weights": True,
        "use_rslora": False, "rank_pattern": {}, "alpha_pattern": {}, "inference_mode": True,
    }


def write_peft_adapter(adapters: dict[str, torch.Tensor], cfg: ModelConfig, lora: LoraConfig, out: str | Path,
                       base_model: str | None = None) -> Path:
    """Write our adapters (of a model of ``cfg``, trained with ``lora``) as a PEFT adapter
    directory ``out`` for the official model; ``base_model``: what adapter_config.json
    names as ``base_model_name_or_path``. Returns ``out``."""
    split = official_adapters(adapters, cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for module, (a, b) in sorted(split.items()):
        entries += [(PEFT_PREFIX + module + _A, a.dtype, tuple(a.shape)), (PEFT_PREFIX + module + _B, b.dtype, tuple(b.shape))]
    writer = SafetensorsWriter(out / ADAPTER_WEIGHTS, entries)
    try:
        for module, (a, b) in sorted(split.items()):
            writer.write(PEFT_PREFIX + module + _A, a)
            writer.write(PEFT_PREFIX + module + _B, b)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    (out / ADAPTER_CONFIG).write_text(json.dumps(adapter_config(lora, list(split), base_model), indent=2))
    return out
