"""LoRA runs out in the official format: the merged export, and the adapters alone as a
PEFT adapter of the official model (train.export --adapter, train.official.adapter).

One LoRA fine-tuning run from the small official-format snapshot (every LoRA target, two
CPU steps) is exported both ways. The adapter files are read back as PEFT reads them
(keys ``base_model.model.<module>.lora_A/B.weight``, ``r`` and ``lora_alpha`` from
adapter_config.json) and merged into the snapshot by PEFT's rule, W + B @ A * alpha / r per
target module: that must give the merged export, tensor by tensor.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from tests.official_snapshot import fixture_dir, small_snapshot
from train.checkpoint import latest, write_checksums
from train.export import export_adapter, export_run, main
from train.lora import TARGETS
from train.official.load import find_tensors, load_official
from train.official.st_io import read_tensor

RANK, ALPHA = 8, 24.0
PREFIX = "base_model.model."


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return small_snapshot(tmp_path_factory.mktemp("adapter") / "DeepSeek-OCR")


@pytest.fixture(scope="module")
def lora_run(small, ocr1_dataset, tmp_path_factory):
    """Two LoRA steps from the snapshot, every target; the Trainer (its model still adapted)."""
    from train.loop import TrainArgs, Trainer

    out = tmp_path_factory.mktemp("lora") / "run"
    tr = Trainer(TrainArgs(init_official=str(small), data=[str(ocr1_dataset)], out=str(out), mode=["tiny"], steps=2,
                           warmup=1, lr=2e-2, batch_size=1, workers=0, device="cpu", log_every=1, max_len=1024,
                           tasks=["ocr1.free_ocr"], lora_rank=RANK, lora_alpha=ALPHA, lora_targets=list(TARGETS)))
    tr.fit()
    return tr


def official_state(path) -> dict[str, torch.Tensor]:
    """Every tensor of an official-format snapshot, in float32."""
    return {k: read_tensor(v).float() for k, v in find_tensors(path).items()}


def peft_merge(base: dict[str, torch.Tensor], adapter_dir) -> tuple[dict[str, torch.Tensor], set[str]]:
    """The base with a PEFT adapter directory merged as PEFT merges it (LoRA, no fan_in_fan_out,
    no rslora): W + (B @ A) * lora_alpha / r per target module; and the adapted module paths."""
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["fan_in_fan_out"] is False and cfg["bias"] == "none"
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    modules = {k[len(PREFIX):-len(".lora_A.weight")] for k in tensors if k.endswith(".lora_A.weight")}
    assert all(k.startswith(PREFIX) for k in tensors) and len(tensors) == 2 * len(modules)
    assert sorted(cfg["target_modules"]) == sorted(modules)  # PEFT adapts exactly these modules
    out = dict(base)
    for m in modules:
        a, b = tensors[f"{PREFIX}{m}.lora_A.weight"], tensors[f"{PREFIX}{m}.lora_B.weight"]
        assert a.shape[0] == b.shape[1] == cfg["r"] and a.dtype == torch.float32
        out[m + ".weight"] = base[m + ".weight"] + (b @ a) * (cfg["lora_alpha"] / cfg["r"])
    return out, modules


def assert_merged_equal(export: dict[str, torch.Tensor], want: dict[str, torch.Tensor], adapted: set[str],
                        base: dict[str, torch.Tensor]) -> int:
    """The float32 export equals ``want`` (untouched tensors bit for bit, adapted ones to float32
    rounding); returns how many adapted tensors the adapters changed."""
    assert sorted(export) == sorted(want)
    changed = 0
    for k, t in export.items():
        if k.removesuffix(".weight") in adapted:
            scale = want[k].abs().max().item()
            assert (t - want[k]).abs().max().item() <= 4e-7 * scale, k  # a few float32 ulps of the largest weight
            changed += int(not torch.equal(t, base[k]))
        else:
            assert torch.equal(t, want[k]), k
    return changed


def _randomised_copy(run, dst):
    """The run with its last checkpoint's adapters replaced by random A and B (as a long run
    would leave them: every expert's B non-zero), checksums rewritten."""
    shutil.copytree(run, dst)
    ck = latest(dst)
    g = torch.Generator().manual_seed(7)
    state = {k: torch.randn(v.shape, generator=g) * 0.05 for k, v in load_file(str(ck / "model.safetensors")).items()}
    save_file(state, str(ck / "model.safetensors"))
    write_checksums(ck)
    return dst


