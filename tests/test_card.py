"""The dataset card (issue 17, item 7): README.md with the Hub's YAML header, written with
every complete run, read back by huggingface_hub and datasets as the Hub reads it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from synth.card import render_card, yaml_features
from synth.recipe import parse_recipe
from synth.runner import RunFailed, generate_dataset
from synth.shards import HF_FEATURES
from tests.conftest import write_recipe
from tests.test_splits import split_run  # noqa: F401  (the module's run with splits)


def _header(card: Path) -> dict:
    text = card.read_text(encoding="utf-8")
    m = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert m, "no YAML header"
    return yaml.safe_load(m.group(1))


def test_card_header_is_what_the_hub_and_datasets_read(split_run):  # noqa: F811
    hub = pytest.importorskip("huggingface_hub")
    datasets = pytest.importorskip("datasets")
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs

    run, _ = split_run
    manifest = json.loads((run / "manifest.json").read_text())
    card = hub.DatasetCard.load(run / "README.md")
    meta = card.data.to_dict()
    assert meta["license"] == "other" and meta["license_name"] == "mixed-sources"
    assert meta["size_categories"] == ["n<1K"] and meta["task_categories"] == ["image-to-text"]
    features = DatasetInfosDict.from_dataset_card_data(card.data)["default"].features
    assert features == datasets.Features.from_dict(HF_FEATURES)
    splits = {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]}
    assert splits == {"train": 4, "test": 2} and sum(splits.values()) == manifest["totals"]["rows"]
    configs = MetadataConfigs.from_dataset_card_data(card.data)
    assert configs["default"]["data_files"] == [{"split": "train", "path": "train/data-*.arrow"},
                                                {"split": "test", "path": "test/data-*.arrow"}]
    assert yaml_features() == datasets.Features.from_dict(HF_FEATURES)._to_yaml_list()


def test_load_dataset_reads_the_folder_through_its_card(split_run, tmp_path: Path):  # noqa: F811
    # What the Hub viewer and `load_dataset(repo)` do with the uploaded folder.
    datasets = pytest.importorskip("datasets")
    run, _ = split_run
    dd = datasets.load_dataset(str(run), cache_dir=str(tmp_path / "cache"))
    assert list(dd) == ["train", "test"] and (dd["train"].num_rows, dd["test"].num_rows) == (4, 2)
    assert isinstance(dd["train"].features["image"], datasets.Image)
    assert dd["test"][0]["image"].size == (dd["test"][0]["width"], dd["test"][0]["height"])


def test_card_body_how_made_and_licences_of_the_sources_used(split_run):  # noqa: F811
    run, _ = split_run
    text = (run / "README.md").read_text(encoding="utf-8")
    assert "python -m synth" in text and "--out DIR" in text and "seed: 5" in text  # how to make it again
    assert "| train | 2 | 4 |" in text and "| test | 1 | 2 |" in text
    assert "SIL Open Font License 1.1" in text  # geometry labels are drawn in STIX
    assert "Wikipedia" not in text.split("## Licences")[1]  # geometry uses no Wikipedia-derived text
    mixed = parse_recipe({"name": "m", "seed": 1, "shards": 1, "rows_per_shard": 1,
                          "mixture": {"ocr1": {"weight": 1}, "molecule": {"weight": 1}}})
    body = render_card(mixed, {"shards": {}, "totals": {"rows": 0}, "code_version": "x"}).split("## Licences")[1]
    for fragment in ("CC BY-SA", "PSF License", "MIT (jieba)", "Bitstream Vera", "BaKoMa", "URW++ Nimbus",
                     "Apache License 2.0", "GNU AGPL 3.0", "BSD 3-Clause (RDKit)"):
        assert fragment in body, fragment


def test_card_only_with_a_complete_run_and_the_same_for_the_same_run(tmp_path: Path, monkeypatch):
    recipe = write_recipe(tmp_path / "r.yaml", name="k", shards=2, rows_per_shard=1, mixture={"geometry": {"weight": 1}})
    monkeypatch.setenv("SYNTH_FAIL_SHARD", "1")
    with pytest.raises(RunFailed):
        generate_dataset(recipe, str(tmp_path / "a"), executor="local")
    assert not (tmp_path / "a" / "README.md").exists()
    monkeypatch.delenv("SYNTH_FAIL_SHARD")
    generate_dataset(recipe, str(tmp_path / "a"), executor="local")
    generate_dataset(recipe, str(tmp_path / "b"), executor="local")
    a, b = ((tmp_path / d / "README.md").read_bytes() for d in "ab")
    assert a == b and os.path.getsize(tmp_path / "a" / "README.md") > 2000
    assert _header(tmp_path / "a" / "README.md")["configs"][0]["data_files"] == [{"split": "train", "path": "data-*.arrow"}]
