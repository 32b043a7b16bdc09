"""The dataset card: README.md with the Hugging Face Hub's YAML header, written with every
complete run.

The header carries what the Hub and ``datasets.load_dataset`` read: ``configs`` (which
files make which split: the Arrow shards themselves, which the ``arrow`` builder reads),
``dataset_info`` (features derived from ``synth.shards.HF_FEATURES``, so the card follows
the schema, and split sizes from manifest.json), licence, languages, task categories and
size. The body says what is in the run, how it was made (engine version, recipe, the
command that makes the same bytes again) and the licence of every source that the run's
families draw on. Nothing in it depends on the time or the machine: the same run gives
the same card.
"""

from __future__ import annotations

from typing import Any

import pyarrow.fs as pafs
import yaml

from synth.recipe import Recipe
from synth.shards import HF_FEATURES, SCHEMA, atomic_write, join

CARD = "README.md"

# What each family's rows are made of, with the licence of each source as its own files
# state it (checked in the installed packages). Fonts are used to draw glyphs; no font
# file is stored in a row.
SOURCES: dict[str, dict[str, str]] = {
    "wikipedia-chain": {
        "what": "English prose: walks of the word-trigram Markov chain that the essential-generators package "
                "builds from Wikipedia articles (markov_textgen.json); walks copy long stretches of article text",
        "licence": "Wikipedia text: CC BY-SA (3.0 when the corpus was built; 4.0 since 2023), attribution to the "
                   "Wikipedia authors; the essential-generators package itself: MIT",
    },
    "python-docs": {
        "what": "English sentences of the Python reference manual (pydoc_data.topics), code listings from Python "
                "standard-library modules and C headers",
        "licence": "PSF License Agreement v2 (Python's documentation and source); documentation examples: Zero-Clause BSD",
    },
    "jieba": {
        "what": "Chinese words (jieba's dict.txt) composed into pseudo-sentences by the engine",
        "licence": "MIT (jieba)",
    },
    "vera": {
        "what": "Bitstream Vera fonts bundled with reportlab",
        "licence": "Bitstream Vera Fonts licence (free use and redistribution; no sale of the fonts by themselves)",
    },
    "dejavu": {
        "what": "DejaVu Sans, Serif and Sans Mono fonts bundled with matplotlib",
        "licence": "Bitstream Vera Fonts licence (DejaVu changes in the public domain; Arev glyphs: Tavmjong Bah licence)",
    },
    "stix": {
        "what": "STIX General fonts bundled with matplotlib (converted from OTF to TTF)",
        "licence": "SIL Open Font License 1.1",
    },
    "computer-modern": {
        "what": "Computer Modern (BaKoMa TrueType) fonts bundled with matplotlib",
        "licence": "BaKoMa Fonts Licence (free copying and use; use in documents needs no notice)",
    },
    "urw-base35": {
        "what": "Helvetica, Times and Courier as drawn by MuPDF (PyMuPDF): its built-in URW++ Nimbus Sans, "
                "Nimbus Roman and Nimbus Mono PS",
        "licence": "GNU AGPL 3.0 with URW's font exception for documents that use the fonts; the rows hold "
                   "rasterised glyphs, not the font programs",
    },
    "droid-fallback": {
        "what": "Droid Sans Fallback, PyMuPDF's CJK font (Chinese text on pages and charts)",
        "licence": "Apache License 2.0",
    },
    "pymupdf": {
        "what": "PyMuPDF / MuPDF: rasterises the pages and reads words and boxes back",
        "licence": "GNU AGPL 3.0 or Artifex commercial (software used to make the data; not part of it)",
    },
    "reportlab": {
        "what": "reportlab: lays out and writes the pages as PDF",
        "licence": "BSD (software used to make the data; not part of it)",
    },
    "matplotlib": {
        "what": "matplotlib: draws the charts and the equations",
        "licence": "matplotlib licence (PSF-based; software used to make the data; not part of it)",
    },
    "rdkit": {
        "what": "RDKit: builds, canonicalises and draws the molecules, from a hand-written list of well-known "
                "molecules (synth/molecules/seeds.py)",
        "licence": "BSD 3-Clause (RDKit); the seed list is part of this engine",
    },
    "telex": {
        "what": "Telex, the font RDKit draws atom labels with by default (rdkit/Data/Fonts)",
        "licence": "SIL Open Font License 1.1",
    },
    "engine": {
        "what": "everything else (layouts, shapes, icons, backgrounds, scan and photo effects, geometry figures, "
                "chart data, prompts, targets) is drawn by this engine's code from the seed",
        "licence": "the engine's own output",
    },
}

FAMILY_SOURCES: dict[str, tuple[str, ...]] = {
    "ocr1": ("wikipedia-chain", "python-docs", "jieba", "vera", "dejavu", "stix", "computer-modern", "urw-base35",
             "droid-fallback", "reportlab", "pymupdf", "matplotlib", "engine"),
    "chart": ("wikipedia-chain", "python-docs", "jieba", "dejavu", "stix", "droid-fallback", "matplotlib", "engine"),
    "molecule": ("rdkit", "telex", "dejavu", "engine"),
    "geometry": ("stix", "engine"),
    "vision": ("wikipedia-chain", "python-docs", "dejavu", "engine"),
    "text": ("wikipedia-chain", "python-docs", "jieba", "engine"),
}

