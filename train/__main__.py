"""``python -m train``: train stage 1 or 2 (alone or under torchrun). See docs/training.md."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import typing

from synth.cli import Parser, UsageError, run, show_defaults
from train.loop import TrainArgs, train

# "    name: text" or "    a, b, c: shared text" in TrainArgs' docstring; deeper lines continue it.
_ENTRY = re.compile(r"^    ([a-z_][a-z0-9_]*(?:, [a-z_][a-z0-9_]*)*): (.*)$")


def field_help(cls: type = TrainArgs) -> dict[str, str]:
    """Each field's help text, read from the class docstring's ``name: text`` entries
    (continuation lines indented deeper; ``a, b: text`` documents several fields)."""
    out: dict[str, str] = {}
    names: list[str] = []
    for line in (cls.__doc__ or "").splitlines():
        m = _ENTRY.match(line)
        if m:
            names = m.group(1).split(", ")
            for n in names:
                out[n] = m.group(2).strip()
        elif names and line.startswith("      ") and line.strip():
            for n in names:
                out[n] += " " + line.strip()
        else:
            names = []
    return out


def build_parser() -> argparse.ArgumentParser:
    """One flag per TrainArgs field (``--batch-size`` for batch_size ...), its help from
    TrainArgs' docstring and its default shown."""
    p = Parser(prog="python -m train", description="Train the OCR model (stage 1 or 2). Re-running a command "
               "resumes its run from the newest intact checkpoint. See docs/training.md.")
    hints = typing.get_type_hints(TrainArgs)
    helps = field_help()
    for f in dataclasses.fields(TrainArgs):
        flag = "--" + f.name.replace("_", "-")
        typ = hints[f.name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        text = helps.get(f.name, "").replace("``", "").replace("%", "%%")  # argparse %-formats help
        if typ is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        elif typing.get_origin(typ) is list:
            p.add_argument(flag, nargs="+", default=default, required=f.name == "data", help=text)
        else:
            p.add_argument(flag, type=typ, default=default, required=f.name == "out", help=text)
    p.add_argument("--print-args", action="store_true", help="print the resolved options as JSON and exit")
    return show_defaults(p)


def _check_paths(args: TrainArgs) -> None:
    """Paths given on the command line that do not exist: usage errors, before any work."""
    from train.configs import _CONFIGS

    for flag, paths in (("--data", args.data), ("--eval-data", args.eval_data)):
        for path in paths:
            if not os.path.exists(path):
                raise UsageError(f"{flag} {path}: no such file or directory")
    for flag, path in (("--init-from", args.init_from), ("--tokenizer", args.tokenizer)):
        if path and not os.path.exists(path):
            raise UsageError(f"{flag} {path}: no such file or directory")
    if args.config not in _CONFIGS and not os.path.isfile(args.config):
        from synth.suggest import did_you_mean

        hint = did_you_mean(args.config, _CONFIGS) if not args.config.endswith((".yaml", ".yml", ".json")) else ""
        raise UsageError(f"--config {args.config}: neither a named config ({', '.join(sorted(_CONFIGS))}){hint} "
                         "nor an existing .yaml/.json file")


def main(argv: list[str] | None = None) -> int:
    """Parse flags, train, print the final step."""
    ns = build_parser().parse_args(argv)
    fields = {f.name for f in dataclasses.fields(TrainArgs)}
    args = TrainArgs(**{k: v for k, v in vars(ns).items() if k in fields})
    try:
        args.validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if ns.print_args:
        print(json.dumps(dataclasses.asdict(args), indent=1))
        return 0
    _check_paths(args)
    from train.official.config import OfficialFormatError

    try:
        summary = train(args)
    except OfficialFormatError as exc:  # a snapshot or tokenizer that does not fit: refused before training
        raise UsageError(str(exc)) from None
    print(json.dumps({"step": summary["step"], "run_dir": summary["run_dir"]}))
    return 0


if __name__ == "__main__":
    sys.exit(run(main, prog="python -m train"))
