"""The golden run's recipe, how it is generated, and the library versions its bytes depend on."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

RECIPE = Path(__file__).resolve().parent / "recipe.yaml"
# The packages whose output ends up in shard bytes (rasterisers, encoders, fonts, text).
RENDER_STACK = ("numpy", "pillow", "pyarrow", "reportlab", "pymupdf", "matplotlib", "rdkit", "shapely",
                "jieba", "essential-generators", "pyphen", "fonttools", "opencv-python-headless")


def library_versions() -> dict[str, str]:
    """Installed version of each package of the render stack."""
    return {name: metadata.version(name) for name in RENDER_STACK}


def generate_golden(out: Path) -> dict[str, str]:
    """Generate the golden recipe in-process under ``out``; {shard name: sha256}."""
    from synth.runner import generate_dataset

    generate_dataset(RECIPE, str(out), workers=1, executor="local")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return {name: entry["sha256"] for name, entry in manifest["shards"].items()}
