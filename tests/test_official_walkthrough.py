"""docs/finetune.md, run: every command of its bash blocks, in order, on a small
official-format checkpoint made by the parity fixture's weights.py (tests/official_snapshot.py).

Flags appended to each command make it fit a CPU (argparse keeps the last value of a
repeated flag); the download is replaced by writing the snapshot where it would land.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.official_snapshot import REPO, small_snapshot

DOC = REPO / "docs" / "finetune.md"
# Per command: flags appended for a CPU test run.
CPU_FLAGS = {
    "synth": ["--shards", "1", "--rows-per-shard", "2", "--executor", "local", "--workers", "1", "--no-progress"],
    "train.evaluate": ["--mode", "tiny", "--limit", "2", "--max-new-tokens", "8", "--device", "cpu"],
    "train": ["--mode", "tiny", "--steps", "2", "--warmup", "1", "--batch-size", "1", "--grad-accum", "1",
              "--no-grad-checkpoint", "--workers", "0", "--device", "cpu", "--eval-examples", "2", "--log-every", "1"],
    "train.export": [],
}
# Files of the hub snapshot besides weights and tokenizer.json; stand-ins here (the real
# remote code is not ours to ship), so the test can see them carried into the export.
REMOTE_FILES = {"modeling_deepseekocr.py": "# stand-in for the official remote code\n",
                "deepencoder.py": "# stand-in\n", "processor_config.json": '{"processor_class": "stand-in"}\n'}


def doc_commands() -> list[list[str]]:
    """The commands of the page's bash blocks, continuation lines joined, comments dropped."""
    text = DOC.read_text()
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                cmds.append(shlex.split(line))
    return cmds


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_DISABLE_USAGE_STATS": "1"}
    out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, f"{' '.join(argv)}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out


def _out(argv: list[str], cwd: Path) -> Path:
    return cwd / argv[argv.index("--out") + 1]


