"""Recipes are validated before any work, with errors naming file, key and value."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from synth.recipe import RecipeError, load_recipe, parse_recipe, row_families
from tests.conftest import REPO, run_cli, write_recipe


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        ({"colour": "red"}, ["unknown key 'colour'", "valid keys"]),
        ({"shards": "four"}, [".shards", "expected an integer", "'four'"]),
        ({"rows_per_shard": -3}, [".rows_per_shard", "must be >= 1", "-3"]),
        ({"mixture": {"poetry": {"weight": 1}}}, ["mixture.poetry", "unknown task family", "valid families"]),
        ({"mixture": {"ocr1": {"weight": -1}}}, ["mixture.ocr1.weight", "negative", "-1"]),
        ({"mixture": {"ocr1": {"weight": 1, "config": {"long_sidez": 3}}}}, ["mixture.ocr1.config.long_sidez", "unknown option"]),
        ({"mixture": {"ocr1": {"weight": 1, "config": {"long_side": "big"}}}}, ["mixture.ocr1.config.long_side", "expected int", "'big'"]),
    ],
)
def test_bad_recipe_names_file_key_value(tmp_path: Path, overrides, fragments):
    path = write_recipe(tmp_path / "bad.yaml", **overrides)
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    msg = str(err.value)
    assert str(path) in msg
    for frag in fragments:
        assert frag in msg, msg


def test_cli_refuses_bad_recipe_before_any_work(tmp_path: Path):
    path = write_recipe(tmp_path / "bad.yaml", shards=0)
    out = tmp_path / "out"
    res = run_cli("-m", "synth", str(path), "--out", str(out), "--executor", "local", "--no-progress")
    assert res.returncode == 2
    assert "shards" in res.stderr and str(path) in res.stderr
    assert not out.exists()


def test_shipped_manifests_are_valid():
    for path in sorted((REPO / "manifests").glob("*.yaml")):
        recipe = load_recipe(path)
        assert recipe.total_rows > 0, path


def test_mixture_counts_follow_weights():
    recipe = load_recipe(REPO / "manifests" / "mixture_default.yaml")
    counts = Counter()
    for shard in range(recipe.shards):
        counts.update(row_families(recipe, shard))
    total = recipe.total_rows
    weights = {e.family: e.weight for e in recipe.mixture}
    wsum = sum(weights.values())
    for fam, w in weights.items():
        expected = total * w / wsum
        # low-discrepancy assignment: far inside the sampling error sqrt(n p (1-p))
        assert abs(counts[fam] - expected) <= 5, (fam, counts[fam], expected)
    # every shard is itself mixed in proportion
    one = Counter(row_families(recipe, 3))
    assert abs(one["vision"] - recipe.rows_per_shard * 0.2) <= 3


def test_families_of_a_shard_do_not_depend_on_other_shards():
    r = parse_recipe({"name": "x", "seed": 1, "shards": 10, "rows_per_shard": 7, "mixture": {"ocr1": {"weight": 2}, "text": {"weight": 1}}})
    r2 = parse_recipe({"name": "x", "seed": 1, "shards": 3, "rows_per_shard": 7, "mixture": {"ocr1": {"weight": 2}, "text": {"weight": 1}}})
    assert row_families(r, 2) == row_families(r2, 2)


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        # Issue 16.10: a NaN weight silently dropped its family; .inf wrote Infinity into
        # manifest.json; NaN in langs failed mid-run; huge sizes hung with growing memory.
        ({"mixture": {"ocr1": {"weight": float("nan")}, "text": {"weight": 1}}}, ["mixture.ocr1.weight", "finite", "nan"]),
        ({"mixture": {"text": {"weight": float("inf")}}}, ["mixture.text.weight", "finite", "inf"]),
        ({"mixture": {"ocr1": {"config": {"langs": {"en": float("nan"), "zh": 1.0}}}}},
         ["mixture.ocr1.config.langs.en", "finite", "nan"]),
        ({"rows_per_shard": 10**12}, [".rows_per_shard", "at most 10000", "1000000000000"]),
        ({"mixture": {"text": {"config": {"min_paragraphs": 10**8, "max_paragraphs": 10**8}}}},
         ["mixture.text.config.min_paragraphs", "at most 200", "100000000"]),
        ({"mixture": {"ocr1": {"config": {"long_side": 100_000}}}}, ["mixture.ocr1.config.long_side", "at most 8192"]),
        ({"mixture": {"chart": {"config": {"kinds": {"pie": float("inf")}}}}}, ["config.kinds.pie", "finite", "inf"]),
    ],
)
def test_non_finite_and_absurd_numbers_are_refused_before_any_work(tmp_path: Path, overrides, fragments):
    path = write_recipe(tmp_path / "bad.yaml", **overrides)
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    msg = str(err.value)
    assert msg.startswith(str(path)) and "\n" not in msg
    for frag in fragments:
        assert frag in msg, msg


def test_a_recipe_that_is_not_utf8_is_named(tmp_path: Path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\nseed: 1\n".encode("latin-1"))
    with pytest.raises(RecipeError, match=r"latin1.yaml: not UTF-8 text \(byte b'\\xe9' at offset 9\)"):
        load_recipe(path)


@pytest.mark.parametrize("data, said", [
    ({"name": "t", "seed": 1, "shards": 1, "rows_per_shard": 1, "mixtrue": {}}, "unknown key 'mixtrue' (did you mean 'mixture'?)"),
    ({"name": "t", "seed": 1, "shards": 1, "rows_per_shard": 1, "mixture": {"chrat": {}}},
     "unknown task family 'chrat' (did you mean 'chart'?)"),
    ({"name": "t", "seed": 1, "shards": 1, "rows_per_shard": 1, "mixture": {"ocr1": {"wieght": 1}}},
     "unknown key 'wieght' (did you mean 'weight'?)"),
    ({"name": "t", "seed": 1, "shards": 1, "rows_per_shard": 1, "mixture": {"ocr1": {"config": {"scan_prb": 0.1}}}},
     "scan_prb: unknown option (value 0.1) (did you mean 'scan_prob'?)"),
])
def test_a_misspelt_recipe_key_says_did_you_mean(data, said):
    with pytest.raises(RecipeError) as err:
        parse_recipe(data, source="r.yaml")
    assert said in str(err.value), str(err.value)
