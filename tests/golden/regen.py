"""Rewrite tests/golden/shards.json from the current code (only when bytes change on purpose).

    python tests/golden/regen.py

Say in the commit why the bytes changed; tests/test_golden_shards.py then pins the new ones.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from tests.golden.pin import RECIPE, generate_golden, library_versions  # noqa: E402


def main() -> None:
    """Generate the golden run in a temporary directory and write shards.json."""
    with tempfile.TemporaryDirectory() as tmp:
        shards = generate_golden(Path(tmp) / "out")
    doc = {"recipe": str(RECIPE.relative_to(HERE.parent.parent)), "versions": library_versions(), "shards": shards}
    (HERE / "shards.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {HERE / 'shards.json'}: {len(shards)} shards")


if __name__ == "__main__":
    main()
