"""Molecule annotator: the canonical SMILES target, its checks, overlay and metrics.

Record: prompt ``prompts.PARSE_FIGURE``, task ``prompts.TASK_MOLECULE``, target the
canonical SMILES (``Chem.MolToSmiles``) of the drawn heavy-atom molecule, as stored in
``truth["smiles"]`` by ``synth.molecules``.
"""

from __future__ import annotations

import functools
import io
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from rdkit import Chem, DataStructs, RDLogger
from rdkit.Chem import rdFingerprintGenerator
from rdkit.Chem.Draw import rdMolDraw2D

from annotate import prompts
from synth.rows import row_image, row_image_problems, row_truth
from synth.sample import Record, Sample

# Invalid predictions are expected input of the metrics; RDKit's parse errors are noise.
RDLogger.DisableLog("rdApp.*")

MORGAN_RADIUS = 2
MORGAN_BITS = 2048


def records(sample: Sample) -> list[Record]:
    """The single SMILES record of a molecule sample."""
    smiles = sample.truth.get("smiles", "")
    if not smiles:
        raise ValueError("molecule sample has no truth['smiles']; it must hold the canonical SMILES")
    return [Record(task=prompts.TASK_MOLECULE, prompt=prompts.PARSE_FIGURE, target=smiles)]


def canonical(smiles: str) -> str | None:
    """RDKit's canonical SMILES of ``smiles``, or None when it does not parse."""
    if not smiles:
        return None
    mol = Chem.MolFromSmiles(smiles)
    return None if mol is None else Chem.MolToSmiles(mol)


def check(row: dict[str, Any]) -> list[str]:
    """Problems in a stored molecule row (empty when sound).

    Every SMILES record's target must parse and be canonical-equal to truth's SMILES,
    which itself must be canonical; the image must exist with the stored size.
    """
    problems: list[str] = []
    truth = row_truth(row)
    ref = truth.get("smiles", "")
    ref_canon = canonical(ref)
    if ref_canon is None:
        problems.append(f"truth smiles {ref!r} does not parse")
    elif ref_canon != ref:
        problems.append(f"truth smiles {ref!r} is not canonical (RDKit gives {ref_canon!r})")
    elif "heavy_atoms" in truth and Chem.MolFromSmiles(ref).GetNumHeavyAtoms() != truth["heavy_atoms"]:
        problems.append(f"truth heavy_atoms={truth['heavy_atoms']} but {ref!r} has a different count")
    recs = row.get("records") or []
    mol_recs = [r for r in recs if r.get("task") == prompts.TASK_MOLECULE]
    if not mol_recs:
        problems.append(f"no record with task {prompts.TASK_MOLECULE!r}")
    for r in mol_recs:
        if r.get("prompt") != prompts.PARSE_FIGURE:
            problems.append(f"prompt {r.get('prompt')!r} should be {prompts.PARSE_FIGURE!r}")
        target = r.get("target", "")
        got = canonical(target)
        if got is None:
            problems.append(f"target {target!r} does not parse as SMILES")
        elif ref_canon is not None and got != ref_canon:
            problems.append(f"target {target!r} is canonical {got!r}, truth is {ref_canon!r}")
        elif target != got:
            problems.append(f"target {target!r} is not canonical (RDKit gives {got!r})")
    problems.extend(row_image_problems(row))
    return problems


@functools.lru_cache(maxsize=1)
def _morgan():
    return rdFingerprintGenerator.GetMorganGenerator(radius=MORGAN_RADIUS, fpSize=MORGAN_BITS)


def score_smiles(pred: str, truth: str) -> dict[str, Any]:
    """Exact canonical match and Morgan (r=2, 2048 bits) Tanimoto; an invalid pred scores 0."""
    pm = Chem.MolFromSmiles(pred) if pred else None
    tm = Chem.MolFromSmiles(truth) if truth else None
    if tm is None:
        raise ValueError(f"truth SMILES {truth!r} does not parse; scoring needs a valid reference")
    if pm is None:
        return {"exact": False, "tanimoto": 0.0}
    gen = _morgan()
    sim = DataStructs.TanimotoSimilarity(gen.GetFingerprint(pm), gen.GetFingerprint(tm))
    return {"exact": Chem.MolToSmiles(pm) == Chem.MolToSmiles(tm), "tanimoto": float(sim)}


def _redraw(smiles: str, width: int, height: int) -> Image.Image:
    """The target SMILES drawn by RDKit with default options, or a red 'invalid' panel."""
    mol = Chem.MolFromSmiles(smiles) if smiles else None
    if mol is None:
        panel = Image.new("RGB", (width, height), (255, 235, 235))
        ImageDraw.Draw(panel).text((8, 8), "target does not parse", fill=(200, 0, 0), font=_font(14))
        return panel
    drawer = rdMolDraw2D.MolDraw2DCairo(width, height)
    drawer.drawOptions().includeMetadata = False
    drawer.DrawMolecule(rdMolDraw2D.PrepareMolForDrawing(mol))
    drawer.FinishDrawing()
    return Image.open(io.BytesIO(drawer.GetDrawingText())).convert("RGB")


@functools.lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont:
    import os

    import matplotlib

    path = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf", "DejaVuSans.ttf")
    return ImageFont.truetype(path, size)


def _wrap(text: str, width_chars: int) -> list[str]:
    return [text[i:i + width_chars] for i in range(0, len(text), width_chars)] or [""]


def overlay(row: dict[str, Any]) -> Image.Image:
    """The stored image beside the target's SMILES re-drawn, the SMILES written below."""
    img = row_image(row)
    if img is None:
        img = Image.new("RGB", (256, 256), "white")
    w, h = img.size
    target = row.get("target", "")
    redrawn = _redraw(target, w, h)
    font = _font(13)
    lines = _wrap(target, max(10, (2 * w) // 8))
    problems = check(row)
    text_h = 18 * (len(lines) + 1) + 8
    canvas = Image.new("RGB", (2 * w + 6, h + text_h), (200, 200, 200))
    canvas.paste(img, (0, 0))
    canvas.paste(redrawn, (w + 6, 0))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((4, h + 4 + 18 * i), line, fill="black", font=font)
    verdict = "check: ok" if not problems else "check: " + problems[0]
    draw.text((4, h + 4 + 18 * len(lines)), verdict[:200], fill=(0, 120, 0) if not problems else (200, 0, 0), font=font)
    return canvas
