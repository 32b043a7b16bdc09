"""``python -m train``: train stage 1 or 2 (alone or under torchrun). See docs/training.md."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing

from train.loop import TrainArgs, train


def build_parser() -> argparse.ArgumentParser:
    """One flag per TrainArgs field (``--batch-size`` for batch_size ...)."""
    p = argparse.ArgumentParser(prog="python -m train", description="Train the OCR model (stage 1 or 2).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    hints = typing.get_type_hints(TrainArgs)
    for f in dataclasses.fields(TrainArgs):
        flag = "--" + f.name.replace("_", "-")
        typ = hints[f.name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if typ is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif typing.get_origin(typ) is list:
            p.add_argument(flag, nargs="+", default=default, required=f.name == "data")
        else:
            p.add_argument(flag, type=typ, default=default, required=f.name == "out")
    p.add_argument("--print-args", action="store_true", help="print the resolved options as JSON and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse flags, train, print the final step."""
    ns = build_parser().parse_args(argv)
    fields = {f.name for f in dataclasses.fields(TrainArgs)}
    args = TrainArgs(**{k: v for k, v in vars(ns).items() if k in fields})
    if ns.print_args:
        print(json.dumps(dataclasses.asdict(args), indent=1))
        return 0
    from train.official.config import OfficialFormatError

    try:
        summary = train(args)
    except OfficialFormatError as exc:  # a snapshot or tokenizer refused before training: one line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"step": summary["step"], "run_dir": summary["run_dir"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
