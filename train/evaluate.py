"""Evaluate a trained run on held-out shards (DESIGN.md §3).

    python -m train.evaluate --run RUN_DIR --data DIR --mode base --out eval.json
    python -m train.evaluate --init-official ckpt/DeepSeek-OCR --data DIR --mode base --out before.json

``--init-official`` evaluates the released model of a local snapshot as it is (the
official tokenizer and prompt template, the records' own prompts); a run made with
``python -m train --init-official`` is evaluated with ``--run`` and uses them too.

Text outputs: normalised edit distance and word-set precision/recall/F1, overall, per
task, per bucket of reference text tokens and per compression ratio (text tokens /
vision tokens of the mode evaluated, the paper's Fox table). Only references that hold
text are scored as text: a locate answer (``ocr1.locate``, ``vision.grounding``) is a box,
so it is scored by grounding alone rather than as an empty text matched by an empty
output. Grounded outputs: box IoU of matched regions and label accuracy, overall and per
task; an output without any ``<|det|>`` is no answer and scores 0 (train.metrics states
the empty-set rules). Charts, molecules and geometry use their family scorers when those
modules exist; a missing scorer is reported under ``families`` instead of failing.
Writes the JSON and ``<out>.png``, precision against compression ratio.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from annotate.prompts import TASK_GROUNDED, TASK_LINES, TASK_VISION_OCR
from synth.cli import Parser, UsageError, show_defaults
from synth.cli import run as run_cli
from train.configs import TILED_MODES
from train.data import ShardSet, decode_image
from train.metrics import Item, grounding_scores, normalized_edit_distance, parse_grounded, plain_text, word_prf

# family -> (module, scorer name); scorers take (prediction, reference) target strings.
FAMILY_SCORERS = {
    "chart": ("annotate.charts", "score_tables"),
    "molecule": ("annotate.molecules", "score_smiles"),
    "geometry": ("annotate.geometry", "geometry_scores"),
}


def vision_tokens(mode: str, enc: Any, grid: tuple[int, int] = (0, 0)) -> int:
    """Vision tokens of an image before newline/separator tokens (64 for Tiny, 100 for Small ...)."""
    q = enc.token_side(enc.image_size(mode))
    n = q * q
    if mode in TILED_MODES:
        qt = enc.token_side(enc.tile_side(mode))
        n += qt * qt * grid[0] * grid[1]
    return n


def valid_vision_tokens(mode: str, enc: Any, width: int, height: int, grid: tuple[int, int] = (0, 0)) -> int:
    """Vision tokens that show the page rather than letterbox padding (the paper's N_valid).

    Base and Large pad the page to a square, so only ``ceil(N * min(w, h) / max(w, h))`` of
    their N tokens carry content (DeepSeek-OCR: Base 256 tokens, 182 valid on its pages);
    Tiny, Small and the tiles of Gundam and Gundam-M stretch the page and every token
    counts. Their padded global views count like Base.
    """
    n = vision_tokens(mode, enc, grid)
    if mode not in ("base", "large", *TILED_MODES):
        return n
    q = enc.token_side(enc.image_size(mode))
    padded = q * q
    return n - padded + math.ceil(padded * min(width, height) / max(width, height))


def load_scorer(family: str) -> tuple[Callable | None, str]:
    """The family's scorer, or None with the reason it is unavailable."""
    mod_name, fn_name = FAMILY_SCORERS[family]
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
    except (ImportError, AttributeError) as exc:
        return None, f"{mod_name}.{fn_name} unavailable ({type(exc).__name__}: {exc})"
    return fn, ""


def _numeric(d: Any, prefix: str = "") -> dict[str, float]:
    """Numbers of a scorer's result (a number, a possibly nested dict, or an object), flattened."""
    if isinstance(d, (int, float, bool)):
        return {prefix or "score": float(d)}
    if not isinstance(d, dict):
        d = getattr(d, "__dict__", {})
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, (dict, int, float, bool)):
            out.update(_numeric(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def parse_items(text: str, task: str) -> list[Item]:
    """Grounded items of an output: annotate.ocr1's parser for grounded markdown when present."""
    if task == TASK_GROUNDED:
        try:
            from annotate.ocr1 import parse_grounded as ocr1_parse
        except ImportError:
            pass
        else:
            return [Item(label, tuple(int(v) for v in box)) for label, box, _ in ocr1_parse(text)]  # type: ignore[misc]
    return parse_grounded(text)


def _mean_dicts(ds: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for d in ds for k in d})
    return {k: float(np.mean([d[k] for d in ds if k in d])) for k in keys}


# Tasks whose <|ref|> spans are the text read (line and word OCR), not layout labels.
REFS_ARE_TEXT = (TASK_LINES, TASK_VISION_OCR)


def reference_text(ref: str, task: str) -> str:
    """The text a reference asks to be read (boxes and layout labels removed); "" for an
    answer that is only a box."""
    return plain_text(ref, task in REFS_ARE_TEXT)


def text_scores(pred: str, ref: str, task: str) -> dict[str, float]:
    """Edit distance and word P/R/F1 of the outputs' plain text (boxes removed)."""
    keep = task in REFS_ARE_TEXT
    p, r = plain_text(pred, keep), plain_text(ref, keep)
    prf = word_prf(p, r)
    return {"edit_distance": normalized_edit_distance(p, r), "precision": prf.precision,
            "recall": prf.recall, "f1": prf.f1}


def _summarise(items: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("edit_distance", "precision", "recall", "f1")
    out: dict[str, Any] = {"n": len(items)}
    for k in keys:
        out[k] = float(np.mean([it["text"][k] for it in items])) if items else math.nan
    out["text_tokens"] = float(np.mean([it["text_tokens"] for it in items])) if items else math.nan
    # The mode's ratio is over examples with an image: text-only rows have no vision tokens.
    imaged = [it for it in items if it["vision_tokens"]]
    out["compression"] = float(np.mean([it["compression"] for it in imaged])) if imaged else math.nan
    out["vision_tokens"] = float(np.mean([it["vision_tokens"] for it in imaged])) if imaged else math.nan
    out["valid_vision_tokens"] = float(np.mean([it["valid_vision_tokens"] for it in imaged])) if imaged else math.nan
    return out


def _buckets(items: list[dict[str, Any]], key: str, width: float) -> list[dict[str, Any]]:
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for it in items:
        groups[int(it[key] // width)].append(it)
    return [{"range": [b * width, (b + 1) * width], **_summarise(groups[b])} for b in sorted(groups)]


def collect(shards: ShardSet, tasks: list[str], limit: int) -> list[dict[str, Any]]:
    """Examples to evaluate: one per (row, record), in shard order, up to limit."""
    out: list[dict[str, Any]] = []
    for s in range(len(shards.paths)):
        t = shards.table(s)
        for r in range(t.num_rows):
            recs = shards.cell(s, r, "records") or []
            for k, rec in enumerate(recs):
                if tasks and rec["task"] not in tasks:
                    continue
                out.append({"shard": s, "row": r, "record": k, "task": rec["task"], "prompt": rec["prompt"],
                            "target": rec["target"], "family": shards.cell(s, r, "family"),
                            "id": shards.cell(s, r, "id")})
                if limit and len(out) >= limit:
                    return out
    return out


@dataclass
class HeldOut:
    """What :func:`evaluate` scores: the examples, their references' token ids and their
    decoded images (None for text-only). They do not depend on the mode, so a run
    evaluated in several modes reads and decodes them once."""

    examples: list[dict[str, Any]]
    target_ids: list[Any]
    images: list[Any]
    text_tokens: tuple[int, int] | None = None  # the reference-length filter they passed


def held_out(run: Any, shards: ShardSet, tasks: list[str] | None = None, limit: int = 0,
             text_tokens: tuple[int, int] | None = None) -> HeldOut:
    """The held-out examples of ``shards`` (only ``tasks`` when given), their references
    tokenised with the run's tokenizer and their images decoded. ``text_tokens`` = (lo, hi)
    keeps only references of lo..hi tokens (the Fox benchmark's pages hold 600-1300);
    ``limit`` then counts the examples kept."""
    examples = collect(shards, list(tasks or []), 0 if text_tokens else limit)
    target_ids = run.tok.encode_batch([e["target"] for e in examples]) if examples else []
    if text_tokens:
        lo, hi = text_tokens
        kept = [(e, ids) for e, ids in zip(examples, target_ids) if lo <= len(ids) <= hi]
        kept = kept[:limit] if limit else kept
        examples, target_ids = [e for e, _ in kept], [ids for _, ids in kept]
    images = [decode_image(shards.cell(e["shard"], e["row"], "image")) for e in examples]
    return HeldOut(examples, target_ids, images, text_tokens)


def evaluate(run: Any, shards: ShardSet, mode: str, tasks: list[str] | None = None, limit: int = 0,
             max_new_tokens: int = 1024, batch_size: int = 8, token_bucket: int = 100,
             ratio_bucket: float = 2.0, keep_examples: int = 20,
             text_tokens: tuple[int, int] | None = None, data: HeldOut | None = None) -> dict[str, Any]:
    """Generate on held-out examples and score them; returns the report dict.

    The examples are ``data`` when given (see :func:`held_out`, which ``tasks``, ``limit``
    and ``text_tokens`` are passed to otherwise).
    """
    from train.generate import generate
    from train.model.vision_inputs import tiling

    data = data if data is not None else held_out(run, shards, tasks, limit, text_tokens)
    # Each report holds its own copies: predictions and scores are written into them.
    examples = [dict(e) for e in data.examples]
    target_lens, images = data.target_ids, data.images
    preds = generate(run, images, [e["prompt"] for e in examples], mode, max_new_tokens,
                     batch_size=batch_size) if examples else []
    scorers: dict[str, tuple[Callable | None, str]] = {}
    per_family: dict[str, list[dict[str, float]]] = defaultdict(list)
    text_items: list[dict[str, Any]] = []
    ground: list[dict[str, Any]] = []
    for e, img, pred, ids in zip(examples, images, preds, target_lens):
        e["prediction"] = pred
        n_vis = n_valid = 0
        if img is not None:
            grid = tiling(mode, img.width, img.height, run.enc_cfg)
            n_vis = vision_tokens(mode, run.enc_cfg, grid)
            n_valid = valid_vision_tokens(mode, run.enc_cfg, img.width, img.height, grid)
        e["text_tokens"] = len(ids)
        e["vision_tokens"] = n_vis
        e["valid_vision_tokens"] = n_valid
        e["compression"] = len(ids) / n_vis if n_vis else 0.0
        fam = e["family"]
        if fam in FAMILY_SCORERS:
            if fam not in scorers:
                scorers[fam] = load_scorer(fam)
            fn, _ = scorers[fam]
            if fn is not None:
                per_family[fam].append(_numeric(fn(pred, e["target"])))
            continue
        if reference_text(e["target"], e["task"]):
            e["text"] = text_scores(pred, e["target"], e["task"])
            text_items.append(e)
        if "<|det|>" in e["target"]:
            e["grounding"] = grounding_scores(parse_items(pred, e["task"]), parse_items(e["target"], e["task"]),
                                              answered="<|det|>" in pred)
            ground.append(e)
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for it in text_items:
        by_task[it["task"]].append(it)
    ground_by_task: dict[str, list[dict[str, float]]] = defaultdict(list)
    for it in ground:
        ground_by_task[it["task"]].append(it["grounding"])
    imaged = [it for it in text_items if it["vision_tokens"]]
    families: dict[str, Any] = {}
    for fam, (fn, why) in sorted(scorers.items()):
        families[fam] = {"skipped": why} if fn is None else {"n": len(per_family[fam]), **_mean_dicts(per_family[fam])}
    return {
        "mode": mode,
        "text_tokens_filter": list(data.text_tokens) if data.text_tokens else None,
        "n_examples": len(examples),
        "text": _summarise(text_items),
        "by_task": {k: _summarise(v) for k, v in sorted(by_task.items())},
        "by_text_tokens": _buckets(text_items, "text_tokens", token_bucket),
        "by_compression": _buckets(imaged, "compression", ratio_bucket),
        "grounding": {"n": len(ground), **_mean_dicts([g["grounding"] for g in ground])} if ground else {"n": 0},
        "grounding_by_task": {k: {"n": len(v), **_mean_dicts(v)} for k, v in sorted(ground_by_task.items())},
        "families": families,
        "examples": [{k: e.get(k) for k in ("id", "task", "prompt", "target", "prediction", "text_tokens",
                                             "vision_tokens", "valid_vision_tokens", "compression", "text",
                                             "grounding")}
                     for e in examples[:keep_examples]],
        "_points": [(it["compression"], it["text"]["precision"]) for it in imaged],
    }


def summary_line(report: dict[str, Any]) -> str:
    """One console line of a report: its text scores over the references that hold text,
    the compression ratio and vision tokens of the mode evaluated, its grounding scores."""
    t, g = report["text"], report["grounding"]
    line = (f"{report['mode']}: {report['n_examples']} examples; text ({t['n']}): edit {t['edit_distance']:.3f} "
            f"P {t['precision']:.3f} R {t['recall']:.3f} F1 {t['f1']:.3f}")
    if not math.isnan(t["compression"]):
        line += f", {t['compression']:.1f}x compression at {t['vision_tokens']:.0f} vision tokens"
    if g["n"]:
        line += f"; grounding ({g['n']}): box F1 {g['box_f1']:.3f} mean IoU {g['mean_iou']:.3f}"
    return line


def plot_precision(reports: list[dict[str, Any]], path: str | Path) -> None:
    """Per-example precision against compression ratio, with bucket means: one colour per mode
    (the paper's Fox figure when the modes are Tiny and Small)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for k, report in enumerate(reports):
        mode, color = report.get("mode"), f"C{k}"
        pts = report.get("_points", [])
        if pts:
            xs, ys = zip(*pts)
            ax.scatter(xs, ys, s=8, alpha=0.3, color=color)
        b = report.get("by_compression", [])
        if b:
            ax.plot([x["compression"] for x in b], [x["precision"] for x in b], "o-", color=color,
                    label=f"{mode}: bucket mean")
    ax.set_xlabel("compression ratio (text tokens / vision tokens)")
    ax.set_ylabel("word precision")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"precision vs compression ({', '.join(str(r.get('mode')) for r in reports)})")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(str(path), format="png", metadata={"Software": None})
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    """The CLI's options, each with its help and default."""
    p = Parser(prog="python -m train.evaluate", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="training run directory")
    src.add_argument("--init-official", metavar="DIR",
                     help="a local snapshot of the released DeepSeek-OCR, evaluated before any fine-tuning")
    p.add_argument("--checkpoint", default=None, help="checkpoint directory (default: the run's newest valid one)")
    p.add_argument("--data", nargs="+", required=True, help="held-out shard directories or files")
    p.add_argument("--mode", nargs="+", default=None,
                   help="resolution mode(s); several give one report each (default: the modes the run trained; "
                        "gundam, the official default, with --init-official)")
    p.add_argument("--out", default="eval.json", help="report JSON; the precision plot goes beside it as .png")
    p.add_argument("--tasks", nargs="*", default=[], help="evaluate only these record tasks (none: all)")
    p.add_argument("--limit", type=int, default=0, help="evaluate at most this many examples (0: all)")
    p.add_argument("--text-tokens", type=int, nargs=2, metavar=("LO", "HI"), default=None,
                   help="keep references of LO..HI tokens (Fox: 600 1300)")
    p.add_argument("--max-new-tokens", type=int, default=1024, help="stop each output after this many tokens")
    p.add_argument("--batch-size", type=int, default=8, help="examples decoded together")
    p.add_argument("--token-bucket", type=int, default=100, help="width of text-token buckets")
    p.add_argument("--ratio-bucket", type=float, default=2.0, help="width of compression-ratio buckets")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: cuda when available, else cpu")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="read the finished shards of a run that is not complete (refused by default)")
    return show_defaults(p)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = build_parser()
    a = p.parse_args(argv)
    from train.configs import MODES
    from train.generate import load_run

    bad = [m for m in a.mode or [] if m not in MODES]
    if bad:
        p.error(f"--mode {' '.join(bad)}: valid modes are {', '.join(MODES)}")
    if a.text_tokens and not 0 <= a.text_tokens[0] <= a.text_tokens[1]:
        p.error(f"--text-tokens {a.text_tokens[0]} {a.text_tokens[1]}: need 0 <= LO <= HI")
    checkpoint = [a.checkpoint] if a.checkpoint else []
    for flag, paths in (("--run", [a.run] if a.run else []), ("--init-official", [a.init_official] if a.init_official else []),
                        ("--data", a.data), ("--checkpoint", checkpoint)):
        for path in paths:
            if not Path(path).exists():
                raise UsageError(f"{flag} {path}: no such file or directory")
    from train.generate import load_official_run
    from train.official.config import OfficialFormatError

    try:
        run = load_official_run(a.init_official, a.device) if a.init_official else load_run(a.run, a.checkpoint, a.device)
    except OfficialFormatError as exc:  # a snapshot that does not fit: refused before any work
        raise UsageError(str(exc)) from None
    modes = list(dict.fromkeys(a.mode)) if a.mode else run.trained_modes
    shards = ShardSet(a.data, a.allow_incomplete)
    data = held_out(run, shards, a.tasks, a.limit, tuple(a.text_tokens) if a.text_tokens else None)
    reports = [evaluate(run, shards, m, max_new_tokens=a.max_new_tokens, batch_size=a.batch_size,
                        token_bucket=a.token_bucket, ratio_bucket=a.ratio_bucket, data=data) for m in modes]
    out = Path(a.out)
    plot_precision(reports, out.with_suffix(".png"))
    for r in reports:
        r.pop("_points", None)
        print(summary_line(r))
    # One mode: the report itself; several: one report per mode under "modes".
    source = str(a.run or a.init_official)
    doc = {**reports[0], "run": source} if len(reports) == 1 else \
        {"run": source, "modes": {r["mode"]: r for r in reports}}
    out.write_text(json.dumps(doc, indent=1, ensure_ascii=False, default=float))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, prog="python -m train.evaluate"))
