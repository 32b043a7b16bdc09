"""The training data path: memory-mapped shards -> (row, record) examples -> padded batches.

* Shards are Arrow IPC *stream* files opened with ``pa.memory_map`` + ``ipc.open_stream``:
  reading a column touches only the pages it needs, and each DataLoader worker opens its
  own maps (tables are never pickled into workers).
* One stored row holds one image and several records; every (row, record) pair is an
  example. Ranks of a distributed run get disjoint *rows*, so one image is never decoded
  on two ranks in the same epoch.
* Image decoding and ``fit_image`` run in the workers; batches are formed by a bucketed
  batch sampler (examples of similar length together) that is a pure function of
  (seed, epoch, rank, world) and can start mid-epoch for resumption.
"""

from __future__ import annotations

import collections
import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import Dataset, Sampler

from train.tokenizer import IGNORE_INDEX, OCRTokenizer

# Columns the loader reads per example; everything else stays unread on disk.
_TRAIN_COLUMNS = ("records", "image")
_SHARD_COLUMNS = ("records", "image", "width", "height")  # what OCRDataset reads


def find_shards(paths: Sequence[str], allow_incomplete: bool = False) -> list[str]:
    """Shard files of the given datasets (run directories, split folders) or files, in order.

    The list comes from ``synth.catalog``: the shards manifest.json lists (else the
    folder's ``data-*-of-*.arrow``), never a glob, so a ``datasets`` cache file or another
    run's leftover is ignored with a warning; an incomplete run is refused unless
    ``allow_incomplete``; a run with splits must be given one split folder (``DIR/train``).
    """
    from synth.catalog import open_catalog

    out: list[str] = []
    for p in paths:
        if not os.path.exists(p):
            raise FileNotFoundError(f"--data {p!r}: neither a shard file nor a directory")
        cat = open_catalog(p, allow_incomplete=allow_incomplete)
        if len({ref.split for ref in cat.shards}) > 1:
            raise ValueError(f"--data {p!r}: holds the splits {', '.join(cat.splits)}; give one split folder, "
                             f"e.g. {os.path.join(p, cat.splits[0])}")
        if not cat.shards:
            raise FileNotFoundError(f"--data {p!r}: no shards in this directory")
        out.extend(ref.uri for ref in cat.shards)
    return out


def open_shard(path: str) -> pa.Table:
    """Memory-map one Arrow IPC stream shard (zero-copy); an unreadable one is a
    ValueError naming the file."""
    from synth.catalog import ShardRef, read_table

    return read_table(ShardRef(os.path.basename(path), path), require=_SHARD_COLUMNS)


class ShardSet:
    """Lazily memory-mapped shards; safe to pickle into DataLoader workers."""

    def __init__(self, paths: Sequence[str], allow_incomplete: bool = False):
        self.paths = find_shards(paths, allow_incomplete)
        self._tables: dict[int, pa.Table] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"paths": self.paths, "_tables": {}}  # workers re-open their own maps

    def table(self, i: int) -> pa.Table:
        """The i-th shard's table, opened on first use in this process."""
        t = self._tables.get(i)
        if t is None:
            t = self._tables[i] = open_shard(self.paths[i])
        return t

    def num_rows(self, i: int) -> int:
        """Rows in shard i."""
        return self.table(i).num_rows

    def cell(self, i: int, row: int, column: str) -> Any:
        """One value of a shard as Python."""
        t = self.table(i)
        if column not in t.column_names:
            return None
        return t.column(column)[row].as_py()

    def row(self, i: int, row: int) -> dict[str, Any]:
        """A whole stored row (the dict of synth/rows.py)."""
        return self.table(i).slice(row, 1).to_pylist()[0]


@dataclass(frozen=True)
class ExampleRef:
    """Where one example lives: shard, row, record index, and its row's group id."""

    shard: int
    row: int
    record: int
    group: int


def decode_image(img: Any):
    """Decode a stored ``{bytes, path}`` image cell to RGB PIL (None when absent)."""
    if img is None or img.get("bytes") is None:
        return None
    from PIL import Image

    return Image.open(io.BytesIO(img["bytes"])).convert("RGB")


