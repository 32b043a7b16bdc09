"""Official-format snapshots for the tests of train.official, made with the parity
fixture's ``weights.py`` (the stand-in weights the official code's outputs were computed with).

The fixture lives outside the repository, at ``../shared/reference/deepseek-ocr-parity``
from the repository root (``OCR_PARITY_FIXTURE`` overrides it); CI has the same layout,
so a missing fixture is a failure, never a skip.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
FIXTURE_ENV = "OCR_PARITY_FIXTURE"
OCR_TOKENS_AT = 815  # the fixture's image id (128815 mod 1000); the 12 OCR tokens follow it


FIXTURE_REL = Path("shared") / "reference" / "deepseek-ocr-parity"


def fixture_dir() -> Path:
    """The parity fixture's directory: ``OCR_PARITY_FIXTURE``, else ``shared/reference/...``
    beside the repository or beside one of its parents (a git worktree nests one level
    deeper); fails the test (not a skip) when it is absent."""
    env = os.environ.get(FIXTURE_ENV)
    found = [p / FIXTURE_REL for p in REPO.parents if (p / FIXTURE_REL).is_dir()]
    path = Path(env) if env else (found[0] if found else REPO.parent / FIXTURE_REL)
    if not (path / "weights.py").is_file() or not (path / "cases" / "index.json").is_file():
        pytest.fail(f"DeepSeek-OCR parity fixture not found at {path} (weights.py, cases/index.json): "
                    f"set {FIXTURE_ENV} to its directory", pytrace=False)
    return path


def weights_module():
    """The fixture's weights.py as a module."""
    spec = importlib.util.spec_from_file_location("ocr_parity_weights", fixture_dir() / "weights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fixture_config() -> dict:
    """The fixture's config.json (its reduced decoder, tokens, modes)."""
    return json.loads((fixture_dir() / "config.json").read_text())


def official_config(decoder: dict, vision: dict | None = None) -> dict:
    """A config.json in the released checkpoint's layout (top-level decoder keys repeated in
    language_config, projector and vision descriptions) for a decoder of HF-named fields."""
    lm = {k: v for k, v in decoder.items() if k not in ("head_dim", "lm_head")}
    hidden = lm["hidden_size"]
    return {
        "architectures": ["DeepseekOCRForCausalLM"], "model_type": "deepseek_vl_v2",
        "auto_map": {"AutoConfig": "modeling_deepseekocr.DeepseekOCRConfig",
                     "AutoModel": "modeling_deepseekocr.DeepseekOCRForCausalLM"},
        "candidate_resolutions": [[1024, 1024]], "global_view_pos": "head", "tile_tag": "2D",
        "language_config": {**lm, "architectures": ["DeepseekV2ForCausalLM"], "torch_dtype": "bfloat16"},
        "projector_config": {"input_dim": 2048, "model_type": "mlp_projector", "n_embed": hidden,
                             "projector_type": "linear"},
        "vision_config": vision or {"image_size": 1024, "model_name": "deeplip_b_l", "width": {
            "clip-l-14-224": {"heads": 16, "image_size": 224, "layers": 24, "patch_size": 14, "width": 1024},
            "sam_vit_b": {"downsample_channels": [512, 1024], "global_attn_indexes": [2, 5, 8, 11], "heads": 12,
                          "layers": 12, "width": 768}}},
        "torch_dtype": "bfloat16", **lm,
    }


def scaled_tokenizer_json(path: Path, rows: int = 1000) -> Path:
    """A reduced DeepSeek-OCR-style tokenizer for a reduced vocabulary: V3's specials at ids
    0-2, a byte-level BPE up to id 814, the 12 OCR tokens at 815-826 (where the fixture's
    image id is), trained on the project's docs."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    from train.tokenizer import OCR_TOKENS, OFFICIAL_BOS, OFFICIAL_EOS, OFFICIAL_PAD

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=OCR_TOKENS_AT, special_tokens=[OFFICIAL_BOS, OFFICIAL_EOS, OFFICIAL_PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    texts = [p.read_text() for p in sorted((REPO / "docs").glob("*.md"))]
    tok.train_from_iterator(texts, trainer=trainer)
    filler = OCR_TOKENS_AT - tok.get_vocab_size(with_added_tokens=True)
    tok.add_tokens([f"<|filler_{i}|>" for i in range(filler)])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in OCR_TOKENS])
    assert tok.token_to_id("<image>") == OCR_TOKENS_AT and tok.get_vocab_size(with_added_tokens=True) <= rows
    tok.save(str(path))
    return path


def write_snapshot(out: Path, spec: list[tuple[str, tuple[int, ...]]], config: dict,
                   dtype: torch.dtype = torch.float32, tokenizer: bool = True) -> str:
    """An official-format snapshot in ``out``: config.json, model.safetensors holding
    weights.py's tensor for every (name, shape) of ``spec`` (streamed: one tensor in
    memory at a time), and a reduced tokenizer.json. Returns weights.py's digest of the
    float32 tensors (``state_dict_digest``, computed as they stream)."""
    import hashlib

    from train.official.st_io import SafetensorsWriter

    w = weights_module()
    out.mkdir(parents=True, exist_ok=True)
    writer = SafetensorsWriter(out / "model.safetensors", [(n, dtype, tuple(s)) for n, s in spec])
    digest = hashlib.sha256()
    for name, shape in spec:
        value = w.official_tensor(name, shape)
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(value, dtype=np.float32).tobytes())
        writer.write(name, torch.from_numpy(value).to(dtype))
    writer.close()
    (out / "config.json").write_text(json.dumps(config, indent=1))
    if tokenizer:
        scaled_tokenizer_json(out / "tokenizer.json", config["vocab_size"])
    return digest.hexdigest()


def parity_snapshot(out: Path) -> Path:
    """The fixture's reduced model as an official-format float32 snapshot (1.7 GB, ~8 s of
    CPU). A changed numpy random stream fails here, by the fixture's recorded digest,
    rather than as a parity error."""
    fx = fixture_dir()
    spec = [(n, tuple(s)) for n, s in json.loads((fx / "keys.json").read_text())]
    digest = write_snapshot(out, spec, official_config(fixture_config()["reduced_decoder"]))
    want = fixture_config()["weights"]["sha256"]
    if digest != want:
        pytest.fail(f"weights.py gave tensors of digest {digest}, the fixture's were {want} (numpy "
                    f"{np.__version__}: its random stream differs from the one the fixture was made with)",
                    pytrace=False)
    return out


@pytest.fixture(scope="session")
def parity_snapshot_dir(tmp_path_factory) -> Path:
    """The parity fixture's model as an official-format snapshot, made once per session."""
    return parity_snapshot(tmp_path_factory.mktemp("official") / "DeepSeek-OCR-parity")