def test_the_adapter_on_the_official_base_is_the_merged_export(lora_run, small, tmp_path):
    """Every adapted module type (attention, dense MLP, shared and routed experts, projector,
    CLIP) split from our fused/stacked layout; random adapters, so no expert is left out."""
    run = _randomised_copy(lora_run.run_dir, tmp_path / "run")
    adapter = export_adapter(run, tmp_path / "adapter")
    merged = export_run(run, tmp_path / "merged", dtype="float32")
    base = official_state(small)
    want, adapted = peft_merge(base, adapter)
    kinds = {
        "attention": [f"model.layers.{i}.self_attn.{p}_proj" for i in (0, 1) for p in "qkvo"],
        "dense MLP": [f"model.layers.0.mlp.{p}_proj" for p in ("gate", "up", "down")],
        "shared experts": [f"model.layers.1.mlp.shared_experts.{p}_proj" for p in ("gate", "up", "down")],
        "routed experts": [f"model.layers.1.mlp.experts.{e}.{p}_proj" for e in range(4) for p in ("gate", "up", "down")],
        "projector": ["model.projector.layers"],
        "CLIP": [f"model.vision_model.transformer.layers.{i}.{p}" for i in (0, 1)
                 for p in ("self_attn.qkv_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2")],
    }
    assert adapted == {m for ms in kinds.values() for m in ms}
    assert assert_merged_equal(official_state(merged), want, adapted, base) == len(adapted)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert (cfg["r"], cfg["lora_alpha"], cfg["lora_dropout"], cfg["task_type"]) == (RANK, ALPHA, 0.0, "CAUSAL_LM")
    assert cfg["base_model_name_or_path"] == str(small.resolve())  # the snapshot names no hub id
    # Splitting is exact: gate_proj's adapter is the fused one's gate rows, sharing its A.
    ours = load_file(str(latest(run) / "model.safetensors"))
    ad = load_file(str(adapter / "adapter_model.safetensors"))
    a, b = ours["decoder.blocks.1.mlp.w_gate_up.lora_A.weight"], ours["decoder.blocks.1.mlp.w_gate_up.lora_B.weight"]
    up = f"{PREFIX}model.layers.1.mlp.experts.3.up_proj"
    assert torch.equal(ad[up + ".lora_A.weight"], a[3]) and torch.equal(ad[up + ".lora_B.weight"], b[3, 32:])


def test_a_lora_run_exports_merged_weights_that_give_its_logits(lora_run, small, tmp_path):
    """The real run's float32 export is the snapshot plus its merged adapters, and loaded back
    through the official-format loader it gives the LoRA run's own logits."""
    from train.loop import unwrap
    from train.model.vision_inputs import fit_image, num_image_tokens

    run = lora_run.run_dir
    assert json.loads((run / "run.json").read_text())["base"] == {"init_official": str(small.resolve())}
    merged = export_run(run, tmp_path / "merged", dtype="float32")
    base = official_state(small)
    want, adapted = peft_merge(base, export_adapter(run, tmp_path / "adapter"))
    assert assert_merged_equal(official_state(merged), want, adapted, base) > 0  # two steps moved them

    again = load_official(merged, dtype=torch.float32)
    model = unwrap(lora_run.model).eval()
    enc = again.config.encoder
    assert again.config == lora_run.mcfg
    page = Image.open(fixture_dir() / "cases" / "page_portrait.png")
    vision = [fit_image(page, "tiny", enc)]
    ids = torch.tensor([[0] + [815] * num_image_tokens("tiny", enc) + [201, 17, 342, 56, 770, 3, 128]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        ours = model(ids, mask, vision).logits
        theirs = again.model(ids, mask, vision).logits
        before = load_official(small, dtype=torch.float32).model(ids, mask, vision).logits
    rel = ((theirs - ours).abs().max() / ours.abs().max()).item()
    assert rel < 1e-5 and torch.equal(theirs.argmax(-1), ours.argmax(-1)), rel
    assert (before - ours).abs().max() / ours.abs().max() > 100 * rel  # the adapters matter here


def test_adapter_export_refuses_a_full_run_and_the_dtype_flag(lora_run, small, tmp_path, capsys):
    from tests.test_official_export import fake_run

    full = fake_run(tmp_path / "full", load_official(small))
    cases = {  # argv, what the one line names
        "full": (["--run", str(full), "--adapter"], "not a LoRA run"),
        "dtype": (["--run", str(lora_run.run_dir), "--adapter", "--dtype", "bfloat16"], "--dtype bfloat16 with --adapter"),
    }
    from synth.cli import run as run_cli

    for argv, why in cases.values():
        assert run_cli(main, [*argv, "--out", str(tmp_path / "never")], prog="x") == 2
        err = capsys.readouterr().err
        assert err.startswith("x: error: ") and why in err and err.count("\n") == 1, err
    assert not (tmp_path / "never").exists()
