"""Molecule family: drug-like molecules drawn by RDKit, target = canonical SMILES.

Molecules come from two places: the bundled seeds (``synth.molecules.seeds``) drawn as
they are, and new molecules built by recombining the seeds' BRICS fragments. A build
picks a core fragment and one compatible partner per attachment point with the caller's
rng, then takes the first complete product of ``BRICS.BRICSBuild`` (with
``scrambleReagents=False``, whose enumeration order depends only on its inputs), so the
result is a pure function of the rng. Stereo is sometimes removed or randomly assigned
and acids/amines are sometimes ionised. The drawing uses ``MolDraw2DCairo`` with
randomised ``MolDrawOptions``; text/time chunks are stripped from Cairo's PNG so its
bytes depend only on the pixels.
"""

from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass

import numpy as np
from rdkit import Chem, RDLogger
from rdkit.Chem import BRICS
from rdkit.Chem.Draw import rdMolDraw2D

from formats.bins import to_bin
from synth.config_checks import bad_probability
from synth.molecules.seeds import SEEDS
from synth.sample import Sample

# BRICS products are often unsanitizable; those failures are expected, not news.
RDLogger.DisableLog("rdApp.*")

MAX_BUILD_STEPS = 8  # fragments attached per build attempt at most


@dataclass
class Config:
    """Options of the molecule family.

    min_size: smallest image side in pixels.
    max_size: largest image side in pixels (width and height are drawn independently).
    seed_prob: probability of drawing a bundled seed molecule unchanged (one within the atom/ring limits).
    min_heavy_atoms: fewest heavy atoms a built molecule may have.
    max_heavy_atoms: most heavy atoms a built molecule may have.
    max_rings: most rings a built molecule may have.
    build_attempts: fragment draws tried before falling back to a seed molecule.
    extend_prob: probability that a partner fragment is itself a core (grows the molecule).
    stereo_remove_prob: probability of removing all stereochemistry.
    stereo_assign_prob: probability of giving unassigned stereocentres a random configuration.
    charge_prob: probability of ionising carboxylic acids and/or basic amines.
    explicit_h_prob: probability of drawing all hydrogens (molecules of at most 24 heavy atoms).
    kekule_prob: probability of Kekulé bonds (otherwise aromatic rings drawn aromatic).
    bw_prob: probability of the black-and-white atom palette.
    explicit_methyl_prob: probability of writing terminal methyls as CH3.
    stereo_annotation_prob: probability of printing R/S and E/Z labels.
    serif_font_prob: probability of a DejaVu Serif font instead of RDKit's default sans.
    scan_prob, photo_prob: probabilities of synth.realism's scan and photo looks (a
      structure scanned from or photographed in a paper); atom centres follow the warp and
      degraded images are stored as JPEG (quality 90).
    """

    min_size: int = 224
    max_size: int = 512
    seed_prob: float = 0.15
    min_heavy_atoms: int = 8
    max_heavy_atoms: int = 40
    max_rings: int = 5
    build_attempts: int = 8
    extend_prob: float = 0.2
    stereo_remove_prob: float = 0.2
    stereo_assign_prob: float = 0.2
    charge_prob: float = 0.1
    explicit_h_prob: float = 0.05
    kekule_prob: float = 0.6
    bw_prob: float = 0.4
    explicit_methyl_prob: float = 0.2
    stereo_annotation_prob: float = 0.1
    serif_font_prob: float = 0.2
    scan_prob: float = 0.0
    photo_prob: float = 0.0

    def __post_init__(self) -> None:
        # Fail when a recipe is loaded, not in the middle of a shard.
        _validate(self)


def _validate(cfg: Config) -> None:
    if not 64 <= cfg.min_size <= cfg.max_size:
        raise ValueError(f"molecule sizes: need 64 <= min_size <= max_size, got min_size={cfg.min_size}, max_size={cfg.max_size}")
    if not 1 <= cfg.min_heavy_atoms <= cfg.max_heavy_atoms:
        raise ValueError(
            f"molecule heavy atoms: need 1 <= min_heavy_atoms <= max_heavy_atoms, got "
            f"{cfg.min_heavy_atoms}, {cfg.max_heavy_atoms}"
        )
    name = bad_probability(cfg)
    if name:
        raise ValueError(f"molecule {name}={getattr(cfg, name)!r}: must be a probability in [0, 1]")


# ---------------------------------------------------------------- fragments (cached)

@dataclass(frozen=True)
class _Fragment:
    smiles: str
    mol: Chem.Mol
    labels: tuple[int, ...]  # BRICS attachment labels (dummy isotopes), one per attachment


