"""OpenCV, imported the engine's way: one thread, and only its baseline kernels.

Import it as ``from synth.opencv import cv2`` in the engine (the scan and photo looks, the
JPEG encoder).

- One thread (``cv2.setNumThreads(1)``): a worker uses one core, as the runner plans, and
  no result depends on how a frame was split between threads.
- Baseline kernels only (``cv2.setUseOptimized(False)``): OpenCV picks SSE4, AVX2 or
  AVX-512 versions of many functions at run time, and some of them round differently from
  the baseline code (measured on this project's pages, AVX2 against baseline: a nearest
  perspective warp moved 1-3 pixels, an affine one about 2,000, a weighted sum 4). The
  baseline code is the same on every x86-64 machine, so a page's bytes are too. It costs
  about 1 ms a photographed page.
"""

from __future__ import annotations

import cv2

cv2.setNumThreads(1)
cv2.setUseOptimized(False)
