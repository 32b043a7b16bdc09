"""How the project's ``python -m`` entry points end: one line per error, agreed exit codes.

    exit 0    done
    exit 1    bad data: a shard, manifest, config file or checkpoint that cannot be used
    exit 2    usage: an option or argument that cannot work (argparse's own errors too)
    exit 130  interrupted (Ctrl-C)
    exit 141  stdout closed early (``... | head``): nothing printed, as ``yes | head`` does

The message names the file or URI at fault (the raisers' job) and is printed on one
line as ``PROG: error: MESSAGE``, like argparse's. ``OCR_TRACEBACK=1`` re-raises instead,
for a developer who wants the traceback. Exceptions that are not about the input (a
TypeError in the code, a CUDA error) keep their traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import typing
from collections.abc import Callable, Sequence

USAGE = 2
DATA = 1
INTERRUPTED = 130
BROKEN_PIPE = 128 + 13  # what a shell reports for a process ended by SIGPIPE


class UsageError(Exception):
    """An argument that cannot work; the CLI prints the message and exits 2."""


class DataError(Exception):
    """Input data that cannot be used; the CLI prints the message and exits 1."""


def message(exc: BaseException) -> str:
    """The exception's text on one line, without the quotes ``str(KeyError)`` adds."""
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        text = exc.args[0]
    else:
        text = str(exc)
    text = " ".join(text.split())
    return text or type(exc).__name__


def _is_data_error(exc: BaseException) -> bool:
    if isinstance(exc, (DataError, ValueError, KeyError, OSError, UnicodeError)):
        return True
    # pyarrow's errors (a truncated or foreign Arrow file) and safetensors' own.
    return type(exc).__module__.startswith(("pyarrow", "safetensors"))


def _silence_stdout() -> None:
    # Python flushes stdout again at exit; point it at /dev/null so that flush cannot fail.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None, prog: str = "") -> int:
    """Call ``main(argv)`` and turn what it raises into one line and an exit code (above)."""
    prog = prog or os.path.basename(sys.argv[0])
    try:
        code = main(argv)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - sorted below; the rest re-raised
        if os.environ.get("OCR_TRACEBACK"):
            raise
        if isinstance(exc, UsageError):
            code = USAGE
        elif _is_data_error(exc):
            code = DATA
        else:
            raise
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()
        print(f"{prog}: error: {message(exc)}", file=sys.stderr)
        return code


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) if value else "none"
    if value is None or value == "":
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("\n", "\\n")


def show_defaults(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Append ``(default: X)`` to the help of every option of ``parser`` and its
    subcommands whose help does not state a default yet (lists shown space-separated,
    booleans as on/off). Positional and required arguments have none to show."""
    for action in parser._actions:  # argparse keeps no public list of its actions
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                show_defaults(sub)
            continue
        if action.help in (None, argparse.SUPPRESS) or not action.option_strings or action.required:
            continue
        if isinstance(action, argparse._HelpAction) or "default" in action.help:
            continue
        action.help += f" (default: {_shown(action.default)})".replace("%", "%%")
    return parser


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose unknown-option error suggests the closest option."""

    def error(self, message: str) -> typing.NoReturn:  # argparse's hook; exits 2
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            from synth.suggest import did_you_mean

            flags = _flags(self)
            unknown = [w for w in message[len(prefix):].split() if w.startswith("-")]
            if unknown:
                message += did_you_mean(unknown[0].split("=")[0], flags)
        super().error(message)


def _flags(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string of ``parser`` and of its subcommands."""
    out = []
    for a in parser._actions:
        out += a.option_strings
        if isinstance(a, argparse._SubParsersAction):
            for sub in a.choices.values():
                out += _flags(sub)
    return out