@dataclass(frozen=True)
class _FragmentPool:
    fragments: tuple[_Fragment, ...]
    cores: tuple[int, ...]  # indices of fragments with >= 2 attachments
    partners: dict[int, tuple[int, ...]]  # attachment label -> fragments that can bond to it


def _label_number(label: str) -> int:
    return int(label.rstrip("ab"))


@functools.lru_cache(maxsize=1)
def _fragment_pool() -> _FragmentPool:
    """BRICS fragments of all seeds, sorted so the pool never depends on set order."""
    smiles: set[str] = set()
    for _, smi in SEEDS:
        smiles |= BRICS.BRICSDecompose(Chem.MolFromSmiles(smi))
    frags = []
    for smi in sorted(smiles):
        mol = Chem.MolFromSmiles(smi)
        labels = tuple(a.GetIsotope() for a in mol.GetAtoms() if a.GetAtomicNum() == 0)
        if labels:  # undecomposable seeds have no attachment point to build with
            frags.append(_Fragment(smi, mol, labels))
    compat: dict[int, set[int]] = {}
    for group in BRICS.reactionDefs:
        for a, b, _ in group:
            compat.setdefault(_label_number(a), set()).add(_label_number(b))
            compat.setdefault(_label_number(b), set()).add(_label_number(a))
    partners = {
        lab: tuple(i for i, f in enumerate(frags) if any(x in ok for x in f.labels))
        for lab, ok in sorted(compat.items())
    }
    cores = tuple(i for i, f in enumerate(frags) if len(f.labels) >= 2)
    return _FragmentPool(tuple(frags), cores, partners)


@functools.lru_cache(maxsize=1)
def _seed_mols() -> tuple[tuple[str, Chem.Mol], ...]:
    return tuple((name, Chem.MolFromSmiles(smi)) for name, smi in SEEDS)


# ---------------------------------------------------------------- building molecules

def _ring_count(mol: Chem.Mol) -> int:
    return mol.GetRingInfo().NumRings()


def _within_limits(mol: Chem.Mol, cfg: Config) -> bool:
    n = mol.GetNumHeavyAtoms()
    return cfg.min_heavy_atoms <= n <= cfg.max_heavy_atoms and _ring_count(mol) <= cfg.max_rings


def _dummy_labels(mol: Chem.Mol) -> list[int]:
    return [a.GetIsotope() for a in mol.GetAtoms() if a.GetAtomicNum() == 0]


def _attach(current: Chem.Mol, partner: Chem.Mol) -> Chem.Mol | None:
    """The first BRICSBuild product joining ``partner`` to ``current`` at one attachment.

    One fragment and maxDepth=0 keep each call to a single pass over the BRICS
    reactions; growing the molecule one partner at a time is far cheaper than letting
    BRICSBuild enumerate every combination of a fragment set.
    """
    builder = BRICS.BRICSBuild([partner], onlyCompleteMols=False, seeds=[current], uniquify=False,
                               scrambleReagents=False, maxDepth=0)
    for prod in builder:
        try:
            Chem.SanitizeMol(prod)
        except Exception:  # noqa: BLE001 - RDKit raises several sanitization error types
            continue
        return prod
    return None


def _build(cfg: Config, rng: np.random.Generator) -> Chem.Mol | None:
    """One attempt at a new molecule from BRICS fragments; None when it fails the limits."""
    pool = _fragment_pool()
    mol = pool.fragments[pool.cores[int(rng.integers(len(pool.cores)))]].mol
    for _ in range(MAX_BUILD_STEPS):
        labels = _dummy_labels(mol)
        if not labels:
            break
        if mol.GetNumHeavyAtoms() - len(labels) > cfg.max_heavy_atoms:
            return None
        cands = pool.partners.get(labels[0], ())
        if not cands:
            return None
        # Mostly single-attachment caps so the molecule closes; sometimes another core.
        want_core = rng.random() < cfg.extend_prob
        pref = [i for i in cands if (len(pool.fragments[i].labels) >= 2) == want_core] or list(cands)
        mol = _attach(mol, pool.fragments[pref[int(rng.integers(len(pref)))]].mol)
        if mol is None:
            return None
    if _dummy_labels(mol) or not _within_limits(mol, cfg):
        return None
    return mol


