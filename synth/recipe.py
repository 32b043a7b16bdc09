"""Recipes: the YAML files under manifests/ that a run is started from.

A recipe names the run, its seed, how many shards of how many samples, and the mixture:
for each family a weight and the family's own config. Everything is validated before any
work starts; errors name the file, the key path and the value, and say what is valid.

    name: ocr1-demo
    seed: 20261125
    shards: 4
    rows_per_shard: 16
    mixture:
      ocr1:
        weight: 1.0
        config: {long_side: 1024, image_format: jpeg}
    splits:            # optional: consecutive shard ranges, in order (docs/formats.md)
      train: 3
      test: 1

Numbers must be finite and within documented bounds (``MAX_ROWS_PER_SHARD``,
``OPTION_LIMITS``): a NaN weight or a billion rows per shard is refused here, not found
out hours into a run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from synth import families
from synth.suggest import did_you_mean

TOP_LEVEL_KEYS = {"name", "seed", "shards", "rows_per_shard", "mixture", "description", "splits"}
MIXTURE_KEYS = {"weight", "config"}

MAX_SHARDS = 99_999  # the width of the shard number in data-NNNNN-of-MMMMM.arrow
# A worker holds a whole shard in memory before writing it: 10,000 rows of 1024 px JPEG
# pages are about 1.5 GB.
MAX_ROWS_PER_SHARD = 10_000
MAX_WEIGHT = 1e6
# Upper bounds of family config options, by option name. They stop values that would make
# one sample take minutes or gigabytes (a 100,000 px page, 10^8 paragraphs) before any work
# starts; every other number is bounded by OPTION_CEILING.
_PIXELS = 8192
OPTION_LIMITS: dict[str, float] = {
    **dict.fromkeys(("long_side", "min_long_side", "max_long_side", "min_size", "max_size", "size_min", "size_max"),
                    _PIXELS),
    **dict.fromkeys(("min_paragraphs", "max_paragraphs", "min_sentences", "max_sentences"), 200),
    **dict.fromkeys(("min_categories", "max_categories", "max_series", "min_objects", "max_objects", "max_queries",
                     "locate_queries", "min_heavy_atoms", "max_heavy_atoms", "max_rings"), 200),
    **dict.fromkeys(("max_attempts", "build_attempts", "placement_attempts", "chart_pool", "equation_pool"), 10_000),
    **dict.fromkeys(("font_size_min", "font_size_max", "font_px_min", "font_px_max"), 500),
    **dict.fromkeys(("min_inches", "max_inches"), 100),
    "supersample": 16,
    "max_chars": 1_000_000,
}
OPTION_CEILING = 1e6
_SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")  # what `datasets` accepts as a split name


class RecipeError(ValueError):
    """A recipe that cannot be run; the message names file, key and value."""


@dataclass(frozen=True)
class MixtureEntry:
    """One family of the mixture: its weight and validated config object."""

    family: str
    weight: float
    config: Any  # the family's Config dataclass instance


@dataclass(frozen=True)
class Recipe:
    """A validated recipe."""

    name: str
    seed: int
    shards: int
    rows_per_shard: int
    mixture: tuple[MixtureEntry, ...]
    source: str = "<memory>"
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    splits: tuple[tuple[str, int], ...] = ()  # (name, shards), consecutive ranges in order

    @property
    def total_rows(self) -> int:
        """Samples in the whole run."""
        return self.shards * self.rows_per_shard

    @property
    def shard_paths(self) -> list[str]:
        """Each shard's path relative to the run directory, in shard order."""
        from synth.shards import shard_paths

        return shard_paths(self.shards, self.splits)

    def split_of(self, shard: int) -> str | None:
        """The split that shard ``shard`` belongs to (None without splits)."""
        first = 0
        for name, n in self.splits:
            if shard < first + n:
                return name
            first += n
        return None

    def resolved(self) -> dict[str, Any]:
        """The recipe with every family config filled with its defaults (manifest.json)."""
        out = {
            "name": self.name,
            "seed": self.seed,
            "shards": self.shards,
            "rows_per_shard": self.rows_per_shard,
            "description": self.description,
            "mixture": {
                e.family: {"weight": e.weight, "config": dataclasses.asdict(e.config)} for e in self.mixture
            },
        }
        if self.splits:  # only then: the fingerprint of a recipe without splits is unchanged
            out["splits"] = dict(self.splits)
        return out

    def fingerprint(self) -> str:
        """sha256 of the resolved recipe: shards of another recipe are never mixed in."""
        blob = json.dumps(self.resolved(), sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            return False
        if not args:
            return True
        inner = args[0]
        return all(_type_ok(v, inner) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            return False
        kt, vt = (typing.get_args(tp) + (Any, Any))[:2]
        return all(_type_ok(k, kt) and _type_ok(v, vt) for k, v in value.items())
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def check_number(value: Any, where: str, limit: float = OPTION_CEILING) -> None:
    """Numbers in ``value`` (nested in lists and mappings too) are finite, not negative and
    at most ``limit``; raise RecipeError naming ``where`` and the value otherwise."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise RecipeError(f"{where}: must be a finite number, got {value!r}")
        if value < 0:
            raise RecipeError(f"{where}: must not be negative, got {value!r}")
        if value > limit:
            raise RecipeError(f"{where}: at most {limit:g}, got {value!r} (limits: docs/formats.md)")
    elif isinstance(value, dict):
        for k, v in value.items():
            check_number(v, f"{where}.{k}", limit)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_number(v, f"{where}[{i}]", limit)


def check_options(config_cls: type, values: dict[str, Any], where: str) -> dict[str, Any]:
    """``values`` checked against a Config dataclass's fields (known name, type, finite, not
    negative, within ``OPTION_LIMITS``) and ready to pass to it (ints given for float
    fields become floats).

    Raises RecipeError naming ``where``, the key and the value, and what would be valid.
    """
    if not isinstance(values, dict):
        raise RecipeError(f"{where}: expected a mapping of config options, got {type(values).__name__} {values!r}")
    hints = typing.get_type_hints(config_cls)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    for key, value in values.items():
        if key not in fields:
            raise RecipeError(
                f"{where}.{key}: unknown option (value {value!r}){did_you_mean(key, fields)}; "
                f"valid options: {', '.join(sorted(fields))}"
            )
        tp = hints[key]
        if not _type_ok(value, tp):
            raise RecipeError(f"{where}.{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
        check_number(value, f"{where}.{key}", OPTION_LIMITS.get(key, OPTION_CEILING))
    return {k: (float(v) if hints[k] is float and isinstance(v, int) else v) for k, v in values.items()}


def build_config(config_cls: type, values: dict[str, Any], where: str) -> Any:
    """Validate ``values`` against a family's Config dataclass and build it."""
    kwargs = check_options(config_cls, values, where)
    try:
        cfg = config_cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"{where}: {exc}") from exc
    return cfg