@dataclass
class DataConfig:
    """What the dataset needs besides the shards.

    modes: resolution modes (tiny/small/base/large/gundam/gundam_m). With one, every image is
        fitted to it; with several, the batch sampler draws each example's mode per epoch
        (uniformly over the list, so a repeated name weighs more) and one model learns them
        all, as DeepSeek-OCR's DeepEncoder does.
    max_len: longest sequence kept; longer targets are cut (and lose their EOS).
    tasks: keep only records of these tasks (empty keeps all).
    """

    modes: tuple[str, ...] = ("base",)
    max_len: int = 8192
    tasks: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        from train.configs import MODES

        self.modes = (self.modes,) if isinstance(self.modes, str) else tuple(self.modes)
        if not self.modes:
            raise ValueError(f"DataConfig.modes is empty: give one or more of {', '.join(MODES)}")
        bad = [m for m in self.modes if m not in MODES]
        if bad:
            raise ValueError(f"DataConfig.modes {bad}: valid modes are {', '.join(MODES)}")


class OCRDataset(Dataset):
    """Flattened (row, record) examples of memory-mapped shards, tokenised on access.

    ``lengths`` holds each example's sequence length: shape [n] for one mode, [n, m] (one
    column per entry of ``cfg.modes``) for several. Items are addressed by an example
    index (first mode) or by an (example, mode index) pair, as the batch sampler yields them.
    """

    def __init__(self, shards: ShardSet, tok: OCRTokenizer, enc_cfg: Any, cfg: DataConfig):
        self.shards, self.tok, self.enc_cfg, self.cfg = shards, tok, enc_cfg, cfg
        self.examples: list[ExampleRef] = []
        prompts: list[str] = []
        targets: list[str] = []
        n_img: list[list[int]] = []
        group = 0
        for s in range(len(shards.paths)):
            t = shards.table(s)
            recs = t.column("records").to_pylist()
            imgs = t.column("image").is_valid().to_pylist() if "image" in t.column_names else [False] * t.num_rows
            sizes = zip(t.column("width").to_pylist(), t.column("height").to_pylist())
            for r, (rlist, img_ok, (w, h)) in enumerate(zip(recs, imgs, sizes)):
                n = [self._image_tokens(m, w, h) if img_ok else 0 for m in cfg.modes]
                for k, rec in enumerate(rlist or []):
                    if cfg.tasks and rec["task"] not in cfg.tasks:
                        continue
                    self.examples.append(ExampleRef(s, r, k, group))
                    prompts.append(tok.instruction(rec["prompt"], img_ok))
                    targets.append(rec["target"])
                    n_img.append(n)
                group += 1
        self.num_groups = group
        p_len = np.array([len(x) for x in tok.encode_batch(prompts)] if prompts else [], dtype=np.int64)
        t_len = np.array([len(x) for x in tok.encode_batch(targets)] if targets else [], dtype=np.int64)
        img_len = np.array(n_img, dtype=np.int64).reshape(len(self.examples), len(cfg.modes))
        lengths = np.minimum(cfg.max_len, 2 + (p_len + t_len)[:, None] + img_len)
        self.lengths = lengths[:, 0] if len(cfg.modes) == 1 else lengths
        self.groups = np.array([e.group for e in self.examples], dtype=np.int64)

    def _image_tokens(self, mode: str, width: int, height: int) -> int:
        from train.model.vision_inputs import num_image_tokens, tiling

        return num_image_tokens(mode, self.enc_cfg, tiling(mode, width, height, self.enc_cfg))

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        from train.model.vision_inputs import fit_image, num_image_tokens

        i, m = (key, 0) if isinstance(key, (int, np.integer)) else key
        mode = self.cfg.modes[m]
        ref = self.examples[i]
        rec = self.shards.cell(ref.shard, ref.row, "records")[ref.record]
        img = decode_image(self.shards.cell(ref.shard, ref.row, "image"))
        vision, n_img = None, 0
        if img is not None:
            vision = fit_image(img, mode, self.enc_cfg)
            n_img = num_image_tokens(mode, self.enc_cfg, vision.grid)
        enc = self.tok.encode_example(rec["prompt"], rec["target"], n_img)
        ids, labels = enc.input_ids, enc.labels
        if len(ids) > self.cfg.max_len:
            if n_img + 2 > self.cfg.max_len:
                raise ValueError(f"max_len={self.cfg.max_len} is shorter than the {n_img} image tokens of mode {mode!r}")
            ids, labels = ids[: self.cfg.max_len], labels[: self.cfg.max_len]
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "vision": vision,
            "n_image_tokens": n_img,
            "index": i,
        }


