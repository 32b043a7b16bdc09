"""Loading official-format snapshots (train.official.load): values, layouts, sharded
checkpoints, memory, and the refusal of every bad input with one line naming it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.official_snapshot import (REPO, SMALL_DECODER, SMALL_VISION, official_config, small_model_config,
                                     small_snapshot, weights_module)
from train.official.config import OfficialFormatError
from train.official.load import load_official, read_snapshot


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return small_snapshot(tmp_path_factory.mktemp("snap") / "DeepSeek-OCR")


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_config_json_and_tensors_drive_the_model_and_every_value_lands(small):
    w = weights_module()
    got = load_official(small)  # bf16 by default, like the checkpoint
    assert got.config == small_model_config()  # every dimension derived from the snapshot's own files
    assert got.tokenizer.official and got.model.image_token_id == got.tokenizer.image_id == 815
    p = dict(got.model.named_parameters())
    assert all(t.dtype == torch.bfloat16 for t in p.values())

    def off(name, shape):
        return torch.from_numpy(w.official_tensor(name, shape)).to(torch.bfloat16)

    inter = small_model_config().decoder.moe_inter
    for e in range(4):  # stacked experts: gate rows, then up rows, per expert
        assert torch.equal(p["decoder.blocks.1.mlp.w_gate_up"][e, :inter], off(f"model.layers.1.mlp.experts.{e}.gate_proj.weight", (inter, 64)))
        assert torch.equal(p["decoder.blocks.1.mlp.w_gate_up"][e, inter:], off(f"model.layers.1.mlp.experts.{e}.up_proj.weight", (inter, 64)))
        assert torch.equal(p["decoder.blocks.1.mlp.w_down"][e], off(f"model.layers.1.mlp.experts.{e}.down_proj.weight", (64, inter)))
    pos = off("model.vision_model.embeddings.position_embedding.weight", (257, 32))
    assert torch.equal(p["encoder.clip.class_pos"], pos[0])  # row 0: the class token's position
    assert torch.equal(p["encoder.clip.pos_embed"], pos[1:].reshape(16, 16, 32))
    assert torch.equal(p["encoder.sam.pos_embed"], off("model.sam_model.pos_embed", (1, 64, 64, 32))[0])
    assert torch.equal(p["encoder.view_separator"], off("model.view_seperator", (64,)))
    assert torch.equal(p["decoder.lm_head.weight"], off("lm_head.weight", (1000, 64)))
    assert not torch.equal(p["decoder.lm_head.weight"], p["decoder.embed.weight"])  # untied
    assert list(got.extras) == ["model.vision_model.embeddings.patch_embedding.weight"]


def test_a_checkpoint_split_over_files_with_an_index_loads_the_same(small, tmp_path):
    from safetensors.torch import load_file, save_file

    snap = _copy(small, tmp_path / "sharded")
    tensors = load_file(str(snap / "model.safetensors"))
    (snap / "model.safetensors").unlink()
    keys = sorted(tensors)
    halves = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    for name, ks in halves.items():
        save_file({k: tensors[k] for k in ks}, str(snap / name))
    (snap / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: n for n, ks in halves.items() for k in ks}}))
    a, b = load_official(small).model.state_dict(), load_official(snap).model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _refusal(snapshot, match, **kw):
    with pytest.raises(OfficialFormatError) as err:
        load_official(snapshot, **kw)
    msg = str(err.value)
    assert "\n" not in msg and str(match) in msg, msg
    return msg


def test_bad_snapshots_are_refused_with_one_line_naming_the_problem(small, tmp_path):
    # DeepSeek-OCR-2: recognised from config.json ...
    ocr2 = _copy(small, tmp_path / "ocr2")
    cfg = json.loads((ocr2 / "config.json").read_text())
    cfg["architectures"] = ["DeepseekOCR2ForCausalLM"]
    (ocr2 / "config.json").write_text(json.dumps(cfg))
    _refusal(ocr2, "DeepSeek-OCR-2")
    # ... and from its encoder's keys when config.json claims DeepSeek-OCR.
    from safetensors.torch import load_file, save_file

    keys2 = _copy(small, tmp_path / "ocr2keys")
    t = load_file(str(keys2 / "model.safetensors"))
    t["model.qwen2_model.model.layers.0.mlp.up_proj.weight"] = torch.zeros(4, 4, dtype=torch.bfloat16)
    save_file(t, str(keys2 / "model.safetensors"))
    _refusal(keys2, "DeepSeek-OCR-2's encoder")
    # A truncated download.
    trunc = _copy(small, tmp_path / "trunc")
    data = (trunc / "model.safetensors").read_bytes()
    (trunc / "model.safetensors").write_bytes(data[: len(data) // 2])
    _refusal(trunc, "truncated")
    # A wrong vocabulary: config.json says 129,280 rows, the tensors hold 1,000.
    vocab = _copy(small, tmp_path / "vocab")
    (vocab / "config.json").write_text(json.dumps(official_config(dict(SMALL_DECODER, vocab_size=129280), SMALL_VISION)))
    msg = _refusal(vocab, "model.embed_tokens.weight [1000, 64] (expected [129280, 64])")
    assert "lm_head.weight" in msg
    # A missing and an unexpected tensor.
    odd = _copy(small, tmp_path / "odd")
    t = load_file(str(odd / "model.safetensors"))
    del t["model.layers.1.mlp.experts.3.up_proj.weight"]
    t["model.layers.0.self_attn.q_norm.weight"] = torch.ones(64, dtype=torch.bfloat16)
    save_file(t, str(odd / "model.safetensors"))
    msg = _refusal(odd, "1 missing keys: model.layers.1.mlp.experts.3.up_proj.weight")
    assert "1 unexpected keys: model.layers.0.self_attn.q_norm.weight" in msg
    # Not a snapshot at all.
    _refusal(tmp_path / "nowhere", "not a directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    _refusal(empty, "no config.json")


def test_a_tokenizer_that_does_not_match_the_checkpoint_is_refused(small, tmp_path):
    from tokenizers import Tokenizer

    from train.tokenizer import train_tokenizer

    own = tmp_path / "own.json"
    train_tokenizer(["some text for a tiny vocabulary"] * 20, vocab_size=300).save(own)
    _refusal(small, "the project's own BPE tokenizer", tokenizer=own)
    # DeepSeek-OCR's real tokenizer (128,827 ids) for a 1,000-row embedding.
    from train.official.tokenizer import build_official_tokenizer

    real = tmp_path / "real.json"
    build_official_tokenizer().save(real)
    _refusal(small, "the tokenizer has 128827 ids but the checkpoint's embedding has 1000 rows", tokenizer=real)
    # The OCR tokens out of order.
    shuffled = tmp_path / "shuffled.json"
    doc = json.loads((small / "tokenizer.json").read_text())
    ids = {t["content"]: t["id"] for t in doc["added_tokens"]}
    for t in doc["added_tokens"]:
        if t["content"] in ("<td>", "</td>"):
            t["id"] = ids["</td>" if t["content"] == "<td>" else "<td>"]
    doc["added_tokens"].sort(key=lambda t: t["id"])
    shuffled.write_text(json.dumps(doc))
    Tokenizer.from_file(str(shuffled))  # a valid tokenizer file, just not DeepSeek-OCR's order
    _refusal(small, "must be consecutive in the order", tokenizer=shuffled)


def test_overrides_change_what_is_not_a_dimension(small):
    snap = read_snapshot(small, {"encoder": {"gundam_max_tiles": 6}})
    assert snap.config.encoder.gundam_max_tiles == 6  # vLLM's tiling
    with pytest.raises(OfficialFormatError, match="keys of the wrong shape"):
        read_snapshot(small, {"decoder": {"moe_inter": 48}})


def test_peak_memory_of_loading_stays_under_1_3x_the_checkpoint(parity_snapshot_dir):
    """Loading the 1.7 GB float32 parity checkpoint (in its own dtype, so the model is the
    checkpoint's size) in a fresh process: its anonymous memory (what the host must hold;
    RssAnon, sampled every 2 ms while it loads) grows by less than 1.3x the file.
    ``ru_maxrss`` is printed beside it: it also counts file-backed pages such as the shared
    libraries' code, which the kernel can drop and which vary from run to run."""
    size = (parity_snapshot_dir / "model.safetensors").stat().st_size
    code = ("import resource, sys, threading, time, torch\n"
            "from train.official.load import load_official\n"
            "def anon():\n"
            "    return next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('RssAnon:'))\n"
            "base, peak, done = anon(), [0], threading.Event()\n"
            "def poll():\n"
            "    while not done.is_set():\n"
            "        peak[0] = max(peak[0], anon()); time.sleep(0.002)\n"
            "t = threading.Thread(target=poll); t.start()\n"
            "m = load_official(sys.argv[1], dtype=torch.float32)\n"
            "done.set(); t.join(); peak[0] = max(peak[0], anon())\n"
            "print(base, peak[0], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)\n")
    out = subprocess.run([sys.executable, "-c", code, str(parity_snapshot_dir)], cwd=REPO, capture_output=True,
                         text=True, timeout=600, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    base, peak, maxrss = (int(x) for x in out.stdout.split())
    ratio = (peak - base) / size
    print(f"load peak: {(peak - base) / 2 ** 30:.2f} GiB anonymous over a {size / 2 ** 30:.2f} GiB checkpoint: "
          f"{ratio:.3f}x (ru_maxrss {maxrss / 2 ** 30:.2f} GiB)")
    assert ratio < 1.3, ratio