def _randomise_stereo(mol: Chem.Mol, cfg: Config, rng: np.random.Generator) -> Chem.Mol:
    u = rng.random()
    mol = Chem.Mol(mol)
    if u < cfg.stereo_remove_prob:
        Chem.RemoveStereochemistry(mol)
    elif u < cfg.stereo_remove_prob + cfg.stereo_assign_prob:
        centres = Chem.FindMolChiralCenters(mol, includeUnassigned=True, useLegacyImplementation=False)
        tags = (Chem.ChiralType.CHI_TETRAHEDRAL_CW, Chem.ChiralType.CHI_TETRAHEDRAL_CCW)
        for idx, label in centres:
            if label == "?":
                mol.GetAtomWithIdx(idx).SetChiralTag(tags[int(rng.integers(2))])
    return mol


_ACID = Chem.MolFromSmarts("[CX3](=O)[OX2H1]")
# Basic aliphatic amines only: not amides, anilines, sulfonamides, imines or hydrazines.
_AMINE = Chem.MolFromSmarts("[NX3;H1,H2;!$(N-[C,S]=[O,S,N]);!$(N-a);!$(N-[N,O]);!$(N-C=C)]")


def _randomise_charges(mol: Chem.Mol, cfg: Config, rng: np.random.Generator) -> Chem.Mol:
    if rng.random() >= cfg.charge_prob:
        return mol
    rw = Chem.RWMol(mol)
    mode = int(rng.integers(3))  # 0 anion, 1 cation, 2 zwitterion
    if mode in (0, 2):
        for match in rw.GetSubstructMatches(_ACID):
            o = rw.GetAtomWithIdx(match[2])
            o.SetFormalCharge(-1)
            o.SetNumExplicitHs(0)
            o.SetNoImplicit(True)
    if mode in (1, 2):
        for match in rw.GetSubstructMatches(_AMINE):
            n = rw.GetAtomWithIdx(match[0])
            n.SetFormalCharge(1)
            n.SetNumExplicitHs(n.GetTotalNumHs() + 1)
            n.SetNoImplicit(True)
    try:
        Chem.SanitizeMol(rw)
    except Exception:  # noqa: BLE001 - keep the neutral molecule when ionising fails
        return mol
    return rw.GetMol()


def _canonical_roundtrip(mol: Chem.Mol) -> tuple[Chem.Mol, str] | None:
    """Re-read the molecule from its canonical SMILES; None unless that SMILES is stable.

    Drawing the re-read molecule makes the target exactly the drawn molecule.
    """
    smi = Chem.MolToSmiles(mol)
    again = Chem.MolFromSmiles(smi)
    if again is None or Chem.MolToSmiles(again) != smi:
        return None
    return again, smi


def choose_molecule(cfg: Config, rng: np.random.Generator) -> tuple[Chem.Mol, str, str]:
    """Pick a molecule: (mol, canonical SMILES, source), source = seed name or "brics"."""
    mol, source = None, "brics"
    if rng.random() >= cfg.seed_prob:
        for _ in range(cfg.build_attempts):
            mol = _build(cfg, rng)
            if mol is not None:
                break
    if mol is None:
        seeds = [s for s in _seed_mols() if _within_limits(s[1], cfg)] or list(_seed_mols())
        source, mol = seeds[int(rng.integers(len(seeds)))]
    varied = _randomise_charges(_randomise_stereo(mol, cfg, rng), cfg, rng)
    out = _canonical_roundtrip(varied) or _canonical_roundtrip(mol)
    if out is None:  # every seed round-trips (tested), so fall back to the first one
        out = _canonical_roundtrip(_seed_mols()[0][1])
        source = _seed_mols()[0][0]
    return out[0], out[1], source


# ---------------------------------------------------------------- drawing

@functools.lru_cache(maxsize=1)
def _serif_font() -> str:
    import matplotlib

    return os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf", "DejaVuSerif.ttf")


def draw(mol: Chem.Mol, cfg: Config, rng: np.random.Generator) -> tuple[bytes, int, int, list[list]]:
    """Draw a molecule with randomised options: (PNG bytes, width, height, atom centres).

    Atom centres are ``[symbol, x_bin, y_bin]`` of the heavy atoms in the stored image.
    """
    png, w, h, atoms = _draw(mol, cfg, rng)
    return png, w, h, [[sym, to_bin(x, w), to_bin(y, h)] for sym, x, y in atoms]