@dataclass
class Collator:
    """Right-pads a list of examples into one batch dict."""

    pad_id: int

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        n = max(len(x["input_ids"]) for x in items)
        ids = torch.full((len(items), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(items), n), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(items), n), dtype=torch.long)
        for b, x in enumerate(items):
            k = len(x["input_ids"])
            ids[b, :k] = x["input_ids"]
            labels[b, :k] = x["labels"]
            mask[b, :k] = 1
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": labels,
            "vision": [x["vision"] for x in items],
            "n_images": sum(x["vision"] is not None for x in items),
            "n_tokens": int(mask.sum()),
            "n_target_tokens": int((labels != IGNORE_INDEX).sum()),
            "index": [x["index"] for x in items],
        }


class BucketBatchSampler(Sampler[list[Any]]):
    """Length-bucketed batches of one rank's disjoint share of the rows.

    Per epoch: rows are permuted by (seed, epoch) and dealt round-robin to ranks; the
    rank's examples are shuffled, cut into pools of ``pool_batches`` batches, sorted by
    length inside each pool, batched, and the batch order shuffled. Every rank yields the
    same number of batches (the smallest share decides) so DDP steps stay in lockstep.
    ``start`` skips the first batches of the epoch (resumption) without loading them.

    With ``max_tokens`` a batch also stops growing before its padded size (examples times
    the longest) would pass that many tokens: batches of short examples stay at
    ``batch_size`` while those of long ones shrink, so the longest bucket no longer sets
    the memory a fixed batch size needs. An example longer than the budget is a batch alone.

    ``lengths`` of shape [n] gives example indices. Of shape [n, m] (a length per
    resolution mode) the sampler also draws each example's mode for the epoch, uniformly
    and independently of rank and world, and yields (example, mode index) pairs; sorting
    by length then mostly puts one mode's images in a batch.
    """

    def __init__(self, lengths: np.ndarray, groups: np.ndarray, batch_size: int, seed: int = 0,
                 rank: int = 0, world: int = 1, pool_batches: int = 50, shuffle: bool = True,
                 max_tokens: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: must be >= 1")
        if max_tokens < 0:
            raise ValueError(f"max_tokens={max_tokens}: must be >= 0 (0: no token budget)")
        if not 0 <= rank < world:
            raise ValueError(f"rank={rank} must be in [0, world={world})")
        lengths = np.asarray(lengths)
        if lengths.ndim not in (1, 2) or len(lengths) != len(groups):
            raise ValueError(f"lengths of shape {lengths.shape}: need [n] or [n, modes] with n = {len(groups)} groups entries")
        self.lengths, self.groups = lengths, np.asarray(groups)
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world
        self.pool_batches, self.shuffle, self.max_tokens = pool_batches, shuffle, max_tokens
        self.epoch, self.start = 0, 0
        n_groups = int(self.groups.max()) + 1 if len(self.groups) else 0
        self._members = [[] for _ in range(n_groups)]
        for i, g in enumerate(self.groups.tolist()):
            self._members[g].append(i)
        self._counts: dict[int, int] = {}  # epoch -> batches per rank (token budget: costs a pass per rank)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch and the first batch to yield in it."""
        self.epoch, self.start = epoch, start

    def epoch_modes(self) -> np.ndarray | None:
        """Each example's mode index this epoch (None with one mode): the same on every rank."""
        if self.lengths.ndim == 1:
            return None
        return np.random.default_rng([self.seed, self.epoch, 2]).integers(self.lengths.shape[1], size=len(self.lengths))

    def _rank_groups(self) -> list[np.ndarray]:
        n = len(self._members)
        order = np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle else np.arange(n)
        return [order[r :: self.world] for r in range(self.world)]

    def _batches_per_rank(self) -> int:
        if self.epoch not in self._counts:
            if self.max_tokens:
                lengths = self._epoch_lengths(self.epoch_modes())
                counts = [len(self._rank_batches(r, lengths)) for r in range(self.world)]
                self._counts[self.epoch] = min(counts) if counts else 0
            else:
                counts = [sum(len(self._members[g]) for g in gs) for gs in self._rank_groups()]
                self._counts[self.epoch] = min(counts) // self.batch_size if counts else 0
        return self._counts[self.epoch]

    def __len__(self) -> int:
        return max(0, self._batches_per_rank() - self.start)

    def _rank_batches(self, rank: int, lengths: np.ndarray) -> list[list[int]]:
        """Every batch (example indices) that ``rank``'s share of this epoch makes, in
        order; with a fixed batch size only as many examples as the smallest share has."""
        mine = self._rank_groups()[rank]
        idx = np.array([i for g in mine for i in self._members[g]], dtype=np.int64)
        rng = np.random.default_rng([self.seed, self.epoch, rank, 1])
        if self.shuffle:
            idx = idx[rng.permutation(len(idx))]
        if not self.max_tokens:
            idx = idx[: self._batches_per_rank() * self.batch_size]
        pool = self.pool_batches * self.batch_size
        batches: list[list[int]] = []
        for p in range(0, len(idx), pool):
            chunk = idx[p : p + pool]
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
            if not self.max_tokens:
                batches.extend(chunk[b : b + self.batch_size].tolist() for b in range(0, len(chunk), self.batch_size))
                continue
            batch: list[int] = []
            for i, n in zip(chunk.tolist(), lengths[chunk].tolist()):  # ascending: n is the batch's longest
                if batch and (len(batch) == self.batch_size or (len(batch) + 1) * n > self.max_tokens):
                    batches.append(batch)
                    batch = []
                batch.append(i)
            if batch:
                batches.append(batch)
        if self.shuffle:
            batches = [batches[j] for j in rng.permutation(len(batches))]
        return batches

    def _epoch_lengths(self, modes: np.ndarray | None) -> np.ndarray:
        """Each example's length in its mode this epoch."""
        return self.lengths if modes is None else self.lengths[np.arange(len(self.lengths)), modes]

    def epoch_batches(self) -> list[list[Any]]:
        """All of this rank's batches of the current epoch, in order."""
        modes = self.epoch_modes()
        batches = self._rank_batches(self.rank, self._epoch_lengths(modes))[: self._batches_per_rank()]
        return batches if modes is None else [[(i, int(modes[i])) for i in b] for b in batches]

    def __iter__(self) -> Iterator[list[Any]]:
        yield from self.epoch_batches()[self.start :]


class EpochStream:
    """A :class:`BucketBatchSampler`'s batches over successive epochs, from batch ``start``
    of ``epoch`` on, without end.

    One DataLoader over this keeps its workers from epoch to epoch (a loader per epoch
    starts them again, and with few batches an epoch that stalls every step it starts).
    The loader's workers run ahead of training, so ``positions`` holds each batch's
    (epoch, index in epoch) in the order yielded; an in-order loader's consumer pops one
    per batch to know where it is.
    """

    def __init__(self, sampler: BucketBatchSampler, epoch: int, start: int = 0):
        self.sampler, self.epoch, self.start, self.seed = sampler, epoch, start, sampler.seed
        self.positions: collections.deque[tuple[int, int]] = collections.deque()

    def __iter__(self) -> Iterator[list[Any]]:
        epoch, start = self.epoch, self.start
        while True:
            self.sampler.set_epoch(epoch, start)
            k = start - 1
            for k, batch in enumerate(self.sampler, start):
                self.positions.append((epoch, k))
                yield batch
            if k < 0:  # a whole epoch without a batch: endless and empty
                raise ValueError(f"epoch {epoch} has no batch of {self.sampler.batch_size} examples on rank "
                                 f"{self.sampler.rank} of {self.sampler.world}: need more rows or a smaller batch_size")
            epoch, start = epoch + 1, 0


def make_loader(dataset: OCRDataset, sampler: BucketBatchSampler | EpochStream, workers: int,
                pin_memory: bool = False):
    """A DataLoader over dataset driven by the batch sampler (one epoch) or stream (all).

    Its own generator (seeded by seed and epoch) keeps worker seeding from drawing on the
    global torch RNG, so a resumed run's RNG stream matches an uninterrupted one.
    """
    from torch.utils.data import DataLoader

    gen = torch.Generator().manual_seed(sampler.seed * 1_000_003 + sampler.epoch)
    return DataLoader(
        dataset,
        generator=gen,
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=Collator(dataset.tok.pad_id),
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
    )


def iter_texts(shards: ShardSet, limit: int | None = None) -> Iterator[str]:
    """Prompts and targets of the shards' records (the tokenizer's training text)."""
    seen = 0
    for s in range(len(shards.paths)):
        for rlist in shards.table(s).column("records").to_pylist():
            for rec in rlist or []:
                yield rec["prompt"]
                yield rec["target"]
                seen += 1
                if limit is not None and seen >= limit:
                    return
