"""Batched greedy decoding from a trained run, with grounded boxes drawn back on the images.

    python -m train.generate --run RUN_DIR --image a.png b.png --mode base \\
        --prompt "<image>\\n<|grounding|>Convert the document to markdown."
    python -m train.generate --init-official ckpt/DeepSeek-OCR --image a.png   # the released model

Prints one JSON line per image ({image, text, boxes}) and writes ``<stem>.boxes.png``
beside ``--out-dir`` for outputs that contain ``<|det|>`` boxes.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw

from formats.bins import bins_to_box
from synth.cli import Parser, UsageError, show_defaults
from synth.cli import run as run_cli
from annotate.prompts import FREE_OCR
from train.configs import config_from_dict
from train.loop import RUN_FILE, TOKENIZER_FILE, build_model, load_model_from_checkpoint, resolve_checkpoint
from train.metrics import parse_grounded
from train.tokenizer import OCRTokenizer


@dataclass
class LoadedRun:
    """A trained model ready for inference, with its tokenizer and run settings."""

    model: torch.nn.Module
    tok: OCRTokenizer
    enc_cfg: Any
    info: dict[str, Any]
    device: torch.device

    @property
    def trained_modes(self) -> list[str]:
        """The resolution modes the run was trained in, distinct, in the order given."""
        mode = self.info["args"]["mode"]
        return list(dict.fromkeys([mode] if isinstance(mode, str) else mode))

    @property
    def default_mode(self) -> str:
        """The resolution mode the run was trained in (the first listed, for a multi-mode run)."""
        return self.trained_modes[0]


def load_run(run_dir: str | Path, checkpoint: str | Path | None = None, device: str = "auto") -> LoadedRun:
    """Build the run's model from run.json and load a checkpoint (default: the latest)."""
    run_dir = Path(run_dir)
    info_path = run_dir / RUN_FILE
    if not info_path.exists():
        raise FileNotFoundError(f"--run {run_dir}: no {RUN_FILE} (not a training run directory)")
    info = json.loads(info_path.read_text())
    tok = OCRTokenizer.load(run_dir / TOKENIZER_FILE)
    args = info["args"]
    # The resolved config run.json stores: the run rebuilds even if its YAML file moved.
    config = config_from_dict(info["model_config"], str(info_path)) if "model_config" in info else args["config"]
    ckpt = resolve_checkpoint(checkpoint or run_dir)
    with torch.device("meta"):  # no random init: every weight comes from the checkpoint (strict)
        model, mcfg = build_model(config, args["stage"], tok, info.get("vocab_size"))
    model = model.to_empty(device="cpu")
    load_model_from_checkpoint(model, ckpt)  # a LoRA run's: base + adapters, merged
    dev = torch.device("cuda" if (device == "auto" and torch.cuda.is_available()) or device == "cuda" else "cpu")
    model.to(dev).eval()
    return LoadedRun(model, tok, mcfg.encoder, info, dev)


def load_official_run(snapshot: str | Path, device: str = "auto", mode: str = "gundam") -> LoadedRun:
    """The released model of a local snapshot, ready for inference like a run (official
    tokenizer and template; bfloat16 weights on CUDA, float32 on the CPU). ``mode`` is what
    :attr:`LoadedRun.default_mode` answers: the official ``infer()``'s default is Gundam."""
    from train.official.load import load_official

    dev = torch.device("cuda" if (device == "auto" and torch.cuda.is_available()) or device == "cuda" else "cpu")
    loaded = load_official(snapshot, dtype=torch.bfloat16 if dev.type == "cuda" else torch.float32, device=dev)
    info = {"args": {"mode": [mode], "stage": 2, "init_official": str(snapshot)},
            "vocab_size": loaded.snapshot.vocab_rows, "tokenizer": loaded.tokenizer.flavour}
    return LoadedRun(loaded.model, loaded.tokenizer, loaded.config.encoder, info, dev)


def prepare(run: LoadedRun, images: list[Image.Image | None], prompts: list[str], mode: str):
    """Left-padded prompt ids, attention mask and vision inputs for a batch."""
    from train.model.vision_inputs import fit_image, num_image_tokens

    seqs, vision = [], []
    for img, prompt in zip(images, prompts):
        v = fit_image(img, mode, run.enc_cfg) if img is not None else None
        n = num_image_tokens(mode, run.enc_cfg, v.grid) if v is not None else 0
        seqs.append(run.tok.prompt_ids(prompt, n))
        vision.append(v)
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), run.tok.pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, width - len(s):] = torch.tensor(s)
        mask[b, width - len(s):] = 1
    from train.loop import vision_to

    return ids.to(run.device), mask.to(run.device), vision_to(vision, run.device)