def _require_int(data: dict, key: str, where: str, minimum: int, maximum: int | None = None) -> int:
    if key not in data:
        raise RecipeError(f"{where}: missing required key {key!r} (an integer >= {minimum})")
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise RecipeError(f"{where}.{key}: expected an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise RecipeError(f"{where}.{key}: must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise RecipeError(f"{where}.{key}: at most {maximum}, got {value!r} (limits: docs/formats.md)")
    return value


def _parse_splits(value: Any, shards: int | None, where: str) -> tuple[tuple[str, int], ...]:
    """``{name: shard count}`` in order; the counts must add up to ``shards`` when it is given."""
    if isinstance(value, (list, tuple)):  # [(name, n), ...] from the command line
        value = dict(value)
    if not isinstance(value, dict) or not value:
        raise RecipeError(f"{where}: expected a mapping of split name -> shard count (e.g. {{train: 7, test: 1}}), "
                          f"got {value!r}")
    out = []
    for name, n in value.items():
        if not isinstance(name, str) or not _SPLIT_NAME.match(name):
            raise RecipeError(f"{where}: split name {name!r} must be letters, digits and _ (e.g. train, test)")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise RecipeError(f"{where}.{name}: expected a shard count >= 1, got {n!r}")
        out.append((name, n))
    total = sum(n for _, n in out)
    if shards is not None and total != shards:
        raise RecipeError(f"{where}: the splits hold {total} shards ({', '.join(f'{k} {n}' for k, n in out)}) "
                          f"but the recipe has shards: {shards}; make them agree")
    return tuple(out)


def parse_recipe(data: Any, source: str = "<memory>", overrides: dict[str, Any] | None = None) -> Recipe:
    """Validate a recipe mapping (as loaded from YAML) and return a Recipe.

    ``overrides`` replaces top-level keys (``shards``, ``rows_per_shard``, ``seed``,
    ``splits`` as [(name, shards), ...]) before validation, for command-line flags.
    """
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a mapping with keys {sorted(TOP_LEVEL_KEYS)}, got {type(data).__name__}")
    data = dict(data)
    overrides = overrides or {}
    for k, v in overrides.items():
        if v is not None:
            data[k] = v
    if overrides.get("splits") is not None and overrides.get("shards") is None:
        data.pop("shards", None)  # splits given on the command line set the shard count
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise RecipeError(f"{source}: unknown key {key!r}{did_you_mean(key, TOP_LEVEL_KEYS)}; "
                              f"valid keys: {', '.join(sorted(TOP_LEVEL_KEYS))}")
    name = data.get("name")
    if not isinstance(name, str) or not name or "/" in name:
        raise RecipeError(f"{source}.name: expected a non-empty string without '/', got {name!r}")
    seed = _require_int(data, "seed", source, 0)
    splits: tuple[tuple[str, int], ...] = ()
    if data.get("splits") is not None:
        splits = _parse_splits(data["splits"], None, f"{source}.splits")
        data.setdefault("shards", sum(n for _, n in splits))
    shards = _require_int(data, "shards", source, 1, MAX_SHARDS)
    rows = _require_int(data, "rows_per_shard", source, 1, MAX_ROWS_PER_SHARD)
    if splits:
        splits = _parse_splits(dict(splits), shards, f"{source}.splits")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise RecipeError(f"{source}.description: expected a string, got {description!r}")
    mixture = data.get("mixture")
    if not isinstance(mixture, dict) or not mixture:
        raise RecipeError(f"{source}.mixture: expected a non-empty mapping of family -> {{weight, config}}, got {mixture!r}")
    entries = []
    for fam, spec in mixture.items():
        where = f"{source}.mixture.{fam}"
        if fam not in families.FAMILIES:
            raise RecipeError(f"{where}: unknown task family {fam!r}{did_you_mean(fam, families.known())}; "
                              f"valid families: {', '.join(families.known())}")
        spec = {} if spec is None else spec
        if not isinstance(spec, dict):
            raise RecipeError(f"{where}: expected a mapping with keys weight, config; got {spec!r}")
        for key in spec:
            if key not in MIXTURE_KEYS:
                raise RecipeError(f"{where}: unknown key {key!r}{did_you_mean(key, MIXTURE_KEYS)}; valid keys: config, weight")
        weight = spec.get("weight", 1.0)
        if not isinstance(weight, (int, float)) or isinstance(weight, bool):
            raise RecipeError(f"{where}.weight: expected a number, got {type(weight).__name__} {weight!r}")
        check_number(weight, f"{where}.weight", MAX_WEIGHT)
        module = families.generator_module(fam)
        config = build_config(module.Config, spec.get("config") or {}, f"{where}.config")
        if weight > 0:
            entries.append(MixtureEntry(fam, float(weight), config))
    if not entries:
        raise RecipeError(f"{source}.mixture: every weight is 0; at least one family needs a positive weight")
    return Recipe(name, seed, shards, rows, tuple(entries), source=source, description=description, raw=data,
                  splits=splits)


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read and validate a YAML recipe file."""
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"{p}: recipe file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{p}: not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} at offset "
                          f"{exc.start}); save the recipe as UTF-8") from exc
    except OSError as exc:
        raise RecipeError(f"{p}: cannot read the recipe: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"{p}: not valid YAML: {' '.join(str(exc).split())}") from exc
    return parse_recipe(data, source=str(p), overrides=overrides)


_GOLDEN = (5 ** 0.5 - 1) / 2


def row_families(recipe: Recipe, shard: int) -> list[str]:
    """The family of each row of shard ``shard``, in row order.

    Global slot ``i`` takes the family whose weight interval of [0, 1) holds
    ``frac((i + 0.5) * golden)``: a low-discrepancy sequence, so every shard, and the whole
    run, holds each family in proportion to its weight to within a few samples, families
    are interleaved within a shard, and a shard's list needs no knowledge of other shards.
    """
    total_w = sum(e.weight for e in recipe.mixture)
    edges, acc = [], 0.0
    for e in recipe.mixture:
        acc += e.weight / total_w
        edges.append((acc, e.family))
    out = []
    base = shard * recipe.rows_per_shard
    for r in range(recipe.rows_per_shard):
        u = ((base + r + 0.5) * _GOLDEN) % 1.0
        fam = next((f for edge, f in edges if u < edge), edges[-1][1])
        out.append(fam)
    return out
