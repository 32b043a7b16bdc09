"""PyMuPDF, imported without its layout add-on.

PyMuPDF 2.0 imports ``pymupdf.layout`` from its own ``__init__`` whenever the
``pymupdf_layout`` package is installed; that import loads onnxruntime and an ONNX model
(about 0.5 s per process) for ``Page.get_layout``, which the engine never calls. This
module imports PyMuPDF with that one import refused, then lifts the refusal, so code that
asks for ``pymupdf.layout`` itself still gets it. Import PyMuPDF as
``from synth.mupdf import pymupdf`` in the engine.
"""

from __future__ import annotations

import sys


def _load():
    if "pymupdf" in sys.modules:  # imported earlier by someone else: use it as it is
        return sys.modules["pymupdf"]
    blocked = "pymupdf.layout" not in sys.modules
    if blocked:
        sys.modules["pymupdf.layout"] = None  # `import pymupdf.layout` raises ImportError
    try:
        import pymupdf
    finally:
        if blocked and sys.modules.get("pymupdf.layout", 0) is None:
            del sys.modules["pymupdf.layout"]
    return pymupdf


pymupdf = _load()