COLUMN_NOTES: dict[str, str] = {
    "id": "`<recipe>/<shard>/<row>`, unique in the run (across splits too)",
    "family": "generator family",
    "task": "task of the first record",
    "prompt": "prompt of the first record",
    "target": "target of the first record",
    "records": "every (task, prompt, target) of this image",
    "image": "the stored image (PNG or JPEG); null for text-only rows",
    "width": "stored image width in pixels",
    "height": "stored image height in pixels",
    "regions": "layout regions or grounded objects: label, box in 0-999 bins, text",
    "lines": "text lines read back from the render: text, box in 0-999 bins",
    "truth": "JSON of the family's structured truth (chart data, SMILES, geometry, page metadata)",
    "lang": "language code",
}

SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))


def yaml_features(features: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``HF_FEATURES`` in the card's ``dataset_info.features`` form (what ``datasets``'
    ``Features._to_yaml_list`` writes): a list of {name, dtype | list | struct}."""

    def one(feature: Any) -> dict[str, Any]:
        kind = feature.get("_type") if isinstance(feature, dict) else None
        if kind == "Value":
            return {"dtype": feature["dtype"]}
        if kind == "Image":
            return {"dtype": "image"}
        if kind in ("List", "Sequence", "LargeList"):
            inner = one(feature["feature"])
            return {"list": inner["dtype"] if set(inner) == {"dtype"} else inner["struct"]}
        if kind is None and isinstance(feature, dict):  # a struct: {field: feature}
            return {"struct": [{"name": k, **one(v)} for k, v in feature.items()]}
        raise ValueError(f"feature {feature!r}: no YAML form known (add it to synth/card.py)")

    return [{"name": name, **one(f)} for name, f in (features or HF_FEATURES).items()]


def _size_category(rows: int) -> str:
    return next((label for limit, label in SIZE_CATEGORIES if rows < limit), "n>1B")


def _split_rows(recipe: Recipe, manifest: dict[str, Any]) -> list[tuple[str, int, int, int, str]]:
    """(split, shards, rows, bytes, data_files glob) per split ("train" for a run without splits)."""
    entries = manifest["shards"]
    if not recipe.splits:
        rows = sum(e["rows"] for e in entries.values())
        size = sum(e["bytes"] for e in entries.values())
        return [("train", recipe.shards, rows, size, "data-*.arrow")]
    out = []
    for name, n in recipe.splits:
        mine = [e for p, e in entries.items() if p.startswith(name + "/")]
        out.append((name, n, sum(e["rows"] for e in mine), sum(e["bytes"] for e in mine), f"{name}/data-*.arrow"))
    return out


def card_metadata(recipe: Recipe, manifest: dict[str, Any]) -> dict[str, Any]:
    """The card's YAML header as a mapping (Hub dataset card metadata)."""
    splits = _split_rows(recipe, manifest)
    totals = manifest.get("totals") or {}
    langs = sorted((totals.get("langs") or {}).keys())
    fams = {e.family for e in recipe.mixture}
    tasks = (["image-to-text"] if fams - {"text"} else []) + (["text-generation"] if "text" in fams else [])
    tags = ["ocr", "synthetic", "deepseek-ocr"] + [t for f, t in (("chart", "charts"), ("molecule", "chemistry"),
                                                                   ("geometry", "geometry"), ("vision", "grounding"))
                                                   if f in fams]
    meta: dict[str, Any] = {
        "pretty_name": recipe.name,
        "license": "other",
        "license_name": "mixed-sources",  # the body's Licences section states each source's terms
    }
    if langs:
        meta["language"] = langs
    meta.update({
        "task_categories": tasks,
        "tags": tags,
        "size_categories": [_size_category(sum(s[2] for s in splits))],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": name, "path": glob} for name, _, _, _, glob in splits]}],
        "dataset_info": {
            "features": yaml_features(),
            "splits": [{"name": name, "num_bytes": size, "num_examples": rows} for name, _, rows, size, _ in splits],
            "download_size": sum(s[3] for s in splits),
            "dataset_size": sum(s[3] for s in splits),
        },
    })
    return meta


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].upper() + text[1:] + "."


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_card(recipe: Recipe, manifest: dict[str, Any]) -> str:
    """The whole README.md: YAML header and Markdown body."""
    meta = card_metadata(recipe, manifest)
    splits = _split_rows(recipe, manifest)
    totals = manifest.get("totals") or {}
    rows_total = totals.get("rows", sum(s[2] for s in splits))
    fams_used = [e.family for e in recipe.mixture]
    sources = list(dict.fromkeys(s for f in fams_used for s in FAMILY_SOURCES.get(f, ("engine",))))
    resolved_yaml = yaml.safe_dump(recipe.resolved(), sort_keys=False, allow_unicode=True).rstrip()
    split_flags = " ".join(f"--split {n}={k}" for n, k in recipe.splits)
    load_split = "ds['train']" if not recipe.splits else f"ds[{recipe.splits[0][0]!r}]"
    body = [
        f"# {recipe.name}",
        "",
        _sentence(recipe.description or "Synthetic OCR training data") + " Generated by the ocr-data-engine "
        "(DeepSeek-OCR-style data: document pages with grounded markdown, charts as HTML tables, molecules as "
        "SMILES, plane geometry in the Slow Perception format, grounding scenes, text-only passages).",
        "",
        "## Splits",
        "",
        _table(["split", "shards", "rows", "bytes", "files"], [[n, k, r, b, f"`{g}`"] for n, k, r, b, g in splits]),
        "",
        ("Splits are consecutive shard ranges of one run, so no row id appears in two splits."
         if recipe.splits else "One split (`train`): the recipe names no held-out split."),
        "",
        "## Contents",
        "",
        _table(["family", "rows", "share"], [[f, n, f"{100 * n / max(1, rows_total):.1f}%"]
                                            for f, n in (totals.get("families") or {}).items()]),
        "",
        _table(["task", "records"], [[f"`{t}`", n] for t, n in (totals.get("tasks") or {}).items()]),
        "",
        "Languages (rows): " + (", ".join(f"{k} {v}" for k, v in (totals.get("langs") or {}).items()) or "-") + ".",
        "",
        "## Columns",
        "",
        _table(["column", "type", "meaning"], [[f"`{f.name}`", f"`{f.type}`", COLUMN_NOTES.get(f.name, "")]
                                               for f in SCHEMA]),
        "",
        "Boxes are integers 0-999 relative to the stored image (`x_bin = round(999 * x / width)`). "
        "Every record of an image is in `records`; `task`/`prompt`/`target` repeat the first one.",
        "",
        "## Loading",
        "",
        "```python",
        "import datasets",
        "ds = datasets.load_from_disk(\"DIR\")        # this folder: " + ("a Dataset" if not recipe.splits else "a DatasetDict"),
        "ds = datasets.load_dataset(\"DIR_OR_REPO\")  # the files named in this card: a DatasetDict",
        f"row = {load_split}[0]                       # row['image'] is a PIL image",
        "```",
        "",
        "With Ray Data: `synth.raydata.read_shards(\"DIR\", decode_images=\"numpy\")`; with pyarrow: "
        "`pyarrow.ipc.open_stream(pyarrow.memory_map(path))` (each shard is an uncompressed Arrow IPC stream).",
        "",
        "## How it was made",
        "",
        f"- Engine: ocr-data-engine {manifest.get('code_version', '?')}; recipe `{recipe.source}` "
        f"(fingerprint `{recipe.fingerprint()[:16]}`), seed {recipe.seed}, {recipe.shards} shards of "
        f"{recipe.rows_per_shard} rows.",
        "- Row `r` of shard `s` is drawn from `numpy.random.SeedSequence([seed, s, r])`: the same recipe makes the "
        "same bytes on any number of workers, with the same versions of the render stack (reportlab, PyMuPDF, "
        "matplotlib, RDKit, Pillow, numpy).",
        "- Targets are read back from what was rendered (PyMuPDF word boxes from the PDF), not from the layout plan; "
        "`python -m annotate verify DIR` re-checks every row against its image and truth.",
        "- Every shard's sha256 is in `manifest.json`.",
        "",
        "To make it again:",
        "",
        "```bash",
        f"python -m synth {recipe.source} --out DIR {split_flags}".rstrip(),
        "```",
        "",
        "<details><summary>The resolved recipe (every option, defaults filled)</summary>",
        "",
        "```yaml",
        resolved_yaml,
        "```",
        "",
        "</details>",
        "",
        "## Licences",
        "",
        "The images and targets are generated; what they are made from has these licences (as stated by each "
        "source's own files). Fonts are used to draw glyphs; no font file is in the data. "
        + ("Text copied from Wikipedia through the Markov chain carries CC BY-SA's attribution and share-alike "
           "terms, so treat rows with English prose as CC BY-SA 4.0 material; the other sources are under "
           "permissive terms." if "wikipedia-chain" in sources else
           "No source of this run carries share-alike terms."),
        "",
        _table(["source", "used for", "licence"], [[k, SOURCES[k]["what"], SOURCES[k]["licence"]] for k in sources]),
        "",
        "## Limitations",
        "",
        "- Synthetic: " + ("the English prose is locally grammatical but its facts are not true; Chinese sentences "
                           "are templates over a dictionary. Use the data to learn to read, not to learn facts."
                           if "wikipedia-chain" in sources else "every image is drawn from a seed, not collected."),
        "- Page looks (fonts, layouts, scan and photo effects) cover what the recipe enables; see the engine's docs.",
        "",
    ]
    header = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{header}---\n\n" + "\n".join(body)


def write_card(fs: pafs.FileSystem, base: str, recipe: Recipe, manifest: dict[str, Any]) -> None:
    """Write README.md (the dataset card) beside manifest.json."""
    atomic_write(fs, join(base, CARD), render_card(recipe, manifest).encode("utf-8"))


