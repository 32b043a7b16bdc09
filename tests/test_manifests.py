"""Recipes in manifests/ that say they follow another recipe's mixture really do: the same
families, the same relative weights and the same family configs (only the run's size,
seed and name differ). Issue 17: mixture_demo.yaml claimed the default mixture's weights
but had none of its scan or photo pages, so the README's training demo never saw them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from synth.recipe import Recipe, load_recipe, parse_recipe

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
# A recipe says what it follows in a comment line: "# follows: mixture_default.yaml".
FOLLOWS = re.compile(r"^#\s*follows:\s*(\S+\.yaml)\s*$", re.M)
# Words that claim another mixture's make-up; a recipe using them must name what it follows.
CLAIMS = re.compile(r"default mixture|reference (weights|mixture)", re.I)


def _mixture_differences(recipe: Recipe, reference: Recipe) -> list[str]:
    """What differs between two recipes' mixtures: families, relative weights, configs."""
    ours = {e.family: e for e in recipe.mixture}
    theirs = {e.family: e for e in reference.mixture}
    out = [f"family {f} only in {reference.source}" for f in sorted(set(theirs) - set(ours))]
    out += [f"family {f} only in {recipe.source}" for f in sorted(set(ours) - set(theirs))]
    total_ours = sum(e.weight for e in ours.values())
    total_theirs = sum(e.weight for e in theirs.values())
    for fam in sorted(set(ours) & set(theirs)):
        a, b = ours[fam].weight / total_ours, theirs[fam].weight / total_theirs
        if abs(a - b) > 1e-9:
            out.append(f"{fam}: weight share {a:.4f} against {b:.4f}")
        ca, cb = dataclasses.asdict(ours[fam].config), dataclasses.asdict(theirs[fam].config)
        for key in sorted(ca):
            if ca[key] != cb[key]:
                out.append(f"{fam}.config.{key}: {ca[key]!r} against {cb[key]!r}")
    return out


def _followers() -> list[tuple[Path, Path]]:
    return [(p, MANIFESTS / m.group(1)) for p in sorted(MANIFESTS.glob("*.yaml"))
            for m in [FOLLOWS.search(p.read_text(encoding="utf-8"))] if m]


def test_recipes_that_follow_a_mixture_match_it():
    followers = _followers()
    assert (MANIFESTS / "mixture_demo.yaml", MANIFESTS / "mixture_default.yaml") in followers
    for path, ref in followers:
        assert ref.is_file(), f"{path.name} follows {ref.name}, which is not in manifests/"
        diff = _mixture_differences(load_recipe(path), load_recipe(ref))
        assert not diff, f"{path.name} says it follows {ref.name} but differs: {diff}"


def test_a_recipe_that_claims_another_mixture_names_it():
    """A claim in the comments or the description ("the default mixture's weights",
    "reference weights") is checked only when the recipe names what it follows."""
    named = {p for p, _ref in _followers()}
    for path in sorted(MANIFESTS.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        recipe = load_recipe(path)
        claims = [ln for ln in text.splitlines() if ln.startswith("#")] + [recipe.description]
        if path.name != "mixture_default.yaml" and any(CLAIMS.search(c) for c in claims):
            assert path in named, f"{path.name} claims another mixture but has no '# follows:' line"


def test_a_drifted_copy_is_caught():
    """The demo as it was (the default's weights, no ocr1 scan or photo pages) and one with
    a weight moved are both reported, naming the field."""
    default = load_recipe(MANIFESTS / "mixture_default.yaml")
    raw = {k: v for k, v in load_recipe(MANIFESTS / "mixture_demo.yaml").raw.items()}
    no_looks = {**raw, "mixture": {**raw["mixture"], "ocr1": {"weight": 0.45}}}
    diff = _mixture_differences(parse_recipe(no_looks, "old_demo"), default)
    assert diff == ["ocr1.config.photo_prob: 0.0 against 0.15", "ocr1.config.scan_prob: 0.0 against 0.25"]
    moved = {**raw, "mixture": {**raw["mixture"], "text": {"weight": 0.2}}}
    assert any(d.startswith("text: weight share") for d in _mixture_differences(parse_recipe(moved, "x"), default))
