"""One thread of native math per shard-making process.

A worker uses one core, as the runner plans. NumPy's OpenBLAS starts a thread per core
when it loads and keeps them spinning while the process imports the rest: about 0.1 s of
CPU per process, stolen from the other workers' cores (measured: importing the OCR 1.0
generator costs 0.32 s of CPU in 0.21 s of wall time, and 0.24 s in 0.24 s with one
thread; a 20-page run of ``python -m synth`` 1.35 s of CPU against 1.07 s). The engine
makes no matrix product large enough to gain from those threads (OpenCV is held to one
thread too, ``synth.opencv``), so its own processes load the math libraries with one.

The libraries read these variables once, as they load, so they are set before NumPy is
imported: first thing in ``python -m synth``, and in the environment the process pool's
workers are spawned with. A value the user set is kept. Ray sets ``OMP_NUM_THREADS`` to a
task's CPUs itself, which OpenBLAS reads as well.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def one_thread_here() -> None:
    """Ask the math libraries this process loads from now on for one thread each (a value
    already in the environment is kept)."""
    for name, value in ONE_THREAD.items():
        os.environ.setdefault(name, value)


@contextlib.contextmanager
def one_thread_children() -> Iterator[None]:
    """Processes started within this block load their math libraries with one thread each;
    this process's environment is as it was afterwards."""
    saved = {name: os.environ.get(name) for name in ONE_THREAD}
    one_thread_here()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
