"""Generation is pinned byte for byte: every family and page look, shard by shard.

A refactor (moving modules, renaming helpers) must leave every shard's sha256 as it was.
A change that alters bytes on purpose regenerates the pin (``python tests/golden/regen.py``)
in the same commit and says why. The pin holds for the render stack's versions recorded
beside it (constraints.txt installs them); a mismatch there is reported first.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.golden.pin import generate_golden, library_versions

PIN = Path(__file__).resolve().parent / "golden" / "shards.json"


def test_golden_run_is_byte_identical(tmp_path):
    pinned = json.loads(PIN.read_text(encoding="utf-8"))
    versions = library_versions()
    drift = {k: (v, versions.get(k)) for k, v in pinned["versions"].items() if versions.get(k) != v}
    assert not drift, f"render stack differs from the pin's (pinned, installed): {drift}; install with -c constraints.txt"
    got = generate_golden(tmp_path / "out")
    changed = sorted(n for n in pinned["shards"] if got.get(n) != pinned["shards"][n])
    assert set(got) == set(pinned["shards"]), f"shard names differ: {sorted(got)} vs {sorted(pinned['shards'])}"
    assert not changed, (
        f"{len(changed)} of {len(got)} golden shards changed bytes ({', '.join(changed)}); if intended, "
        "run `python tests/golden/regen.py` and say why in the commit"
    )
