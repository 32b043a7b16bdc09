"""PyMuPDF, imported without its layout and markdown add-ons.

PyMuPDF 2.0 imports ``pymupdf.layout`` and ``pymupdf4llm`` from its own ``__init__``
whenever they are installed: the first loads onnxruntime and an ONNX model for
``Page.get_layout``, the second tabulate and its helpers for ``pymupdf.to_markdown``;
together about 0.5 s per process, for functions the engine never calls. This module
imports PyMuPDF with those two imports refused, then lifts the refusal, so code that
imports them itself still gets them (``pymupdf.to_markdown`` stays unavailable in a
process that imported PyMuPDF through here). Import PyMuPDF as
``from synth.mupdf import pymupdf`` in the engine.
"""

from __future__ import annotations

import sys


_ADD_ONS = ("pymupdf.layout", "pymupdf4llm")


def _load():
    if "pymupdf" in sys.modules:  # imported earlier by someone else: use it as it is
        return sys.modules["pymupdf"]
    blocked = [name for name in _ADD_ONS if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # `import name` raises ImportError, which PyMuPDF expects
    try:
        import pymupdf
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    return pymupdf


pymupdf = _load()
