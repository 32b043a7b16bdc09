"""The training loop: stage 1 (DeepEncoder + compact LM) and stage 2 (full model).

One ``Trainer`` serves a single process and each rank of a torchrun/DDP run. The loss of a
step is the mean over *all target tokens of the global batch* (every rank, every
micro-batch), so one process with batch 2B and two processes with B each compute the same
gradient. Everything a resumed run needs (weights, AdamW moments, RNG, epoch and batch
position) is in the checkpoint, so a killed run continues with the same next loss.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from train import checkpoint as ckpt_io
from train import distributed as dist_util
from train.configs import ModelConfig, load_config
from train.data import BucketBatchSampler, DataConfig, EpochStream, OCRDataset, ShardSet, iter_texts, make_loader
from train.heldout import HeldOut, heldout_loss
from train.lora import DEFAULT_TARGETS, LoraConfig, adapter_state_dict, apply_lora, load_adapter_state_dict, merge_lora
from train.schedule import lr_at
from train.tokenizer import IGNORE_INDEX, OCRTokenizer, train_tokenizer

RUN_FILE = "run.json"
TOKENIZER_FILE = "tokenizer.json"
LOG_FILE = "log.jsonl"
EVAL_LOG_FILE = "eval.jsonl"
ENCODER_FILE = "encoder.safetensors"
COMPILE_SCOPES = ("blocks", "model")
BASE_DTYPES = {"auto": None, "bfloat16": torch.bfloat16, "float32": torch.float32}


@dataclass
class TrainArgs:
    """Every option of a training run (the CLI flags of ``python -m train``).

    config: model: tiny/small/paper, or a YAML/JSON file of overrides (train.configs.load_config).
    stage: 1 = DeepEncoder + compact decoder; 2 = full model, SAM + compressor frozen.
    data: shard directories or files.
    out: the run directory (checkpoints, tokenizer.json, run.json, log.jsonl).
    mode: resolution mode(s) tiny/small/base/large/gundam/gundam_m. Several (``--mode tiny small base
      large gundam``) train one model for all of them: each example's mode is drawn per
      epoch, uniformly over the list (repeat a name to weigh it more).
    init_from: stage 2 only: a run directory or checkpoint to start from. A stage-1 one gives
      its encoder (the Vary recipe); a stage-2 one gives the whole model, for continued
      training with a fresh optimizer and schedule (how the paper reaches Gundam-M).
    init_official: stage 2 only: a local snapshot of the released DeepSeek-OCR checkpoint
      (``hf download deepseek-ai/DeepSeek-OCR --local-dir DIR``) to fine-tune. Its config.json
      and tensors decide the model (``config`` may then only be a YAML/JSON file of
      encoder/decoder overrides, e.g. ``encoder: {gundam_max_tiles: 6}``), the official
      tokenizer and prompt template are used, and the weights load in float32 on the
      device, tensor by tensor (train.official). Checked whole before training starts.
    official_tokenizer: use DeepSeek-OCR's tokenizer (DeepSeek-V3's vocabulary + 12 OCR tokens)
      and its prompt template instead of training the project's byte-level BPE; implied by
      init_official. With ``tokenizer`` that file must be such a tokenizer.
    tokenizer: an existing tokenizer.json to use instead of training one.
    vocab_size: size of the byte-level BPE trained on the data when none is given.
    batch_size: examples per rank per micro-batch (at most, with max_batch_tokens).
    max_batch_tokens: also end a micro-batch before its padded tokens (examples times the
      longest) pass this (0: off), so batches of long examples shrink and the longest
      bucket stops deciding the memory a batch size needs (BucketBatchSampler).
    grad_accum: micro-batches per optimizer step.
    steps: optimizer steps of the whole run (the schedule's length).
    stop_after: end this invocation after this many steps (0: run to ``steps``); the run
      resumes from its last checkpoint when started again.
    lr: peak learning rate (linear warm-up, then cosine decay).
    min_lr_ratio: the cosine's floor as a fraction of the peak.
    warmup: warm-up steps.
    weight_decay: AdamW weight decay (not applied to 1-d params: norms, biases).
    beta1, beta2, eps: AdamW's moment decays and epsilon.
    clip: global gradient-norm clip (0 disables).
    seed: init and data-order seed.
    workers: DataLoader worker processes per rank.
    max_len: longest training sequence in tokens.
    tasks: keep only these record tasks (empty: all).
    log_every: steps between log lines (console and log.jsonl).
    save_every: steps between checkpoints.
    keep: checkpoints kept (the newest; the last valid one is never deleted).
    checkpoints: write checkpoints (off for benchmarks: the paper config's, with optimizer
      state, is 36 GB, and a device's disk holds one).
    eval_data: held-out shard directories or files; their LM loss goes to eval.jsonl before
      the first step and every ``eval_every`` steps (train.heldout).
    eval_every: steps between held-out evaluations.
    eval_examples: held-out examples evaluated, a fixed subset drawn by ``seed`` (0: all),
      each in every ``mode``.
    allow_incomplete: read the finished shards of a run that is not complete (--data and
      --eval-data; refused by default, synth.catalog).
    compile: torch.compile the model (see compile_scope).
    compile_scope: "blocks" (default) compiles each SAM, CLIP and decoder block on its own
      (OCRModel.compile_blocks): batches with another number of images or mix of modes
      reuse the compiled code. "model" compiles the whole forward as one graph, which
      compiles again for every new batch make-up; kept for comparison.
    grad_checkpoint: recompute SAM, CLIP and decoder blocks in backward (activation memory
      for about one more forward pass).
    cudnn_attention: let SDPA choose cuDNN's fused attention on CUDA. Off by default:
      cuDNN builds a plan per new shape, and length-bucketed batches bring new sequence
      lengths most steps (2-5 ms of host time per attention call on an H200, docs/gpu.md);
      the flash and memory-efficient kernels have no such cost.
    sam_flex_attention: on CUDA, run frozen SAM's global attention (stage 2) through
      FlexAttention, at its own head dim, instead of SDPA with the position bias carried in
      extra key dims (three times the head dim of a 1024 px page's global blocks). Off by
      default: on an H200 (torch 2.11) its kernel took 47.5 ms where the key-dim form took
      5.4 (16 pages of 1024 px, forward, docs/gpu.md run 3), 36 % of a paper step. Probed
      once against the key-dim form; the run file's ``sam_attention`` says which ran.
    peak_flops: accelerator peak FLOP/s per GPU for MFU (790e12: measured dense bf16 on H100;
      0: no MFU). On CPU, whose peak is not known, MFU is left out of the log.
    lora_rank: 0 (default): full fine-tuning, every parameter of the stage trains (stage 2
      keeps SAM and the compressor frozen). > 0: LoRA of that rank (train/lora.py): only
      the adapters train, on a frozen stage-2 base given by ``init_from`` (or an official
      checkpoint). Checkpoints then hold the adapters and their optimizer state, not the
      base; run.json's ``base`` records where the base came from, and a resumed run, an
      evaluation or an ``init_from`` of this run reloads it from there.
    lora_alpha: the adapters' outputs are scaled by lora_alpha / lora_rank.
    lora_dropout: dropout on each adapter's input while training.
    lora_targets: what gets adapters: attention (decoder q/k/v/o), dense_mlp (the dense
      layer's SwiGLU), shared_experts, routed_experts (one adapter per expert; rank a
      multiple of 8), projector (the encoder's projector), vision (CLIP's blocks).
    lora_base_dtype: the frozen base's dtype in a LoRA run: auto (bfloat16 on CUDA, where
      the step runs under bf16 autocast anyway, float32 on CPU), bfloat16 or float32.
    device: auto, cpu or cuda.
    """

    config: str = "tiny"
    stage: int = 2
    data: list[str] = field(default_factory=list)
    out: str = ""
    mode: list[str] = field(default_factory=lambda: ["base"])
    init_from: str = ""
    init_official: str = ""
    official_tokenizer: bool = False
    tokenizer: str = ""
    vocab_size: int = 4096
    batch_size: int = 8
    max_batch_tokens: int = 0
    grad_accum: int = 1
    steps: int = 1000
    stop_after: int = 0
    lr: float = 3e-4
    min_lr_ratio: float = 0.1
    warmup: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    clip: float = 1.0
    seed: int = 0
    workers: int = 2
    max_len: int = 8192
    tasks: list[str] = field(default_factory=list)
    log_every: int = 10
    save_every: int = 500
    keep: int = 2
    checkpoints: bool = True
    eval_data: list[str] = field(default_factory=list)
    eval_every: int = 200
    eval_examples: int = 256
    allow_incomplete: bool = False
    compile: bool = False
    compile_scope: str = "blocks"
    grad_checkpoint: bool = False
    cudnn_attention: bool = False
    sam_flex_attention: bool = False
    peak_flops: float = 790e12
    lora_rank: int = 0
    lora_alpha: float = 32.0
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    lora_base_dtype: str = "auto"
    device: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.mode, str):  # TrainArgs(mode="base") from Python
            self.mode = [self.mode]
        if isinstance(self.lora_targets, str):
            self.lora_targets = [self.lora_targets]

    def validate(self) -> None:
        """Raise ValueError naming the first option that cannot work."""
        from train.configs import MODES

        if self.stage not in (1, 2):
            raise ValueError(f"--stage {self.stage}: valid stages are 1 and 2")
        bad = [m for m in self.mode if m not in MODES]
        if bad or not self.mode:
            raise ValueError(f"--mode {' '.join(bad)}: valid modes are {', '.join(MODES)} (one or more)")
        if not self.data:
            raise ValueError("--data: give at least one shard directory")
        if not self.out:
            raise ValueError("--out: give a run directory")
        if self.init_from and self.stage != 2:
            raise ValueError(f"--init-from {self.init_from!r} is for stage 2; this run is stage {self.stage}")
        if self.init_official and self.stage != 2:
            raise ValueError(f"--init-official {self.init_official!r} is for stage 2 (the released model's MoE "
                             f"decoder); this run is stage {self.stage}")
        if self.init_official and self.init_from:
            raise ValueError("--init-official and --init-from both give starting weights: choose one")
        if self.compile_scope not in COMPILE_SCOPES:
            raise ValueError(f"--compile-scope {self.compile_scope!r}: valid scopes are {', '.join(COMPILE_SCOPES)}")
        if self.max_batch_tokens < 0:
            raise ValueError(f"--max-batch-tokens {self.max_batch_tokens}: must be >= 0 (0: no token budget)")
        if self.eval_examples < 0:
            raise ValueError(f"--eval-examples {self.eval_examples}: must be >= 0 (0 evaluates every example)")
        for name in ("batch_size", "grad_accum", "steps", "log_every", "save_every", "eval_every", "keep"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be >= 1")
        if self.lora_rank < 0:
            raise ValueError(f"--lora-rank {self.lora_rank}: must be >= 0 (0: full fine-tuning)")
        if self.lora_rank:
            self.lora_config()  # checks rank, alpha, dropout and targets
            if self.stage != 2:
                raise ValueError(f"--lora-rank {self.lora_rank}: LoRA fine-tunes a stage-2 model; "
                                 f"this run is stage {self.stage}")
            if not (self.init_from or getattr(self, "init_official", "")):
                raise ValueError(f"--lora-rank {self.lora_rank}: LoRA needs a trained base to adapt: give --init-from "
                                 "a stage-2 run or checkpoint (or an official checkpoint)")
        if self.lora_base_dtype not in BASE_DTYPES:
            raise ValueError(f"--lora-base-dtype {self.lora_base_dtype!r}: valid are {', '.join(BASE_DTYPES)}")

    def lora_config(self) -> LoraConfig:
        """The LoraConfig of the lora_* options (raises ValueError naming the bad one)."""
        try:
            return LoraConfig(self.lora_rank, self.lora_alpha, self.lora_dropout, tuple(self.lora_targets))
        except ValueError as err:
            raise ValueError(f"--lora-*: {err}") from None


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model under DDP and torch.compile wrappers."""
    while True:
        if hasattr(model, "module"):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def vision_to(vision: list[Any], device: torch.device) -> list[Any]:
    """Move each VisionInput's tensors to device (None entries stay None)."""
    out = []
    for v in vision:
        if v is None:
            out.append(None)
            continue
        tiles = v.tiles.to(device, non_blocking=True) if v.tiles is not None else None
        out.append(dataclasses.replace(v, global_view=v.global_view.to(device, non_blocking=True), tiles=tiles))
    return out


def resolve_checkpoint(path: str | Path, files: tuple[str, ...] = ("model.safetensors",)) -> Path:
    """A checkpoint directory from a run directory (its newest valid one) or a checkpoint
    path, with ``files`` checked against the checkpoint's checksums (CheckpointError if not)."""
    p = Path(path)
    if (p / "model.safetensors").exists():
        return ckpt_io.verify(p, files)
    found = ckpt_io.find_latest(p, files)
    if found.path is None:
        why = f" ({found.skipped[0]})" if found.skipped else ""
        raise FileNotFoundError(f"{path}: neither a checkpoint (model.safetensors) nor a run directory "
                                f"with a valid checkpoint under checkpoints/{why}")
    return found.path


def load_model_from_checkpoint(model: torch.nn.Module, ckpt: str | Path) -> None:
    """Load a stage-2 checkpoint's whole model into ``model`` (in place).

    A LoRA run's checkpoint holds its adapters only: its base is loaded from where the
    run's run.json says it came from, the adapters are applied and merged, and ``model``
    ends plain (its modules and ``requires_grad`` flags as they were).
    """
    from safetensors.torch import load_file

    ckpt = Path(ckpt)
    meta_path = ckpt / "state.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if meta.get("model_tensors") != ckpt_io.ADAPTERS:
        ckpt_io.load_model_weights(ckpt, model)
        return
    run_file = ckpt.parent.parent / RUN_FILE
    if not run_file.exists():
        raise FileNotFoundError(f"{ckpt}: a LoRA checkpoint (adapters only) whose run has no {RUN_FILE} at "
                                f"{run_file}: the base it adapts is unknown")
    info = json.loads(run_file.read_text())
    load_base(model, info.get("base") or {}, str(run_file))
    flags = {id(p): p.requires_grad for p in model.parameters()}
    apply_lora(model, LoraConfig(**info["lora"]))
    load_adapter_state_dict(model, load_file(str(ckpt / "model.safetensors")), str(ckpt / "model.safetensors"))
    merge_lora(model)
    for p in model.parameters():
        p.requires_grad_(flags[id(p)])


def load_base(model: torch.nn.Module, base: dict[str, str], source: str) -> None:
    """Load the base a run recorded in run.json (``base``) into ``model``."""
    if base.get("init_from"):
        ck = Path(base["init_from"])
        if not (ck / "model.safetensors").exists():
            raise FileNotFoundError(f"{source}: base checkpoint {ck} is gone (pruned by its run's --keep, or moved): "
                                    "a LoRA run's adapters need the exact base they were trained on")
        load_model_from_checkpoint(model, ck)
    elif base.get("init_official"):
        from train.official.load import load_weights, read_snapshot

        load_weights(model, read_snapshot(base["init_official"]))
    else:
        raise ValueError(f"{source}: base = {base!r}: no loadable base source recorded "
                         "(expected init_from or init_official)")


def build_model(config: str | ModelConfig, stage: int, tok: OCRTokenizer, vocab_size: int | None = None):
    """The OCRModel of a config (a name, a YAML/JSON file, or a ModelConfig) for a tokenizer;
    returns (model, ModelConfig). ``vocab_size``: embedding rows when they exceed the
    tokenizer's ids (the released checkpoint pads its 128,827 to 129,280); default the tokenizer's."""
    from train.model.ocr_model import OCRModel

    mcfg = config if isinstance(config, ModelConfig) else load_config(config)
    model = OCRModel(mcfg, vocab_size=vocab_size or tok.vocab_size, image_token_id=tok.image_id, stage=stage)
    return model, mcfg


def _official_snapshot(args: TrainArgs):
    """``--init-official``'s snapshot, checked, with ``--config`` as a file of overrides."""
    from train.configs import CONFIG_NAMES
    from train.official.config import OfficialFormatError
    from train.official.load import read_snapshot

    overrides = None
    if args.config not in CONFIG_NAMES:  # a named config is the default's placeholder here: the snapshot decides
        path = Path(args.config)
        if not path.is_file():
            raise OfficialFormatError(f"--config {args.config}: no such file (with --init-official, --config is a "
                                      f"YAML/JSON file of encoder/decoder overrides)")
        import yaml

        overrides = yaml.safe_load(path.read_text()) or {}
        if not isinstance(overrides, dict):
            raise OfficialFormatError(f"--config {args.config}: expected a mapping with encoder/decoder sections")
    return read_snapshot(args.init_official, overrides)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Trainable params split into decayed (matrices) and not decayed (norms, biases)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Trainer:
    """Builds model, data and optimizer for TrainArgs and runs optimizer steps."""

    def __init__(self, args: TrainArgs):
        args.validate()
        self.args = args
        # A released snapshot is checked whole (config, files, keys, shapes) before anything else.
        self.snapshot = _official_snapshot(args) if args.init_official else None
        self.dist = dist_util.init(args.device)
        self.dev = self.dist.device
        if self.dev.type == "cuda":
            torch.backends.cuda.enable_cudnn_sdp(args.cudnn_attention)
        self.run_dir = Path(args.out)
        if self.dist.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        dist_util.barrier()
        self.shards = ShardSet(args.data, args.allow_incomplete)
        self.tok = self._tokenizer()
        torch.manual_seed(args.seed)
        self.base: dict[str, str] = {}  # where a stage-2 run's starting weights came from (run.json)
        self.init_note = ""
        self.resume_path, self.resume_notes = self._find_resume()
        if self.snapshot is not None:
            self.model, self.mcfg = self._official_model()
            self.base = {"init_official": str(Path(self.snapshot.path).resolve())}
        else:
            with self.dev:  # initialise on the device: the paper config's 3B parameters take ~50 s on a CPU core
                self.model, self.mcfg = build_model(args.config, args.stage, self.tok)
        if args.stage == 2:
            if args.init_from:
                self._init_from(args.init_from)
            self.model.freeze_for_stage2()
        self.lora_paths: list[str] = []
        if args.lora_rank:
            dtype = BASE_DTYPES[args.lora_base_dtype] or (torch.bfloat16 if self.dev.type == "cuda" else torch.float32)
            if dtype != torch.float32 and self.dev.type != "cuda":
                raise ValueError(f"--lora-base-dtype {args.lora_base_dtype}: a {dtype} base needs CUDA's autocast; "
                                 "CPU steps run in float32")
            self.model.to(dtype)
            self.lora_paths = apply_lora(self.model, args.lora_config())
        self.model.to(self.dev)
        if args.grad_checkpoint:
            self.model.set_grad_checkpointing(True)
        # Choose the MoE kernel now, outside any compiled graph (see moe.grouped_gemm_ok).
        self.moe_kernel = "none (dense decoder)" if not self.model.dec_cfg.n_routed else "loop"
        if self.dev.type == "cuda" and self.model.dec_cfg.n_routed:
            from train.model.moe import grouped_gemm_ok

            self.moe_kernel = "grouped_mm" if grouped_gemm_ok(self.dev) else "loop"
        self.sam_attention = "sdpa (key dims)"
        if self.dev.type == "cuda" and args.stage == 2 and args.sam_flex_attention:
            from train.model.sam import flex_attention_ok

            if flex_attention_ok(self.dev):
                self.model.set_sam_flex_attention(True)
                self.sam_attention = "flex"
        self.opt = torch.optim.AdamW(
            param_groups(self.model, args.weight_decay), lr=args.lr, betas=(args.beta1, args.beta2), eps=args.eps,
            fused=self.dev.type == "cuda",
        )
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.resumed_from: str | None = None
        self._resume()
        self.fwd = self.model
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            # Text-only batches skip the encoder and MoE routing skips experts.
            self.fwd = DDP(self.model, device_ids=[self.dist.local_rank] if self.dev.type == "cuda" else None,
                           find_unused_parameters=True)
        if args.compile and args.compile_scope == "model":
            self.fwd = torch.compile(self.fwd)
        elif args.compile:
            self.model.compile_blocks()
        self.dataset = OCRDataset(self.shards, self.tok, self.mcfg.encoder,
                                  DataConfig(modes=tuple(args.mode), max_len=args.max_len, tasks=list(args.tasks)))
        self.sampler = BucketBatchSampler(self.dataset.lengths, self.dataset.groups, args.batch_size, seed=args.seed,
                                          rank=self.dist.rank, world=self.dist.world, max_tokens=args.max_batch_tokens)
        if len(self.sampler) == 0:
            raise ValueError(f"--batch-size {args.batch_size} x {self.dist.world} ranks exceeds the {len(self.dataset)} examples of --data")
        self.heldout: HeldOut | None = None
        if args.eval_data:
            held = OCRDataset(ShardSet(args.eval_data, args.allow_incomplete), self.tok, self.mcfg.encoder, self.dataset.cfg)
            self.heldout = HeldOut(held, args.batch_size, args.eval_examples, args.seed, self.dist.rank, self.dist.world)
        if self.dist.main:
            self._write_run_file()
            self._print_banner()
        self._log_fh = open(self.run_dir / LOG_FILE, "a") if self.dist.main else None
        self._bar = None

    # -- set-up helpers ---------------------------------------------------------
    def _tokenizer(self) -> OCRTokenizer:
        if self.snapshot is not None or self.args.official_tokenizer:
            return self._official_tokenizer()
        a = self.args
        own = self.run_dir / TOKENIZER_FILE
        candidates = [own]
        if a.tokenizer:
            candidates.append(Path(a.tokenizer))
        if a.init_from:
            p = Path(a.init_from)
            candidates += [p / TOKENIZER_FILE, p.parent.parent / TOKENIZER_FILE]
        for c in candidates:
            if c.exists():
                tok = OCRTokenizer.load(c)
                break
        else:
            tok = None
        if self.dist.main and not own.exists():
            if tok is None:
                tok = train_tokenizer(iter_texts(self.shards), a.vocab_size)
            tok.save(own)
        dist_util.barrier()
        return OCRTokenizer.load(own)

    def _official_tokenizer(self) -> OCRTokenizer:
        """DeepSeek-OCR's tokenizer: the run's own copy when resuming, else the snapshot's
        (or the one ``--tokenizer`` names), checked against the checkpoint's vocabulary."""
        from train.official.tokenizer import build_official_tokenizer, check_official_tokenizer, snapshot_tokenizer

        a, own = self.args, self.run_dir / TOKENIZER_FILE
        rows = self.snapshot.vocab_rows if self.snapshot is not None else None
        if own.exists():
            tok = OCRTokenizer.load(own)
        elif self.snapshot is not None:
            tok = snapshot_tokenizer(self.snapshot.path, rows, a.tokenizer or None)
        else:
            tok = OCRTokenizer.load(a.tokenizer) if a.tokenizer else build_official_tokenizer()
        check_official_tokenizer(tok, rows or tok.vocab_size, str(own if own.exists() else a.tokenizer or "tokenizer"))
        if self.dist.main and not own.exists():
            tok.save(own)
        dist_util.barrier()
        return OCRTokenizer.load(own)

    def _official_model(self):
        """The released model of ``--init-official`` in float32 on the device: its weights,
        or (when resuming) just its shape, the checkpoint restoring the rest."""
        from train.official.export import keep_snapshot_files
        from train.official.load import empty_model, load_weights

        snap = self.snapshot
        model = empty_model(snap.config, snap.vocab_rows, self.tok.image_id, torch.float32, self.dev)
        fresh = self.resume_path is None
        if fresh or self.args.lora_rank:  # a LoRA run's checkpoints hold its adapters only, never the base
            extras = load_weights(model, snap)
            if self.dist.main and fresh:
                keep_snapshot_files(snap.path, snap.dtype, extras, self.run_dir)
        return model, snap.config

    def _find_resume(self) -> tuple[Path | None, list[str]]:
        """The newest complete and valid checkpoint of the run directory (or None), and a
        line for each newer one (or a stale ``latest``) passed over, with why."""
        # Rank 0 reads and hashes the checkpoints once and tells the other ranks its choice.
        found = ckpt_io.find_latest(self.run_dir) if self.dist.main else ckpt_io.Found(None)
        if dist_util.active():
            import torch.distributed as tdist

            box = [str(found.path) if found.path else None]
            tdist.broadcast_object_list(box, src=0)
            found.path = Path(box[0]) if box[0] else None
        notes = [f"resume: skipped {why}" for why in found.skipped]
        if found.path is None and found.skipped:
            notes.append("resume: no intact checkpoint; starting at step 0")
        return found.path, notes

    def _resume(self) -> None:
        """Restore the checkpoint :meth:`_find_resume` chose, if any (a LoRA run's holds its
        adapters only, the base having been loaded already)."""
        found = self.resume_path
        if found is None:
            return
        load_adapters = (lambda sd: load_adapter_state_dict(self.model, sd, str(found))) if self.args.lora_rank else None
        meta = ckpt_io.restore(found, self.model, self.opt, load_adapters)
        self.step, self.epoch, self.batch_in_epoch = meta["step"], meta["epoch"], meta["batch_in_epoch"]
        self.resumed_from = str(found)
        self.resume_notes.append(f"resume: from {found} (step {self.step})")

    def _init_from(self, init_from: str) -> None:
        """Start stage 2 from a stage-1 checkpoint's encoder, or a stage-2 checkpoint's model."""
        from safetensors.torch import load_file

        ck = resolve_checkpoint(init_from)
        if self.args.lora_rank and self.resume_path is not None and (self.run_dir / RUN_FILE).exists():
            # A resumed LoRA run's adapters belong to the exact base it started from, even
            # if --init-from names a run that has saved newer checkpoints since.
            recorded = (json.loads((self.run_dir / RUN_FILE).read_text()).get("base") or {}).get("init_from")
            ck = Path(recorded) if recorded else ck
        enc_file = ck / ENCODER_FILE
        if enc_file.exists():  # only stage 1 writes the encoder alone
            if self.args.lora_rank:
                raise ValueError(f"--init-from {init_from}: {ck} is a stage-1 checkpoint (the encoder alone); "
                                 "LoRA adapts a whole stage-2 model")
            ckpt_io.verify(ck, (ENCODER_FILE,))
            self.model.load_encoder_state_dict(load_file(str(enc_file)))
            self.init_note = f"encoder from {ck} (stage 1)"
            return
        try:
            load_model_from_checkpoint(self.model, ck)
        except (RuntimeError, ckpt_io.CheckpointMismatch) as exc:
            raise ValueError(f"--init-from {init_from}: {ck} is a stage-2 checkpoint of another model shape "
                             f"than --config {self.args.config!r} ({exc})") from exc
        self.base = {"init_from": str(ck.resolve())}
        self.init_note = f"whole model from {ck} (stage 2)"

    def banner(self) -> list[str]:
        """What this run is about to do, in a few lines: data, model, device, schedule,
        where it starts from and where it writes."""
        a, m = self.args, unwrap(self.model)
        lengths = self.dataset.lengths
        tokens = int(lengths.sum() if lengths.ndim == 1 else lengths.mean(axis=1).sum())
        n_ex = len(self.dataset)
        total = sum(p.numel() for p in m.parameters())
        trainable = sum(p.numel() for p in m.parameters() if p.requires_grad)
        frozen: dict[str, int] = {}
        for name, p in m.named_parameters():
            if not p.requires_grad:
                part = ".".join(name.split(".")[:2])
                frozen[part] = frozen.get(part, 0) + p.numel()
        dtype = "bfloat16 autocast, float32 weights" if self.dev.type == "cuda" else "float32"
        if getattr(a, "init_official", None):
            start = f"the released checkpoint ({a.init_official})"
        elif self.init_note:
            start = self.init_note
        else:
            start = "random initialisation"
        if self.resumed_from:
            start = f"step {self.step} of {self.resumed_from} (resumed; first initialised from {start})"
        per_step = a.batch_size * a.grad_accum * self.dist.world
        lines = [
            f"python -m train: stage {a.stage}, config {self.mcfg.name}, "
            f"{len(set(a.mode))} mode(s): {' '.join(a.mode)}",
            f"  data      {self.dataset.num_groups} rows of {len(self.shards.paths)} shard(s) -> {n_ex} examples"
            f"{' of tasks ' + ' '.join(a.tasks) if a.tasks else ''}, {tokens:,} tokens an epoch "
            f"(mean {tokens / max(1, n_ex):,.0f} a sequence, image placeholders included)",
            f"  model     {_count(total)} parameters, {_count(trainable)} trainable; frozen: "
            + (", ".join(f"{k} ({_count(v)})" for k, v in frozen.items()) or "nothing"),
            f"  device    {self.dev} x {self.dist.world} rank(s), {dtype}",
            f"  schedule  {a.steps} steps of up to {per_step} examples ({a.batch_size} x {a.grad_accum} micro-batches"
            f" x {self.dist.world} ranks), lr {a.lr:g} (warm-up {a.warmup}, cosine to {a.min_lr_ratio:g}x)",
            f"  start     {start}",
            f"  writes    {self.run_dir}/ (log.jsonl, run.json, tokenizer.json"
            + (f", checkpoints/ every {a.save_every} steps, keep {a.keep}" if a.checkpoints else ", no checkpoints")
            + (", eval.jsonl" if a.eval_data else "") + ")",
        ]
        return lines + self.resume_notes

    def stage2_warning(self) -> str | None:
        """Why a stage-2 run without an initialisation is likely a mistake, or None."""
        a = self.args
        if a.stage != 2 or a.init_from or getattr(a, "init_official", None) or self.resumed_from:
            return None
        return ("warning: stage 2 without --init-from (or --init-official): SAM and the compressor stay frozen at "
                "random weights, so the model learns to read through a random encoder. Train stage 1 first and "
                "pass its run directory to --init-from.")

    def _print_banner(self) -> None:
        print("\n".join(self.banner()), flush=True)
        warning = self.stage2_warning()
        if warning:
            print(warning, file=sys.stderr, flush=True)

    def _write_run_file(self) -> None:
        info = {
            "args": dataclasses.asdict(self.args),
            "model_config": dataclasses.asdict(self.mcfg),
            "vocab_size": self.model.dec_cfg.vocab_size,  # the tokenizer's, or a checkpoint's padded rows
            "tokenizer": self.tok.flavour,
            "image_token_id": self.tok.image_id,
            "world": self.dist.world,
            "device": str(self.dev),
            "moe_kernel": self.moe_kernel,
            "sam_attention": self.sam_attention,
            "cuda_allocator": self.dist.cuda_allocator,
            "base": self.base or None,
            "lora": dataclasses.asdict(self.args.lora_config()) if self.args.lora_rank else None,
            "lora_modules": self.lora_paths,
            "trainable_params": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
        }
        # Atomic: other ranks of a resumed LoRA run read its base from here.
        tmp = self.run_dir / (RUN_FILE + ".tmp")
        tmp.write_text(json.dumps(info, indent=1, sort_keys=True, default=str))
        os.replace(tmp, self.run_dir / RUN_FILE)

    # -- data ---------------------------------------------------------------------
    def batches(self) -> Iterator[dict[str, Any]]:
        """Endless batches from the saved position; keeps epoch/batch_in_epoch current."""
        stream = EpochStream(self.sampler, self.epoch, self.batch_in_epoch)
        for batch in make_loader(self.dataset, stream, self.args.workers, pin_memory=self.dev.type == "cuda"):
            self.epoch, index = stream.positions.popleft()
            self.batch_in_epoch = index + 1
            yield batch

    # -- one optimizer step ----------------------------------------------------------
    def train_step(self, micro: list[dict[str, Any]]) -> dict[str, float]:
        """Forward/backward over micro-batches, clip, AdamW step; returns step metrics."""
        return _floats(self._step(micro))

    def _step(self, micro: list[dict[str, Any]]) -> dict[str, Any]:
        """:meth:`train_step` with its metrics left on the device.

        Nothing in the step reads a device value (inputs are checked on the host, metrics
        are read at log time), so the host queues step n+1 while the GPU runs step n.
        """
        a = self.args
        self.model.train()
        lr = lr_at(self.step, a.lr, a.warmup, a.steps, a.min_lr_ratio)
        for g in self.opt.param_groups:
            g["lr"] = lr
        model = unwrap(self.model)
        causal = [model.check_inputs(b["input_ids"], b["attention_mask"], b["vision"]) for b in micro]
        counts = torch.tensor([float(self._n_loss_tokens(b)) for b in micro] + [0.0])
        counts = counts.pin_memory().to(self.dev, non_blocking=True) if self.dev.type == "cuda" else counts
        local_total = counts[:-1].sum()
        counts[-1] = local_total
        global_total = dist_util.all_reduce_sum(counts[-1:].clone()).clamp_min(1.0)
        loss_sum = torch.zeros((), device=self.dev)
        aux_sum = torch.zeros((), device=self.dev)
        for i, b in enumerate(micro):
            sync = i == len(micro) - 1
            ctx = self.fwd.no_sync() if (not sync and hasattr(self.fwd, "no_sync")) else _null()
            with ctx:
                with self._autocast():
                    out = self.fwd(
                        input_ids=b["input_ids"].to(self.dev, non_blocking=True),
                        attention_mask=b["attention_mask"].to(self.dev, non_blocking=True),
                        vision=vision_to(b["vision"], self.dev),
                        labels=b["labels"].to(self.dev, non_blocking=True),
                        causal=causal[i],
                    )
                # Token-weighted: the step's loss is the mean over the global batch's targets;
                # DDP divides gradients by world, hence the factor.
                # out.loss already includes the (weighted) MoE balance loss: split it off so
                # only the LM part is token-weighted and logged as "loss".
                aux = out.aux_loss.float() if out.aux_loss is not None else torch.zeros((), device=self.dev)
                lm = out.loss.float() - aux
                weight = counts[i] * self.dist.world / global_total
                (lm * weight + aux / len(micro)).backward()
                loss_sum += lm.detach() * counts[i]
                aux_sum += aux.detach() / len(micro)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        if a.clip > 0:
            gnorm = torch.nn.utils.clip_grad_norm_(trainable, a.clip)
        else:
            gnorm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in trainable if p.grad is not None]))
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.step += 1
        stats = torch.stack([loss_sum, aux_sum / self.dist.world])
        dist_util.all_reduce_sum(stats)
        return {"loss": stats[0] / global_total[0], "aux_loss": stats[1], "lr": lr, "grad_norm": gnorm}

    @staticmethod
    def _n_loss_tokens(b: dict[str, Any]) -> int:
        # Position 0 never carries a label after the shift, so this equals the model's count.
        return int((b["labels"][:, 1:] != IGNORE_INDEX).sum())

    def _autocast(self):
        if self.dev.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return _null()

    # -- throughput accounting ----------------------------------------------------------
    def step_flops(self, micro: list[dict[str, Any]]) -> float:
        """Model training FLOPs of one step on this rank (the model's own forward+backward counts)."""
        m = unwrap(self.model)
        total = 0.0
        for b in micro:
            for L in b["attention_mask"].sum(dim=1).tolist():
                total += float(m.flops_per_token(int(L))) * L
            for v in b["vision"]:
                if v is not None:
                    total += float(m.encoder_flops(v.mode, tuple(v.grid)))
        return total

    # -- the run -----------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train until ``steps`` (or ``stop_after`` steps in this call); return a summary."""
        a = self.args
        if self.step == 0:
            self.evaluate_heldout()  # the untrained baseline
        it = self.batches()
        from tqdm import tqdm

        # On the main rank's terminal only (tqdm leaves it out when stderr is not a TTY).
        self._bar = tqdm(total=a.steps, initial=self.step, unit="step", desc=f"stage {a.stage}", dynamic_ncols=True,
                         disable=None if self.dist.main else True, file=sys.stderr)
        try:
            return self._fit(it)
        finally:
            self._bar.close()
            self._bar = None

    def _fit(self, it: Iterator[dict[str, Any]]) -> dict[str, Any]:
        a = self.args
        last_log = time.perf_counter()
        window = {"tokens": 0, "images": 0, "targets": 0, "flops": 0.0, "data_s": 0.0, "steps": 0}
        done_here = 0
        history: list[dict[str, Any]] = []
        while self.step < a.steps and (a.stop_after == 0 or done_here < a.stop_after):
            t0 = time.perf_counter()
            micro = [next(it) for _ in range(a.grad_accum)]
            window["data_s"] += time.perf_counter() - t0
            metrics = self._step(micro)
            done_here += 1
            self._bar.update(1)
            window["steps"] += 1
            for b in micro:
                window["tokens"] += b["n_tokens"]
                window["images"] += b["n_images"]
                window["targets"] += b["n_target_tokens"]
            window["flops"] += self.step_flops(micro)
            history.append({"step": self.step, "loss": metrics["loss"]})
            if self.step % a.log_every == 0 or self.step == a.steps:
                metrics = _floats(metrics)  # waits for this step on the device
                now = time.perf_counter()
                self._log(metrics, window, now - last_log)
                last_log = now
                window = {k: 0 if isinstance(v, int) else 0.0 for k, v in window.items()}
            t_side = time.perf_counter()
            if self.step % a.eval_every == 0 or self.step == a.steps:
                self.evaluate_heldout()
            if a.checkpoints and (self.step % a.save_every == 0 or self.step == a.steps):
                self.save()
            last_log += time.perf_counter() - t_side  # held-out passes and checkpoints are not step time
        if a.checkpoints and a.stop_after and self.step % a.save_every != 0 and self.step != a.steps:
            self.save()
        if self._log_fh:
            self._log_fh.close()
            self._log_fh = None
        losses = torch.stack([h["loss"] for h in history]).tolist() if history else []
        for h, loss in zip(history, losses):
            h["loss"] = loss
        return {"step": self.step, "history": history, "run_dir": str(self.run_dir)}

    def _log(self, metrics: dict[str, float], w: dict[str, float], seconds: float) -> None:
        totals = torch.tensor([w["tokens"], w["images"], w["targets"], w["flops"], w["data_s"]], dtype=torch.float64)
        dist_util.all_reduce_sum(totals)
        tokens, images, targets, flops, data_s = totals.tolist()
        seconds = max(seconds, 1e-9)
        rec = {
            "step": self.step,
            "epoch": self.epoch,
            **metrics,
            "tokens_per_s": tokens / seconds,
            "target_tokens_per_s": targets / seconds,
            "images_per_s": images / seconds,
            "model_flops_per_s": flops / seconds,
            "step_s": seconds / max(1, w["steps"]),
            "data_wait_frac": data_s / self.dist.world / seconds,
        }
        if self.dev.type == "cuda" and self.args.peak_flops > 0:  # a CPU's peak is not known: no MFU
            rec["mfu"] = flops / seconds / (self.args.peak_flops * self.dist.world)
        if self.dev.type == "cuda":  # this rank's peak so far (bench/bench_memory.py predicts it)
            rec["max_memory_gib"] = torch.cuda.max_memory_allocated(self.dev) / 2 ** 30
        if self._log_fh is not None:
            self._log_fh.write(json.dumps(rec) + "\n")
            self._log_fh.flush()
            self._say(
                f"step {rec['step']:>6} loss {rec['loss']:.4f} lr {rec['lr']:.2e} gnorm {rec['grad_norm']:.2f} "
                f"tok/s {rec['tokens_per_s']:.0f} img/s {rec['images_per_s']:.1f}"
                + (f" mfu {rec['mfu']:.3f}" if "mfu" in rec else "")
                + f" data {rec['data_wait_frac']:.0%}"
                + (f" mem {rec['max_memory_gib']:.1f} GiB" if "max_memory_gib" in rec else "")
            )
            if self._bar is not None:
                self._bar.set_postfix_str(f"loss {rec['loss']:.4f}, {rec['tokens_per_s']:,.0f} tok/s", refresh=True)

    def _say(self, line: str) -> None:
        """Print a line above the progress bar (plain print when there is none)."""
        if self._bar is not None and not self._bar.disable:
            self._bar.write(line, file=sys.stdout)
            sys.stdout.flush()
        else:
            print(line, flush=True)

    def evaluate_heldout(self) -> dict[str, Any] | None:
        """The held-out loss now (every rank takes part); rank 0 appends it to eval.jsonl."""
        if self.heldout is None:
            return None
        rec = {"step": self.step, **heldout_loss(self.model, self.heldout, self.dev, self._autocast())}
        if self.dist.main:
            with open(self.run_dir / EVAL_LOG_FILE, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            by_mode = rec.get("eval_loss_by_mode")
            extra = " (" + ", ".join(f"{m} {v:.4f}" for m, v in by_mode.items()) + ")" if by_mode else ""
            self._say(f"step {rec['step']:>6} held-out loss {rec['eval_loss']:.4f}{extra} over {rec['eval_examples']} "
                      f"examples, {rec['eval_tokens']} tokens, {rec['eval_s']:.1f} s")
        return rec

    def save(self) -> None:
        """Checkpoint (rank 0 writes; every rank waits for it)."""
        if self.dist.main:
            state = {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "world": self.dist.world,
                     "schedule": {"lr": self.args.lr, "warmup": self.args.warmup, "steps": self.args.steps,
                                  "min_lr_ratio": self.args.min_lr_ratio}}
            # Stage 1 also stores the encoder alone: what stage 2's --init-from loads.
            extra = {ENCODER_FILE: self.model.encoder_state_dict()} if self.args.stage == 1 else None
            # A LoRA run stores its adapters alone: the frozen base is reloaded from run.json's ``base``.
            adapters = adapter_state_dict(self.model) if self.args.lora_rank else None
            if adapters is not None:
                state["model_tensors"] = ckpt_io.ADAPTERS
            ckpt_io.save(self.run_dir, self.step, self.model, self.opt, state, keep=self.args.keep, extra=extra,
                         model_state=adapters)
        dist_util.barrier()


def _count(n: int) -> str:
    """A parameter count for people: 3.34B, 570.20M, 12.5k."""
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    """Step metrics as Python floats (reading device tensors waits for the device)."""
    return {k: float(v) for k, v in metrics.items()}


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def train(args: TrainArgs) -> dict[str, Any]:
    """Run a whole training invocation; returns the Trainer's summary."""
    trainer = Trainer(args)
    try:
        return trainer.fit()
    finally:
        dist_util.cleanup()