def _draw(mol: Chem.Mol, cfg: Config, rng: np.random.Generator) -> tuple[bytes, int, int, list[list]]:
    """:func:`draw` with atom centres in pixels: ``[symbol, x_px, y_px]``."""
    w = int(rng.integers(cfg.min_size, cfg.max_size + 1))
    h = int(rng.integers(cfg.min_size, cfg.max_size + 1))
    explicit_h = rng.random() < cfg.explicit_h_prob and mol.GetNumHeavyAtoms() <= 24
    kekulize = bool(rng.random() < cfg.kekule_prob)
    drawer = rdMolDraw2D.MolDraw2DCairo(w, h)
    opts = drawer.drawOptions()
    opts.includeMetadata = False  # belt and braces: _strip_png_metadata drops it anyway
    opts.rotate = float(rng.uniform(0.0, 360.0))
    scale = min(w, h) / 300.0
    opts.bondLineWidth = float(rng.uniform(1.0, 3.0) * max(scale, 0.7))
    opts.scaleBondWidth = False
    opts.minFontSize = int(rng.integers(8, 14))
    opts.maxFontSize = int(rng.integers(opts.minFontSize + 4, 40))
    opts.baseFontSize = float(rng.uniform(0.45, 0.9))
    opts.padding = float(rng.uniform(0.02, 0.15))
    opts.multipleBondOffset = float(rng.uniform(0.1, 0.2))
    opts.additionalAtomLabelPadding = float(rng.uniform(0.0, 0.15))
    opts.explicitMethyl = bool(rng.random() < cfg.explicit_methyl_prob)
    opts.addStereoAnnotation = bool(rng.random() < cfg.stereo_annotation_prob)
    if rng.random() < cfg.bw_prob:
        opts.useBWAtomPalette()
    if rng.random() < cfg.serif_font_prob:
        opts.fontFile = _serif_font()
    opts.prepareMolsBeforeDrawing = False
    to_draw = Chem.AddHs(mol) if explicit_h else mol
    prepared = rdMolDraw2D.PrepareMolForDrawing(to_draw, kekulize=kekulize, addChiralHs=not explicit_h)
    drawer.DrawMolecule(prepared)
    drawer.FinishDrawing()
    atoms = []
    for atom in prepared.GetAtoms():
        if atom.GetAtomicNum() == 1:
            continue
        p = drawer.GetDrawCoords(atom.GetIdx())
        atoms.append([atom.GetSymbol(), float(p.x), float(p.y)])
    return _strip_png_metadata(drawer.GetDrawingText()), w, h, atoms


# Chunks that carry text or time stamps; dropping them keeps the bytes a function of
# the pixels alone (RDKit can embed the molecule as PNG text metadata).
_METADATA_CHUNKS = {b"tEXt", b"zTXt", b"iTXt", b"tIME"}


def _strip_png_metadata(data: bytes) -> bytes:
    """The PNG without text/time chunks (cheaper than decoding and re-encoding it)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("RDKit's Cairo drawer did not return a PNG")
    out, i = [data[:8]], 8
    while i < len(data):
        n = int.from_bytes(data[i:i + 4], "big")
        chunk = data[i:i + 12 + n]
        if chunk[4:8] not in _METADATA_CHUNKS:
            out.append(chunk)
        i += 12 + n
    return b"".join(out)


# ---------------------------------------------------------------- entry point

def generate(config: Config, rng: np.random.Generator) -> Sample:
    """Generate one drawn molecule with its canonical SMILES as truth."""
    _validate(config)
    mol, smiles, source = choose_molecule(config, rng)
    image, w, h, atoms = _draw(mol, config, rng)
    fmt = "png"
    scan, photo = bool(rng.random() < config.scan_prob), bool(rng.random() < config.photo_prob)
    if scan or photo:
        image, atoms = _degrade(image, atoms, rng, scan, photo)
        fmt = "jpeg"
    truth = {"smiles": smiles, "heavy_atoms": mol.GetNumHeavyAtoms(), "source": source,
             "atoms": [[sym, to_bin(x, w), to_bin(y, h)] for sym, x, y in atoms],
             "realism": {"scan": scan, "photo": photo}}
    return Sample(family="molecule", image=image, image_format=fmt, width=w, height=h, truth=truth)


def _degrade(png: bytes, atoms: list[list], rng: np.random.Generator, scan: bool,
             photo: bool) -> tuple[bytes, list[list]]:
    """Apply the scan/photo looks (same size out); atom centres go through the exact point map."""
    from PIL import Image

    from synth import realism

    img, mapper = realism.apply(Image.open(io.BytesIO(png)).convert("RGB"), rng, scan=scan, photo=photo)
    moved = mapper(np.asarray([[x, y] for _s, x, y in atoms], dtype=float).reshape(-1, 2))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90, subsampling=2, optimize=False, progressive=False)
    return buf.getvalue(), [[sym, float(x), float(y)] for (sym, _x, _y), (x, y) in zip(atoms, moved)]
