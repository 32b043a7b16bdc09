"""Parity with the official DeepSeek-OCR code (HF remote code), on CPU, through our loader.

The fixture (../shared/reference/deepseek-ocr-parity, README there) holds the official
code's outputs for five inputs, computed with weights.py's stand-in weights under their
official names. Here those weights are written as an official-format snapshot, loaded by
``train.official.load_official`` (the real code path), and our model's logits and vision
embeddings are compared with the stored ones: relative error max|a-b|/max|b| within 1e-4
(a correct float32 reimplementation measured ~2e-6; a real mismatch >= 1e-2) and the same
argmax at every position. Our preprocessing of the page PNGs must give the stored views
byte for byte. The snapshot is exported again and must come back bit for bit.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.official_snapshot import fixture_dir, relative_error
from train.model.vision_inputs import VisionInput, fit_image, num_image_tokens

TOL = 1e-4
CASES = ("tiny", "small", "base", "large", "gundam")


@pytest.fixture(scope="module")
def loaded(parity_snapshot_dir):
    from train.official.load import load_official

    return load_official(parity_snapshot_dir, dtype=torch.float32)


@pytest.fixture(scope="module")
def index():
    return json.loads((fixture_dir() / "cases" / "index.json").read_text())


def _case(name: str):
    return np.load(fixture_dir() / "cases" / f"{name}.npz")


@pytest.mark.parametrize("case", CASES)
def test_logits_and_vision_rows_match_the_official_code(loaded, index, case):
    z, mode = _case(case), index[case]["mode"]
    model = loaded.model
    assert model.image_token_id == 815 and loaded.config.encoder.pos_antialias  # the fixture's image slots
    tiles = torch.from_numpy(z["tiles_u8"]) if "tiles_u8" in z.files else None
    grid = tuple(int(x) for x in z["spatial_crop"]) if tiles is not None else (0, 0)
    vision = [VisionInput(torch.from_numpy(z["global_view_u8"]), tiles, grid, mode)]
    ids = torch.from_numpy(z["input_ids"])[None]
    assert torch.equal(ids[0] == 815, torch.from_numpy(z["image_mask"]))
    assert num_image_tokens(mode, loaded.config.encoder, grid) == int(z["n_image_tokens"])
    with torch.inference_mode():
        # OCRModel.forward is embed_inputs then the decoder: run them apart to keep the
        # decoder-input embeddings (encoding the image once).
        embeds = model.embed_inputs(ids, vision)
        valid = torch.ones_like(ids, dtype=torch.bool)
        positions = torch.arange(ids.shape[1])[None]
        logits, _ = model.decoder(embeds, positions, valid, causal=True)
    logits, embeds = logits[0].numpy(), embeds[0].numpy()
    err_logits = relative_error(logits[z["logits_pos"]], z["logits"])
    err_vision = relative_error(embeds[z["vision_pos"]], z["vision_rows"])
    norms = np.linalg.norm(embeds[ids[0].numpy() == 815].astype(np.float64), axis=-1)
    print(f"{case}: logits {err_logits:.2e}, vision rows {err_vision:.2e}")
    assert err_logits < TOL and err_vision < TOL, (case, err_logits, err_vision)
    assert np.array_equal(logits.argmax(-1), z["argmax"]), case
    np.testing.assert_allclose(logits.max(-1), z["max_logit"], rtol=0, atol=TOL * np.abs(z["logits"]).max())
    np.testing.assert_allclose(norms, z["vision_row_norm"], rtol=TOL)


@pytest.mark.parametrize("case", [*CASES, "gundam_page_le_640"])
def test_preprocessing_gives_the_official_views_byte_for_byte(loaded, index, case):
    d = index[case]
    z = _case(d["npz"].removesuffix(".npz"))
    img = Image.open(fixture_dir() / "cases" / d["image"]).convert("RGB")
    enc = loaded.config.encoder
    assert enc.resize_kernel == "pil"
    v = fit_image(img, d["mode"], enc)
    assert torch.equal(v.global_view, torch.from_numpy(z["global_view_u8"])), case
    crop = tuple(d.get("spatial_crop") or index["base"]["spatial_crop"])
    if "tiles_u8" in z.files:
        assert v.grid == crop and torch.equal(v.tiles, torch.from_numpy(z["tiles_u8"]))
    else:  # no tiles: Tiny..Large, and Gundam on a page of at most 640 x 640 px
        assert v.tiles is None and v.grid == (0, 0)
    assert num_image_tokens(d["mode"], enc, v.grid) == int(z["n_image_tokens"])
    # The float32 pixels the official model was fed: same arithmetic order, same bytes.
    pixels = ((z["global_view_u8"].astype(np.float32) / 255) - 0.5) / 0.5
    import hashlib

    assert hashlib.sha256(pixels[None].tobytes()).hexdigest() == index[d["npz"].removesuffix(".npz")]["pixels"]["global_sha256"]


def test_position_tables_are_resized_the_official_way():
    """The switch matters: plain bicubic (the project's earlier resize) moves a random
    64x64 table by several per cent on Tiny's 32x32 grid, antialiased bicubic is torch's
    ``antialias=True`` kernel exactly, and Base's own grid is untouched either way."""
    from train.model.layers import interpolate_grid

    table = torch.randn(64, 64, 8, generator=torch.Generator().manual_seed(0))
    official = torch.nn.functional.interpolate(table.permute(2, 0, 1)[None], size=(32, 32), mode="bicubic",
                                               antialias=True, align_corners=False)[0].permute(1, 2, 0)
    assert torch.equal(interpolate_grid(table, 32, 32, antialias=True), official)
    plain = interpolate_grid(table, 32, 32)
    assert (plain - official).abs().max() / official.abs().max() > 1e-2
    assert interpolate_grid(table, 64, 64, antialias=True) is table


def test_load_then_export_is_the_identity_on_every_tensor(loaded, parity_snapshot_dir, tmp_path):
    from train.official.export import export_official
    from train.official.load import find_tensors
    from train.official.st_io import read_tensor

    out = export_official(loaded.model, loaded.config, loaded.tokenizer, tmp_path / "export", dtype=torch.float32,
                          extras=loaded.extras, files_from=parity_snapshot_dir)
    src, dst = find_tensors(parity_snapshot_dir), find_tensors(out)
    assert sorted(src) == sorted(dst) and len(src) == 556
    for key, info in src.items():
        a, b = read_tensor(info), read_tensor(dst[key])
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.view(torch.uint8), b.view(torch.uint8)), key
    given = json.loads((parity_snapshot_dir / "config.json").read_text())
    written = json.loads((out / "config.json").read_text())
    for k in ("architectures", "auto_map", "model_type", "vocab_size", "num_hidden_layers", "n_routed_experts",
              "num_experts_per_tok", "moe_intermediate_size", "intermediate_size", "hidden_size", "vision_config"):
        assert written[k] == given[k], k
    assert written["language_config"]["n_routed_experts"] == given["language_config"]["n_routed_experts"]


def test_the_torch_resize_centres_the_letterbox_where_pil_does():
    """The faster resize path (resize_kernel "torch", the named configs' default) places
    the page at ImageOps.pad's offset too: round half to even, so the fixture's Base page
    (725 px wide in 1024) starts at column 150, not 149."""
    from PIL import ImageOps

    from train.configs import EncoderConfig
    from train.model.vision_inputs import PAD_GREY

    img = Image.new("RGB", (453, 640), (10, 200, 30))  # one colour: every resampler gives it back exactly
    view = fit_image(img, "base", EncoderConfig()).global_view
    cols = (view[1, 512] == 200).nonzero().flatten()
    assert (int(cols.min()), int(cols.max())) == (150, 874)
    pil = ImageOps.pad(img, (1024, 1024), color=PAD_GREY)
    assert torch.equal(view, torch.from_numpy(np.asarray(pil)).permute(2, 0, 1))
