#!/usr/bin/env bash
# Run ON THE GPU MACHINE, from the repo root, with .wheels carried:
#   run(command="bash bench/gpu/run.sh", carry=[".wheels"])
# Installs the carried wheels, generates OCR 1.0 shards with the in-process executor on
# the machine's cores, then trains the `small` config in bf16 and writes every figure and
# log under $OUT (tokens/s, MFU, loader images/s vs step images/s).
set -euo pipefail
OUT="${OUT:-/tmp/out}"
mkdir -p "$OUT"
python3 -m pip install --quiet --no-index --find-links .wheels reportlab pymupdf faker 2>&1 | tail -2
python3 -m pip install --quiet --no-deps --no-build-isolation -e . 2>&1 | tail -2
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -m synth manifests/ocr1_demo.yaml --out /tmp/shards --executor local --workers "$(nproc)" \
    --shards 16 --rows-per-shard 32 --no-progress | tee "$OUT/synth.json"
for mode in base tiny; do
  python3 bench/bench_train.py --data /tmp/shards --config small --mode "$mode" --steps 40 --batch-size 16 \
      --workers 8 --json "$OUT/bench_train_${mode}.json" 2>&1 | tail -20 | tee "$OUT/bench_train_${mode}.log"
done
python3 bench/bench_train.py --data /tmp/shards --config small --mode base --steps 40 --batch-size 16 \
    --workers 8 --compile --json "$OUT/bench_train_base_compile.json" 2>&1 | tail -20 | tee "$OUT/bench_train_base_compile.log"
