"""Molecule family: SMILES targets are the drawn molecules', deterministic, checked."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from rdkit import Chem

from annotate import molecules as ann
from annotate import prompts
from synth import molecules as gen
from synth.molecules.seeds import SEEDS
from synth.rows import row_truth, sample_to_row
from tests.conftest import family_row

N_SEEDS = 30


def _row(seed: int, cfg: gen.Config | None = None) -> dict:
    return family_row("molecule", seed, cfg)


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return [_row(s) for s in range(N_SEEDS)]


def test_seed_list_is_valid_and_distinct():
    names = [n for n, _ in SEEDS]
    assert len(names) == len(set(names)) and 40 <= len(SEEDS) <= 100
    canon = set()
    for name, smi in SEEDS:
        mol = Chem.MolFromSmiles(smi)
        assert mol is not None, name
        smi = Chem.MolToSmiles(mol)
        assert Chem.MolToSmiles(Chem.MolFromSmiles(smi)) == smi, name  # the generator's fallback relies on it
        canon.add(smi)
    assert len(canon) == len(SEEDS)


def test_same_seed_same_bytes_and_target():
    a, b = _row(7), _row(7)
    assert a["image"]["bytes"] == b["image"]["bytes"]
    assert a["target"] == b["target"] and a["truth"] == b["truth"]
    assert _row(8)["image"]["bytes"] != a["image"]["bytes"]


def test_targets_reparse_to_the_drawn_molecule(rows):
    for row in rows:
        truth = row_truth(row)
        mol = Chem.MolFromSmiles(row["target"])
        assert mol is not None, row["target"]
        assert Chem.MolToSmiles(mol) == row["target"] == truth["smiles"]
        assert mol.GetNumHeavyAtoms() == truth["heavy_atoms"]
        # Every heavy atom of the target was drawn inside the image.
        assert len(truth["atoms"]) == truth["heavy_atoms"]
        assert [a[0] for a in truth["atoms"]] == [a.GetSymbol() for a in mol.GetAtoms()]
        assert all(0 <= a[1] <= 999 and 0 <= a[2] <= 999 for a in truth["atoms"])
        assert ann.check(row) == [], row["target"]


def test_records_and_image(rows):
    for row in rows:
        assert row["task"] == prompts.TASK_MOLECULE and row["prompt"] == prompts.PARSE_FIGURE
        data = row["image"]["bytes"]
        assert b"tEXt" not in data and b"tIME" not in data
        img = Image.open(io.BytesIO(data))
        assert img.size == (row["width"], row["height"])
        assert 224 <= row["width"] <= 512 and 224 <= row["height"] <= 512
        # The drawing is dark lines on a light background, not blank.
        gray = np.asarray(img.convert("L"))
        assert (gray < 128).mean() > 0.002 and np.median(gray) > 200


def test_built_molecules_are_diverse_and_within_limits(rows):
    cfg = gen.Config()
    truths = [row_truth(r) for r in rows]
    built = [t for t in truths if t["source"] == "brics"]
    assert len(built) >= N_SEEDS // 2
    assert len({t["smiles"] for t in truths}) >= N_SEEDS - 3
    for t in built:
        mol = Chem.MolFromSmiles(t["smiles"])
        assert cfg.min_heavy_atoms <= mol.GetNumHeavyAtoms() <= cfg.max_heavy_atoms
        assert mol.GetRingInfo().NumRings() <= cfg.max_rings
    seed_canon = {Chem.MolToSmiles(Chem.MolFromSmiles(s)) for _, s in SEEDS}
    # Recombination yields molecules that are not simply the seeds.
    assert sum(t["smiles"] not in seed_canon for t in built) >= len(built) // 2


def test_stereo_and_charges_are_sometimes_present():
    cfg = gen.Config(charge_prob=1.0, seed_prob=0.0, stereo_remove_prob=0.0, stereo_assign_prob=1.0)
    smiles = [_row(s, cfg)["target"] for s in range(20)]
    assert any("+" in s or "-]" in s for s in smiles)
    assert any("@" in s for s in smiles)
    plain = gen.Config(stereo_remove_prob=1.0, charge_prob=0.0)
    assert not any("@" in _row(s, plain)["target"] for s in range(10))


@pytest.mark.parametrize(
    "bad",
    [
        "C1CC",  # does not parse
        "CCO",  # a different molecule
    ],
)
def test_check_catches_wrong_targets(rows, bad):
    row = dict(rows[0])
    row["target"] = bad
    row["records"] = [dict(row["records"][0], target=bad)]
    assert ann.check(row)


def test_check_catches_non_canonical_and_mismatched_truth(rows):
    row = dict(rows[1])
    mol = Chem.MolFromSmiles(row["target"])
    variant = Chem.MolToSmiles(mol, canonical=False, doRandom=True, rootedAtAtom=mol.GetNumAtoms() - 1)
    if variant != row["target"]:
        row["records"] = [dict(row["records"][0], target=variant)]
        assert any("not canonical" in p for p in ann.check(row))
    row = dict(rows[2])
    row["truth"] = row["truth"].replace(row_truth(row)["smiles"], "c1ccccc1")
    assert ann.check(row)


def test_score_smiles():
    assert ann.score_smiles("OC(=O)c1ccccc1OC(C)=O", "CC(=O)Oc1ccccc1C(=O)O") == {"exact": True, "tanimoto": 1.0}
    assert ann.score_smiles("not a smiles", "CCO") == {"exact": False, "tanimoto": 0.0}
    assert ann.score_smiles("", "CCO") == {"exact": False, "tanimoto": 0.0}
    near = ann.score_smiles("CC(=O)Oc1ccccc1C(=O)OC", "CC(=O)Oc1ccccc1C(=O)O")
    assert near["exact"] is False and 0.3 < near["tanimoto"] < 1.0
    with pytest.raises(ValueError, match="truth SMILES"):
        ann.score_smiles("CCO", "C1CC")


def test_overlay_shows_both_drawings(rows):
    row = rows[3]
    pic = ann.overlay(row)
    assert pic.width == 2 * row["width"] + 6 and pic.height > row["height"]
    right = np.asarray(pic.crop((row["width"] + 6, 0, pic.width, row["height"])).convert("L"))
    assert (right < 128).mean() > 0.002  # the redrawn molecule is there


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="min_size"):
        gen.generate(gen.Config(min_size=600, max_size=300), np.random.default_rng(0))
    with pytest.raises(ValueError, match="bw_prob"):
        gen.generate(gen.Config(bw_prob=1.5), np.random.default_rng(0))


def test_every_drawing_option_keeps_the_heavy_atom_target():
    cfg = gen.Config(explicit_h_prob=1.0, bw_prob=1.0, serif_font_prob=1.0, stereo_annotation_prob=1.0,
                     explicit_methyl_prob=1.0, kekule_prob=0.0, max_heavy_atoms=20)
    for seed in range(6):
        row = _row(seed, cfg)
        truth = row_truth(row)
        assert ann.check(row) == []
        assert "[H]" not in row["target"] and len(truth["atoms"]) == truth["heavy_atoms"] <= 20
        rgb = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])).convert("RGB")).astype(int)
        # Black-and-white palette: no coloured (saturated) pixels.
        assert (rgb.max(axis=2) - rgb.min(axis=2)).max() < 40


def _ink_under(sample, atoms, radius: int = 3) -> np.ndarray:
    """Per atom: how much darker than the page the darkest pixel near its centre is."""
    from formats.bins import from_bin

    g = np.asarray(Image.open(io.BytesIO(sample.image)).convert("L"), dtype=float)
    h, w = g.shape
    page = np.median(g)
    out = []
    for _sym, xb, yb in atoms:
        x, y = int(round(from_bin(xb, w))), int(round(from_bin(yb, h)))
        win = g[max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1]
        out.append(page - win.min() if win.size else 0.0)
    return np.asarray(out)


@pytest.mark.parametrize("look", ["scan", "photo"])
def test_scanned_and_photographed_molecules_keep_atoms_on_ink(look):
    """The scan/photo looks degrade the drawing; atom centres follow the exact warp, so they
    still sit on ink, where the undegraded centres (for a photo) mostly do not."""
    cfg = gen.Config(**{f"{look}_prob": 1.0})
    mapped_hits, stale_hits = [], []
    for seed in range(6):
        clean = gen.generate(gen.Config(), np.random.default_rng(seed))
        s = gen.generate(cfg, np.random.default_rng(seed))  # the same drawing, then the look
        assert s.image_format == "jpeg" and s.truth["realism"][look] and (s.width, s.height) == (clean.width, clean.height)
        assert s.truth["smiles"] == clean.truth["smiles"]
        assert ann.check(sample_to_row(f"t/{look}/{seed}", s, ann.records(s))) == []
        mapped_hits.append((_ink_under(s, s.truth["atoms"]) > 40).mean())
        stale_hits.append((_ink_under(s, clean.truth["atoms"]) > 40).mean())
    assert np.mean(mapped_hits) >= 0.9, mapped_hits
    if look == "photo":  # a perspective warp moves atoms by many pixels
        assert np.mean(stale_hits) < np.mean(mapped_hits) - 0.2, (stale_hits, mapped_hits)
