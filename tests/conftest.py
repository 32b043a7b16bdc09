"""Shared fixtures: small real datasets generated once per session, recipe writers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.official_snapshot import parity_snapshot_dir  # noqa: F401  (a session fixture: train.official's tests)

REPO = Path(__file__).resolve().parent.parent


def write_recipe(path: Path, **overrides) -> Path:
    """Write a small recipe YAML (text + ocr1 by default) and return its path."""
    recipe = {
        "name": "t",
        "seed": 5,
        "shards": 3,
        "rows_per_shard": 4,
        "mixture": {"ocr1": {"weight": 0.5}, "text": {"weight": 0.5}},
    }
    recipe.update(overrides)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def ocr1_dataset(tmp_path_factory) -> Path:
    """A real OCR 1.0 run: 2 shards x 4 pages, in-process executor."""
    from synth.runner import generate_dataset

    root = tmp_path_factory.mktemp("ocr1ds")
    recipe = write_recipe(root / "r.yaml", name="ocr1-t", shards=2, rows_per_shard=4, mixture={"ocr1": {"weight": 1.0}})
    out = root / "out"
    generate_dataset(recipe, str(out), workers=1, executor="local")
    return out


@pytest.fixture(scope="module")
def ray_local():
    """An embedded local Ray (2 CPUs) for the session's Ray tests; shut down afterwards."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024 * 1024, logging_level="ERROR")
    yield ray
    ray.shutdown()


def run_cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python -m ...`` in the repository root and capture its output."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(["python", *args], cwd=REPO, capture_output=True, text=True, env=full_env, timeout=timeout)


def family_row(family: str, seed: int, cfg=None) -> dict:
    """The stored row of one sample of ``family`` (default config unless ``cfg``)."""
    import numpy as np

    from synth import families
    from synth.rows import sample_to_row

    fam = families.load(family)
    sample = fam.generator.generate(cfg or fam.generator.Config(), np.random.default_rng(seed))
    return sample_to_row(f"test/0/{seed}", sample, fam.annotator.records(sample))


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory) -> Path:
    """manifests/mixture_demo.yaml at its smallest: 1 shard of 8 rows (every family but
    scan/photo looks), in-process executor. Shared by the trainer and CLI tests."""
    from synth.recipe import load_recipe
    from synth.runner import generate_dataset

    out = tmp_path_factory.mktemp("demo") / "mix"
    recipe = load_recipe(REPO / "manifests" / "mixture_demo.yaml", overrides={"shards": 1, "rows_per_shard": 8})
    generate_dataset(recipe, str(out), workers=1, executor="local")
    return out