def test_every_command_of_the_finetuning_walkthrough_runs(tmp_path):
    from safetensors.torch import load_file

    from train.official.load import find_tensors, load_official
    from train.official.st_io import read_tensor

    cmds = doc_commands()
    kinds = [c[2] if c[:2] == ["python", "-m"] else " ".join(c[:2]) for c in cmds]
    assert kinds == ["hf download", "synth", "synth", "train.evaluate", "train", "train", "train.evaluate",
                     "train.evaluate", "train.export", "train.export", "train.export"]
    (tmp_path / "manifests").symlink_to(REPO / "manifests")
    python = [sys.executable, "-m"]
    exports = {}  # "full", "merged", "adapter" -> directory
    for argv, kind in zip(cmds, kinds):
        if kind == "hf download":
            snap = tmp_path / argv[argv.index("--local-dir") + 1]
            small_snapshot(snap)
            for name, text in REMOTE_FILES.items():
                (snap / name).write_text(text)
            help_text = _run(["hf", "download", "--help"], tmp_path).stdout
            assert "--local-dir" in help_text and argv[2] == "deepseek-ai/DeepSeek-OCR"
            continue
        out = _run(python + argv[2:] + CPU_FLAGS[kind], tmp_path)
        if kind == "train":
            run = _out(argv, tmp_path)
            info = json.loads((run / "run.json").read_text())
            assert info["tokenizer"] == "official" and info["vocab_size"] == 1000
            assert info["model_config"]["encoder"]["pos_antialias"] is True
            assert info["model_config"]["decoder"]["aux_loss_per_sequence"] is True  # config.json's seq_aux default
            assert [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines()] == [1, 2]
            assert sorted(p.name for p in (run / "official").iterdir()) == sorted(
                ["config.json", "patch_embedding.safetensors", "source.json", *REMOTE_FILES])
            if "--lora-rank" in argv:
                assert info["lora"]["rank"] == 16 and info["base"] == {"init_official": str(snap.resolve())}
                assert "decoder.blocks.1.mlp.w_gate_up" in info["lora_modules"]
        if kind == "train.evaluate":
            report = json.loads(_out(argv, tmp_path).read_text())
            assert report["mode"] == "tiny" and report["n_examples"] == 2, out.stdout
            assert all(e["prompt"].startswith("<image>\n") for e in report["examples"])
        if kind == "train.export":
            key = "adapter" if "--adapter" in argv else "merged" if "lora" in argv[argv.index("--run") + 1] else "full"
            exports[key] = _out(argv, tmp_path)
    # The exports: the snapshot's keys, shapes and dtype; SAM (frozen in stage 2) and the
    # unused patch embedding bit for bit; trained parts changed; remote code carried over.
    src = find_tensors(snap)
    for key in ("full", "merged"):
        export = exports[key]
        dst = find_tensors(export)
        assert sorted(src) == sorted(dst)
        assert all(src[k].shape == dst[k].shape and dst[k].dtype == torch.bfloat16 for k in src)
        same = {k: torch.equal(read_tensor(src[k]), read_tensor(dst[k])) for k in src}
        assert all(same[k] for k in src if k.startswith("model.sam_model.") or "patch_embedding" in k)
        assert not same["model.layers.0.self_attn.q_proj.weight"]
        # Full fine-tuning moves CLIP and the head; LoRA (no vision target) leaves them as released.
        trained = key == "full"
        assert same["model.vision_model.transformer.layers.0.mlp.fc1.weight"] != trained
        assert same["lm_head.weight"] != trained
        for name, text in REMOTE_FILES.items():
            assert (export / name).read_text() == text
        config = json.loads((export / "config.json").read_text())
        assert config["auto_map"]["AutoModel"] == "modeling_deepseekocr.DeepseekOCRForCausalLM"
        assert config["architectures"] == ["DeepseekOCRForCausalLM"] and config["torch_dtype"] == "bfloat16"
        again = load_official(export)
        assert again.tokenizer.image_id == 815 and again.config == load_official(snap).config
    # The adapter alone: PEFT's two files, the official module names (here every expert's).
    adapter = exports["adapter"]
    assert sorted(p.name for p in adapter.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    acfg = json.loads((adapter / "adapter_config.json").read_text())
    assert acfg["peft_type"] == "LORA" and (acfg["r"], acfg["lora_alpha"]) == (16, 32.0)
    assert {f"model.layers.1.mlp.experts.{e}.up_proj" for e in range(4)} <= set(acfg["target_modules"])
    assert "model.projector.layers" in acfg["target_modules"]
    keys = load_file(str(adapter / "adapter_model.safetensors"))
    assert len(keys) == 2 * len(acfg["target_modules"]) and all(k.startswith("base_model.model.model.") for k in keys)
    # The Python blocks: valid Python, pointing at the exported directories and the snapshot.
    full_py, peft_py = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    for py in (full_py, peft_py):
        compile(py, "finetune.md", "exec")
    rel = {k: str(v.relative_to(tmp_path)) for k, v in exports.items()}
    assert f'"{rel["full"]}"' in full_py and f'"{rel["adapter"]}"' in peft_py
    assert f'"{snap.relative_to(tmp_path)}"' in peft_py


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return small_snapshot(tmp_path_factory.mktemp("walk") / "DeepSeek-OCR")


def test_a_resumed_official_run_continues_from_its_checkpoint(small, tmp_path, ocr1_dataset):
    """The second invocation restores the checkpoint instead of loading the release again:
    its next step's loss is the one an uninterrupted run gets."""
    from train.loop import TrainArgs, Trainer

    def args(out, **kw):
        return TrainArgs(init_official=str(small), data=[str(ocr1_dataset)], out=str(out), mode=["tiny"], steps=2,
                         warmup=1, lr=1e-3, batch_size=1, workers=0, device="cpu", log_every=1, max_len=1024,
                         tasks=["ocr1.free_ocr"], **kw)

    whole = Trainer(args(tmp_path / "whole")).fit()["history"]
    Trainer(args(tmp_path / "cut", stop_after=1)).fit()
    resumed = Trainer(args(tmp_path / "cut"))
    assert resumed.resumed_from and resumed.step == 1
    rest = resumed.fit()["history"]
    assert rest[0]["step"] == 2 and abs(rest[0]["loss"] - whole[1]["loss"]) < 1e-5


def test_bad_snapshots_stop_the_cli_before_training_with_one_line(small, tmp_path):
    import shutil

    bad = tmp_path / "ocr2"
    shutil.copytree(small, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["architectures"] = ["DeepseekOCR2ForCausalLM"]
    (bad / "config.json").write_text(json.dumps(cfg))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "train", "--init-official", str(bad), "--data", str(tmp_path),
                          "--out", str(tmp_path / "run"), "--device", "cpu"], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 2 and out.stderr.startswith("python -m train: error: ") and out.stderr.count("\n") == 1, out.stderr
    assert "DeepSeek-OCR-2" in out.stderr and not (tmp_path / "run").exists()  # refused before the run began
    out = subprocess.run([sys.executable, "-m", "train.evaluate", "--init-official", str(bad), "--data", str(tmp_path)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 2 and "DeepSeek-OCR-2" in out.stderr and out.stderr.count("\n") == 1, out.stderr
