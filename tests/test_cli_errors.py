"""The CLIs explain themselves (issue 17 item 10, issue 16's CLI errors): every option has
help text and shows its default; an unknown key or flag says "did you mean"; every error is
one line naming the file or argument at fault (exit 2 for usage, 1 for bad data), never
wrapped in quotes; a closed pipe is quiet."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from synth.cli import run
from tests.conftest import REPO, run_cli


def _parsers() -> dict[str, argparse.ArgumentParser]:
    import annotate.__main__ as annotate_cli
    import train.__main__ as train_cli
    import train.evaluate
    import train.generate

    return {"train": train_cli.build_parser(), "annotate": annotate_cli.build_parser(),
            "train.generate": train.generate.build_parser(), "train.evaluate": train.evaluate.build_parser()}


def _options(parser: argparse.ArgumentParser, where: str):
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield from _options(sub, f"{where} {name}")
        elif not isinstance(a, argparse._HelpAction):
            yield where, a


def test_every_option_has_help_and_shows_its_default():
    seen = 0
    for name, parser in _parsers().items():
        for where, a in _options(parser, name):
            flag = "/".join(a.option_strings) or a.dest
            assert a.help and a.help.strip(), f"{where} {flag}: no help"
            if a.option_strings and not a.required:
                assert "default" in a.help, f"{where} {flag}: help does not show the default: {a.help!r}"
            seen += 1
        parser.format_help()  # help text with % in it must still format
    assert seen > 60
    # python -m train's flags come from TrainArgs' fields, their help from its docstring:
    # a field added without a docstring entry fails here.
    from train.__main__ import field_help
    from train.loop import TrainArgs
    import dataclasses

    helps = field_help()
    missing = [f.name for f in dataclasses.fields(TrainArgs) if not helps.get(f.name)]
    assert not missing, f"TrainArgs fields without a docstring entry: {missing}"
    assert helps["lr"].startswith("peak learning rate") and "gundam" in helps["mode"]


def test_unknown_keys_and_flags_say_did_you_mean(tmp_path, capsys):
    from train.__main__ import main as train_main
    from train.configs import load_config

    cfg = tmp_path / "model.yaml"
    cfg.write_text("base: tiny\ndecodr:\n  layers: 1\n")
    with pytest.raises(ValueError, match=r"unknown key 'decodr' \(did you mean 'decoder'\?\)"):
        load_config(str(cfg))
    cfg.write_text("base: tiny\ndecoder:\n  layrs: 1\n")
    with pytest.raises(ValueError, match=r"decoder.layrs: unknown option \(did you mean 'layers'\?\)"):
        load_config(str(cfg))
    with pytest.raises(ValueError, match=r"'tinny' unknown \(did you mean 'tiny'\?\)"):
        load_config("tinny")
    with pytest.raises(SystemExit) as ex:  # argparse's own exit
        run(train_main, ["--data", "x", "--out", "y", "--batchsize", "2"])
    assert ex.value.code == 2
    assert "unrecognized arguments: --batchsize 2 (did you mean '--batch-size'?)" in capsys.readouterr().err


def test_train_bad_arguments_give_one_line_and_exit_2(demo_dataset, tmp_path, capsys):
    from train.__main__ import main as train_main

    common = ["--out", str(tmp_path / "run"), "--device", "cpu", "--config", "tiny"]
    cases = [
        (["--data", str(tmp_path / "nowhere")], f"--data {tmp_path / 'nowhere'}: no such file"),
        (["--data", str(demo_dataset), "--config", "tinny"], "--config tinny: neither a named config"),
        (["--data", str(demo_dataset), "--config", str(tmp_path / "m.yaml")], f"--config {tmp_path / 'm.yaml'}"),
        (["--data", str(demo_dataset), "--init-from", str(tmp_path / "s1"), "--stage", "2"], "--init-from"),
        (["--data", str(demo_dataset), "--stage", "3"], "--stage 3: valid stages are 1 and 2"),
        (["--data", str(demo_dataset), "--keep", "0"], "--keep 0: must be >= 1"),
    ]
    for extra, want in cases:
        code = run(train_main, common + extra, prog="python -m train")
        err = capsys.readouterr().err
        assert code == 2, (extra, err)
        assert err.count("\n") == 1 and err.startswith("python -m train: error: ") and want in err, (extra, err)
    assert "did you mean 'tiny'" in run_and_err(train_main, common + cases[1][0], capsys)
    assert not (tmp_path / "run").exists()  # refused before any work
    # A config file with an unknown key is bad data: exit 1, one line naming the file.
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: tiny\nencoder:\n  sam_widht: 8\n")
    code = run(train_main, common + ["--data", str(demo_dataset), "--config", str(bad)], prog="python -m train")
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and str(bad) in err and "did you mean 'sam_width'" in err, err


def run_and_err(main, argv, capsys) -> str:
    run(main, argv)
    return capsys.readouterr().err


def test_train_module_exits_2_with_one_line():
    """The real entry point (``python -m train``), not only main()."""
    res = run_cli("-m", "train", "--data", "/nonexistent/shards", "--out", "/tmp/never-made-run")
    assert res.returncode == 2, res.stderr
    assert res.stderr == "python -m train: error: --data /nonexistent/shards: no such file or directory\n"


def test_annotate_errors_are_one_unquoted_line(demo_dataset, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run_cli("-m", "annotate", "stats", str(empty))
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr == f"python -m annotate: error: {empty}: no shards here (no manifest.json listing any, " \
                         "no data-*-of-*.arrow)\n"
    res = run_cli("-m", "annotate", "stats", str(tmp_path / "missing"))
    assert res.returncode == 2
    assert res.stderr == f"python -m annotate: error: {tmp_path / 'missing'}: no such file or directory\n"
    # A KeyError's message used to come out as error: "…" (str() of a KeyError quotes it).
    res = run_cli("-m", "annotate", "show", str(demo_dataset), "mixture-demo/9/9")
    assert res.returncode == 2
    assert res.stderr.startswith(f"python -m annotate: error: {demo_dataset}: no row with id 'mixture-demo/9/9'")
    assert res.stderr.count("\n") == 1
    res = run_cli("-m", "annotate", "sheet", str(demo_dataset), "--family", "nope", "--out", str(tmp_path / "s.png"))
    assert res.returncode == 1 and "no rows of family nope" in res.stderr and not (tmp_path / "s.png").exists()


def test_a_closed_pipe_is_quiet(demo_dataset):
    """``python -m annotate stats DIR | head`` with head gone before the output: no traceback."""
    for args in (["stats", str(demo_dataset)], ["stats", str(demo_dataset), "--json"]):
        p = subprocess.Popen([sys.executable, "-m", "annotate", *args], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        p.stdout.close()  # the reader is gone before the first line
        err = p.stderr.read().decode()
        code = p.wait(timeout=120)
        assert err == "" and code == 141, (code, err)
    # And the ordinary case, reading the first lines only, ends cleanly.
    res = subprocess.run(f"{sys.executable} -m annotate stats {demo_dataset} --json | head -n 2", shell=True,
                         cwd=REPO, capture_output=True, text=True)
    assert res.stdout.startswith("{") and res.stderr == ""


def test_report_of_a_missing_dataset_names_it(tmp_path: Path):
    res = run_cli("-m", "annotate", "report", str(tmp_path / "none"), "--out", str(tmp_path / "r.html"))
    assert res.returncode == 2 and str(tmp_path / "none") in res.stderr and res.stderr.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


def test_evaluate_names_a_missing_run_in_one_line(demo_dataset, tmp_path, capsys):
    from train.evaluate import main as evaluate_main

    code = run(evaluate_main, ["--run", str(tmp_path / "no-run"), "--data", str(demo_dataset)],
               prog="python -m train.evaluate")
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"python -m train.evaluate: error: --run {tmp_path / 'no-run'}: no such file or directory\n"
