"""bench/bench_instructions.py: its page-making script runs against the engine, and the
count is read from Valgrind's summary (a stand-in ``valgrind`` that runs the command)."""

from __future__ import annotations

import os
import stat

import pytest

from bench import bench_instructions as bi
from tests.conftest import REPO


def test_the_counted_script_makes_pages_and_the_count_is_read(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "valgrind"
    fake.parent.mkdir()
    # Drop valgrind's own options, run the program, then report as cachegrind does.
    fake.write_text('#!/bin/sh\nwhile [ "${1#--}" != "$1" ]; do shift; done\n"$@" || exit $?\n'
                    'echo "==42== I   refs:      1,234,567" >&2\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    assert bi.count(REPO, 1, 1, 1.0) == 1_234_567  # a photographed page: every stage runs

    fake.write_text('#!/bin/sh\necho "valgrind: no such tool" >&2\nexit 1\n')
    with pytest.raises(SystemExit, match="valgrind run of .* failed"):
        bi.count(REPO, 1, 0, 0.0)