def relative_error(ours: np.ndarray, ref: np.ndarray) -> float:
    """max|a - b| / max|b|: the fixture README's measure."""
    return float(np.abs(ours.astype(np.float64) - ref).max() / np.abs(ref).max())


# The walkthrough's small official-format model: the real layout, mode sizes and position
# grids, with a narrow vision tower and decoder so that fine-tuning runs on a CPU.
SMALL_DECODER = {
    "vocab_size": 1000, "hidden_size": 64, "intermediate_size": 128, "moe_intermediate_size": 32,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4, "n_routed_experts": 4,
    "num_experts_per_tok": 2, "n_shared_experts": 1, "first_k_dense_replace": 1, "max_position_embeddings": 8192,
    "n_group": 1, "topk_group": 1, "topk_method": "greedy", "use_mla": False, "bos_token_id": 0, "eos_token_id": 1,
}
SMALL_VISION = {"image_size": 1024, "model_name": "deeplip_b_l", "width": {
    "clip-l-14-224": {"heads": 2, "image_size": 224, "layers": 2, "patch_size": 14, "width": 32},
    "sam_vit_b": {"downsample_channels": [32, 32], "global_attn_indexes": [1], "heads": 2, "layers": 2, "width": 32}}}


def small_model_config():
    """The ModelConfig the small snapshot's files describe (what the loader must derive)."""
    from dataclasses import replace

    from train.configs import DecoderConfig, EncoderConfig, ModelConfig, get_config

    enc = EncoderConfig(sam_width=32, sam_depth=2, sam_heads=2, sam_global_blocks=[1], sam_out_chans=16,
                        compressor_mid=32, clip_width=32, clip_depth=2, clip_heads=2, pos_antialias=True,
                        resize_kernel="pil")
    dec = DecoderConfig(width=64, layers=2, heads=4, head_dim=16, dense_inter=128, n_routed=4, n_shared=1, top_k=2,
                        moe_inter=32, vocab_size=1000, aux_loss_per_sequence=True)  # seq_aux's default
    return ModelConfig("deepseek-ocr", enc, dec, replace(get_config("paper").stage1_decoder, vocab_size=1000))


def small_snapshot(out: Path, dtype: torch.dtype = torch.bfloat16) -> Path:
    """A small official-format snapshot (bf16 like the hub's, ~4 MB) for the walkthrough."""
    from train.official.names import official_shapes

    spec = list(official_shapes(small_model_config()).items())
    write_snapshot(out, spec, official_config(SMALL_DECODER, SMALL_VISION), dtype=dtype)
    return out
