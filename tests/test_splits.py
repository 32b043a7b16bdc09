"""Splits (issue 17, item 8) and Ray Data image decoding (item 9).

A recipe's splits are consecutive shard ranges of one run: ``datasets.load_from_disk`` gives
a ``DatasetDict``, ids are unique across splits, every reader understands the layout, and
the shards have the bytes they would have without splits.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from annotate.verify import verify
from synth.catalog import CatalogError, open_catalog
from synth.recipe import RecipeError, load_recipe
from synth.runner import generate_dataset
from tests.conftest import write_recipe
from train.data import ShardSet

GEO = {"geometry": {"weight": 1}}


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def split_run(tmp_path_factory) -> tuple[Path, Path]:
    """A run with splits train (2 shards) and test (1), and the same recipe without splits."""
    root = tmp_path_factory.mktemp("splits")
    with_splits = write_recipe(root / "s.yaml", name="s", shards=3, rows_per_shard=2, mixture=GEO,
                               splits={"train": 2, "test": 1})
    plain = write_recipe(root / "p.yaml", name="s", shards=3, rows_per_shard=2, mixture=GEO)
    generate_dataset(with_splits, str(root / "run"), executor="local")
    generate_dataset(plain, str(root / "plain"), executor="local")
    return root / "run", root / "plain"


def test_layout_is_a_dataset_dict_and_shard_bytes_do_not_change(split_run):
    run, plain = split_run
    files = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())
    assert files == ["README.md", "dataset_dict.json", "manifest.json",
                     "test/data-00000-of-00001.arrow", "test/dataset_info.json", "test/state.json",
                     "train/data-00000-of-00002.arrow", "train/data-00001-of-00002.arrow", "train/dataset_info.json",
                     "train/state.json"]
    split_shards = ["train/data-00000-of-00002.arrow", "train/data-00001-of-00002.arrow", "test/data-00000-of-00001.arrow"]
    assert [_sha(run / n) for n in split_shards] == [_sha(plain / f"data-0000{i}-of-00003.arrow") for i in range(3)]


def test_load_from_disk_gives_a_dataset_dict_with_unique_ids(split_run):
    datasets = pytest.importorskip("datasets")
    run, plain = split_run
    dd = datasets.load_from_disk(str(run))
    assert isinstance(dd, datasets.DatasetDict) and list(dd) == ["train", "test"]
    assert (dd["train"].num_rows, dd["test"].num_rows) == (4, 2)
    assert list(dd["test"]["id"]) == ["s/00002/00000", "s/00002/00001"]
    ids = list(dd["train"]["id"]) + list(dd["test"]["id"])
    assert len(set(ids)) == 6
    assert isinstance(dd["test"].features["image"], datasets.Image)
    assert isinstance(datasets.load_from_disk(str(plain)), datasets.Dataset)  # no splits: today's layout


def test_every_reader_understands_splits(split_run, capsys):
    from annotate.__main__ import main as annotate_main

    run, _ = split_run
    cat = open_catalog(str(run))
    assert cat.splits == ["train", "test"] and [r.split for r in cat.shards] == ["train", "train", "test"]
    assert [r.name for r in open_catalog(str(run / "test")).shards] == ["test/data-00000-of-00001.arrow"]
    assert len(open_catalog(str(run), split="train").shards) == 2
    with pytest.raises(CatalogError, match=r"no split 'validation' \(splits: train, test\)"):
        open_catalog(str(run), split="validation")
    with pytest.raises(ValueError, match=r"holds the splits train, test; give one split folder, e\.g\. .*run/train"):
        ShardSet([str(run)])
    assert [Path(p).name for p in ShardSet([str(run / "train")]).paths] == ["data-00000-of-00002.arrow",
                                                                           "data-00001-of-00002.arrow"]
    assert verify(str(run)).ok and verify(str(run / "test")).ok
    assert annotate_main(["stats", str(run / "test")]) == 0
    assert "1 shards, 2 rows" in capsys.readouterr().out


def test_split_recipes_are_validated(tmp_path: Path):
    path = write_recipe(tmp_path / "r.yaml", shards=4, splits={"train": 2, "test": 1})
    with pytest.raises(RecipeError, match=r"splits: the splits hold 3 shards \(train 2, test 1\) but the recipe has shards: 4"):
        load_recipe(path)
    with pytest.raises(RecipeError, match=r"split name 'held out' must be"):
        load_recipe(write_recipe(tmp_path / "n.yaml", splits={"held out": 1}, shards=1))
    # --split on the command line sets the shard count when --shards is not given
    recipe = load_recipe(write_recipe(tmp_path / "c.yaml", shards=4), overrides={"splits": [("train", 7), ("test", 1)]})
    assert recipe.shards == 8 and recipe.split_of(7) == "test" and recipe.shard_paths[7] == "test/data-00000-of-00001.arrow"
    assert "splits" not in load_recipe(write_recipe(tmp_path / "p.yaml")).resolved()  # fingerprints of plain recipes keep


@pytest.mark.slow
def test_ray_data_reads_splits_one_block_per_shard_and_decodes_images(split_run, tmp_path: Path, ray_local):
    # Issue 17.9, and 16.7 for Ray Data: a foreign .arrow in the folder is not read.
    import numpy as np
    from PIL import Image

    from synth.raydata import read_shards

    run = Path(shutil.copytree(split_run[0], tmp_path / "run"))
    shutil.copy(run / "train" / "data-00000-of-00002.arrow", run / "train" / "cache-0123456789abcdef.arrow")
    raw = read_shards(str(run / "train")).materialize()
    assert raw.count() == 4 and raw.num_blocks() == 2
    rows = read_shards(str(run), split="test", decode_images="numpy").take_all()
    assert [r["id"] for r in rows] == ["s/00002/00000", "s/00002/00001"]
    for r in rows:
        assert isinstance(r["image"], np.ndarray) and r["image"].dtype == np.uint8
        assert r["image"].shape == (r["height"], r["width"], 3)
    pil = read_shards(str(run / "test"), decode_images="pil").take(1)[0]["image"]
    assert isinstance(pil, Image.Image) and pil.mode == "RGB"
    with pytest.raises(ValueError, match="decode_images='jpeg'"):
        read_shards(str(run), decode_images="jpeg")