@torch.no_grad()
def generate(run: LoadedRun, images: list[Image.Image | None], prompts: list[str] | str, mode: str | None = None,
             max_new_tokens: int = 512, no_repeat_ngram_size: int = 20, batch_size: int = 8) -> list[str]:
    """Greedy outputs (decoded text) for images and their prompts, in batches."""
    mode = mode or run.default_mode
    if isinstance(prompts, str):
        prompts = [prompts] * len(images)
    if len(prompts) != len(images):
        raise ValueError(f"{len(prompts)} prompts for {len(images)} images: give one prompt or one per image")
    out: list[str] = []
    for s in range(0, len(images), batch_size):
        ids, mask, vision = prepare(run, images[s:s + batch_size], prompts[s:s + batch_size], mode)
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if run.device.type == "cuda" else _nullctx()
        with ctx:
            new = run.model.generate(ids, mask, vision, max_new_tokens=max_new_tokens,
                                     eos_token_id=run.tok.eos_id, no_repeat_ngram_size=no_repeat_ngram_size)
        for seq in new:
            seq = list(seq)
            if run.tok.eos_id in seq:
                seq = seq[: seq.index(run.tok.eos_id)]
            out.append(run.tok.decode(seq))
    return out


class _nullctx:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def draw_boxes(img: Image.Image, text: str) -> Image.Image:
    """A copy of img with each grounded item's box and label drawn (bins -> pixels)."""
    out = img.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    palette = [(220, 40, 40), (40, 120, 220), (30, 160, 60), (200, 120, 0), (150, 50, 200)]
    for k, item in enumerate(parse_grounded(text)):
        x1, y1, x2, y2 = bins_to_box(item.box, out.width, out.height)
        color = palette[k % len(palette)]
        draw.rectangle([x1, y1, x2, y2], outline=color, width=2)
        draw.text((x1 + 2, max(0, y1 - 11)), item.label[:40], fill=color)
    return out


def build_parser() -> argparse.ArgumentParser:
    """The CLI's options, each with its help and default."""
    p = Parser(prog="python -m train.generate", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="training run directory")
    src.add_argument("--init-official", metavar="DIR", help="a local snapshot of the released DeepSeek-OCR instead")
    p.add_argument("--checkpoint", default=None, help="checkpoint directory (default: the run's newest valid one)")
    p.add_argument("--image", nargs="+", required=True, help="image files")
    p.add_argument("--mode", default=None, help="resolution mode (default: the run's)")
    p.add_argument("--prompt", default=FREE_OCR, help="prompt; '\\n' is read as a newline")
    p.add_argument("--max-new-tokens", type=int, default=512, help="stop each output after this many tokens")
    p.add_argument("--no-repeat-ngram-size", type=int, default=20,
                   help="never repeat an n-gram of this many tokens (the loop blocker; 0: off)")
    p.add_argument("--batch-size", type=int, default=8, help="images decoded together")
    p.add_argument("--out-dir", default=None, help="where box drawings go (default: RUN/generations)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: cuda when available, else cpu")
    return show_defaults(p)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    a = build_parser().parse_args(argv)
    from train.official.config import OfficialFormatError

    try:
        run = load_official_run(a.init_official, a.device) if a.init_official else load_run(a.run, a.checkpoint, a.device)
    except OfficialFormatError as exc:  # a snapshot that does not fit: refused before any work
        raise UsageError(str(exc)) from None
    images = [Image.open(f).convert("RGB") for f in a.image]
    texts = generate(run, images, a.prompt.replace("\\n", "\n"), a.mode, a.max_new_tokens,
                     a.no_repeat_ngram_size, a.batch_size)
    out_dir = Path(a.out_dir or Path(a.run or ".") / "generations")
    for path, img, text in zip(a.image, images, texts):
        rec: dict[str, Any] = {"image": path, "text": text}
        items = parse_grounded(text)
        if items:
            out_dir.mkdir(parents=True, exist_ok=True)
            png = out_dir / f"{Path(path).stem}.boxes.png"
            draw_boxes(img, text).save(png, format="PNG", optimize=False, compress_level=6)
            rec["boxes"] = [{"label": it.label, "box": list(it.box)} for it in items]
            rec["drawing"] = str(png)
        print(json.dumps(rec, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="python -m train.generate"))
