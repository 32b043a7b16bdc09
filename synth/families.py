"""The registry of data families: which generator and which annotator serve each.

A family is a pair of modules:
- ``synth.<x>`` with ``Config`` (a dataclass of the family's recipe options, every field
  defaulted) and ``generate(config: Config, rng: numpy.random.Generator) -> Sample``;
- ``annotate.<x>`` with ``records(sample) -> list[Record]`` (prompts and targets),
  ``check(row: dict) -> list[str]`` (problems found in a stored row, empty when sound) and
  ``overlay(row: dict) -> PIL.Image.Image`` (the inspection picture for ``show``/``sheet``).
Modules are imported lazily so that one family's heavy imports (RDKit, matplotlib) are
paid only by recipes that use it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

# family name -> (generator module, annotator module)
FAMILIES: dict[str, tuple[str, str]] = {
    "ocr1": ("synth.ocr1", "annotate.ocr1"),
    "chart": ("synth.charts", "annotate.charts"),
    "molecule": ("synth.molecules", "annotate.molecules"),
    "geometry": ("synth.geometry", "annotate.geometry"),
    "vision": ("synth.vision", "annotate.vision"),
    "text": ("synth.textonly", "annotate.textonly"),
}


@dataclass(frozen=True)
class Family:
    """The two modules of one family, imported."""

    name: str
    generator: ModuleType
    annotator: ModuleType


def known() -> list[str]:
    """Names of all registered families."""
    return sorted(FAMILIES)


def load(name: str) -> Family:
    """Import and return a family's generator and annotator modules."""
    if name not in FAMILIES:
        raise KeyError(f"unknown family {name!r}; valid families: {', '.join(known())}")
    gen_mod, ann_mod = FAMILIES[name]
    return Family(name, importlib.import_module(gen_mod), importlib.import_module(ann_mod))


def generator_module(name: str) -> ModuleType:
    """Import only a family's generator module (what recipe validation needs)."""
    if name not in FAMILIES:
        raise KeyError(f"unknown family {name!r}; valid families: {', '.join(known())}")
    return importlib.import_module(FAMILIES[name][0])


def annotator_module(name: str) -> ModuleType:
    """Import only a family's annotator module (what inspection needs)."""
    if name not in FAMILIES:
        raise KeyError(f"unknown family {name!r}; valid families: {', '.join(known())}")
    return importlib.import_module(FAMILIES[name][1])
