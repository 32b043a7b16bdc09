#!/usr/bin/env bash
# Run HERE (it needs PyPI): download the wheels the GPU machine lacks into .wheels/
# (ignored by git), for the device's Python 3.12 on x86_64. The device image already has
# torch, pyarrow, pillow, numpy, matplotlib, tokenizers, safetensors, pyyaml and tqdm.
# OCR 1.0 pages need reportlab, pymupdf, pyphen, jieba and essential-generators; add rdkit and shapely for the full
# mixture (rdkit alone is ~35 MB: mind the 64 MiB a call may carry).
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf .wheels && mkdir -p .wheels  # only what this script fetches travels
# PyMuPDF 2.x wheels are ~69 MB (over the carry limit); 1.28 (25 MB) passes tests/test_ocr1.py too.
pkgs=("reportlab" "pymupdf<2" "pyphen" "essential-generators")
if [[ "${1:-}" == "--mixture" ]]; then pkgs+=("rdkit" "shapely"); fi
python -m pip download --quiet --only-binary=:all: --no-deps --python-version 3.12 \
    --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 -d .wheels "${pkgs[@]}"
# jieba ships only as a source archive (pure Python, 19 MB, for its dictionary): build its wheel.
python -m pip wheel --quiet --no-deps -w .wheels "jieba>=0.42"
du -sh .wheels
