#!/usr/bin/env bash
# Run ON THE GPU MACHINE, from the repo root, with .wheels carried (see docs/gpu.md):
#   run(command="OUT=$OUT bash bench/gpu/run.sh", carry=[".wheels"])
# Installs the carried wheels, generates OCR 1.0 shards with the in-process executor on the
# machine's cores, then trains the `small` config in bf16 in several variants (tokens/s,
# MFU, loader images/s vs step images/s, a kernel profile). One failing variant does not
# stop the others, and variants that would start after BUDGET_S seconds are skipped so the
# call ends inside the device's 10 minutes. The device returns at most 8 files from $OUT,
# so every JSON and log goes into $OUT/results.tar.gz (written on any exit), beside
# $OUT/summary.txt (the table printed last).
#
# Smoke test on a machine without a GPU (no wheels needed when the packages are there):
#   SMOKE=1 OUT=/tmp/gpu-smoke bash bench/gpu/run.sh
set -uo pipefail
OUT="${OUT:-/tmp/out}"
RES="$(mktemp -d /tmp/gpu_results.XXXX)"
mkdir -p "$OUT"
trap 'tar -czf "$OUT/results.tar.gz" -C "$RES" .' EXIT
export PYTHONUNBUFFERED=1
if [[ -d .wheels && -z "${SMOKE:-}" ]]; then  # a rehearsal uses the packages already installed
  # --no-deps: their needs (pillow, charset-normalizer) are in the image already.
  python3 -m pip install --quiet --no-index --no-deps .wheels/*.whl 2>&1 | tail -2
  python3 -m pip install --quiet --no-deps --no-build-isolation -e . 2>&1 | tail -2
fi
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  python3 -c "import sys, torch, matplotlib, pyarrow, fitz; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'matplotlib', matplotlib.__version__, 'pyarrow', pyarrow.__version__, 'pymupdf', fitz.VersionBind)"
  nproc
} 2>&1 | tee "$RES/env.txt"

if [[ -n "${SMOKE:-}" ]]; then
  cfg=(--config tiny --device cpu --steps 4 --batch-size 2 --workers 0); shards=(--shards 2 --rows-per-shard 12)
else
  cfg=(--config small --steps 40 --batch-size 16 --workers 8); shards=(--shards 16 --rows-per-shard 32)
fi
data=/tmp/gpu_run_shards
rm -rf "$data"
python3 -m synth manifests/ocr1_demo.yaml --out "$data" --executor local --workers "$(nproc)" "${shards[@]}" \
    --no-progress 2>&1 | tee "$RES/synth.json" || { echo "shard generation failed"; exit 1; }

BUDGET_S="${BUDGET_S:-450}"  # the device allows 600 s a command: leave room for the table
# The paper variants' batches depend on the card's memory: token budgets from
# bench/bench_memory.py (stage 2, after the MoE and rotary changes of stop 12), with the
# range from the end of forward to every gradient held. An H200 (139 GiB) takes, compiled,
# 57,344 tokens and 32 images (100-111 GiB) or 65,536 and 48 (111-122); eager 40,960 and 32
# (107-118). An H100 (78 GiB): compiled 20,480 and 16 (61-72), eager 11,264 and 8. The
# "big" compiled variant also accumulates two micro-batches a step, so the optimizer and
# clipping (29 ms a step on an H200, 41 on an H100, bench/bench_roofline.py) run half as often.
GPU_GIB=$(python3 -c "import torch; print(torch.cuda.get_device_properties(0).total_memory >> 30 if torch.cuda.is_available() else 0)" 2>/dev/null || echo 0)
if (( GPU_GIB > 100 )); then
  paper_compiled=(--batch-size 32 --max-batch-tokens 57344); paper_compiled_big=(--batch-size 48 --max-batch-tokens 65536 --grad-accum 2)
  paper_eager=(--batch-size 32 --max-batch-tokens 40960)
else
  paper_compiled=(--batch-size 16 --max-batch-tokens 20480); paper_compiled_big=(--batch-size 20 --max-batch-tokens 22528 --grad-accum 2)
  paper_eager=(--batch-size 8 --max-batch-tokens 11264)
fi
echo "GPU memory ${GPU_GIB} GiB: paper compiled ${paper_compiled[*]}, eager ${paper_eager[*]}"
bench() {  # name, then extra flags
  local name=$1; shift
  if (( SECONDS > BUDGET_S )); then echo "== $name skipped: ${SECONDS}s used of ${BUDGET_S}s"; return; fi
  echo "== $name (at ${SECONDS}s)"
  python3 bench/bench_train.py --data "$data" "${cfg[@]}" "$@" --out "/tmp/run_$name" \
      --json "$RES/bench_$name.json" > "$RES/bench_$name.log" 2>&1 || echo "FAILED: $name (see bench_$name.log)"
  grep -E "tokens/s,|Error|error" "$RES/bench_$name.log" | tail -3
  tar -czf "$OUT/results.tar.gz" -C "$RES" .  # so a call killed at its limit still returns what ran
}
variant() {  # one named run; docs/gpu.md says what each shows
  case $1 in
    base_bs16) bench "$1" --mode base --profile 3 ;;
    base_cudnn) bench "$1" --mode base --cudnn-attention ;;  # the same, with cuDNN attention allowed
    base_compile) bench "$1" --mode base --compile ;;
    base_compile_model) bench "$1" --mode base --compile --compile-scope model ;;
    tiny_bs16) bench "$1" --mode tiny ;;
    base_bs32) bench "$1" --mode base --batch-size 32 ;;
    base_bs64) bench "$1" --mode base --batch-size 64 ;;
    base_compile_bs64) bench "$1" --mode base --batch-size 64 --compile ;;
    base_stage1) bench "$1" --mode base --stage 1 ;;
    multi_mode) bench "$1" --mode tiny small base large gundam ;;  # mixed-resolution batches
    wide_bs16) bench "$1" --mode base --config manifests/models/gpu_wide.yaml ;;
    wide_bs64) bench "$1" --mode base --config manifests/models/gpu_wide.yaml --batch-size 64 ;;
    wide_compile) bench "$1" --mode base --config manifests/models/gpu_wide.yaml --compile ;;
    wide_compile_bs32) bench "$1" --mode base --config manifests/models/gpu_wide.yaml --compile --batch-size 32 ;;
    # Up to 64 examples under 131,072 tokens: 44 GiB compiled by bench_memory.py.
    wide_compile_budget) bench "$1" --mode base --config manifests/models/gpu_wide.yaml --compile --batch-size 64 --max-batch-tokens 131072 ;;
    # The paper config on one GPU (3.0B parameters, 0.8B active).
    paper_bs16) bench "$1" --mode base --config paper --batch-size 16 --steps 12 ;;
    paper_bs32) bench "$1" --mode base --config paper --batch-size 32 --steps 12 ;;
    # --compile compiles each block (TrainArgs.compile_scope "blocks", dynamic shapes), so
    # batches of another size or length reuse the graphs; "model" is the whole forward.
    paper_compile) bench "$1" --mode base --config paper --batch-size 16 --steps 16 --compile ;;
    paper_compile_model) bench "$1" --mode base --config paper --batch-size 16 --steps 16 --compile --compile-scope model ;;
    # Token budgets sized by bench/bench_memory.py for this card (above; it gives run 2's
    # peaks within 4 %, docs/gpu.md).
    paper_budget) bench "$1" --mode base --config paper "${paper_eager[@]}" --steps 12 ;;
    paper_compile_budget) bench "$1" --mode base --config paper "${paper_compiled[@]}" --steps 16 --compile --profile 2 ;;
    paper_compile_budget64k) bench "$1" --mode base --config paper "${paper_compiled_big[@]}" --steps 16 --compile ;;
    paper_ckpt) bench "$1" --mode base --config paper --batch-size 32 --steps 12 --grad-checkpoint ;;
    # Frozen SAM's global attention through FlexAttention instead of SDPA's key-dim form
    # (run 3 on an H200: 36 % of the step, so it is off by default).
    paper_compile_budget_flex) bench "$1" --mode base --config paper "${paper_compiled[@]}" --steps 16 --compile --sam-flex ;;
    sam_attention)  # paper SAM's global-block attention: key-dim vs mask form, and flex forward
      if (( SECONDS > BUDGET_S )); then echo "== $1 skipped"; return; fi
      echo "== $1 (at ${SECONDS}s)"
      python3 bench/bench_sam_attention.py --size 1024 --batch 8 --device cuda --dtype bf16 \
          --json "$RES/sam_attention.json" 2>&1 | tee "$RES/sam_attention.log" | tail -3
      python3 bench/bench_sam_attention.py --size 1024 --batch 16 --device cuda --dtype bf16 --forward-only \
          --json "$RES/sam_attention_forward.json" 2>&1 | tee -a "$RES/sam_attention.log" | tail -7 ;;
    *) echo "unknown variant $1"; return 1 ;;
  esac
}
# Most important first: a later variant is skipped if time runs short. SMOKE leaves out
# what a CPU cannot run in minutes.
if [[ -n "${SMOKE:-}" ]]; then
  default="base_bs16 base_cudnn base_compile base_compile_model tiny_bs16 base_bs32 base_stage1 multi_mode"
else
  # Runs 1-3 measured the rest; docs/gpu.md has the figures. What is left:
  default="paper_compile_budget64k paper_compile_budget paper_budget paper_compile paper_ckpt base_compile_bs64 base_bs16 base_stage1 multi_mode sam_attention"
fi
for v in ${VARIANTS:-$default}; do variant "$v"; done
python3 - "$RES" <<'PY' | tee "$OUT/summary.txt"
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
print(f"{'run':<24}{'tok/s':>10}{'MFU':>7}{'sheet':>7}{'gemm':>7}{'step img/s':>11}{'load img/s':>11}{'wait':>6}"
      f"{'GiB':>6}{'max tok':>8}{'graphs':>8}  kernel")
profiles = []
for f in sorted(out.glob("bench_*.json")):
    r = json.loads(f.read_text())
    pct = lambda v: f"{v:.1%}" if v is not None else "-"
    mem = f"{r['max_memory_gib']:.1f}" if r.get("max_memory_gib") is not None else "-"
    graphs = "->".join(map(str, r.get("compiled_graphs_at_log") or [])) if r.get("compile") else "-"
    print(f"{f.stem[6:]:<24}{r['tokens_per_s']:>10.0f}{pct(r['mfu']):>7}{pct(r['mfu_vs_datasheet']):>7}"
          f"{pct(r['mfu_vs_measured_gemm']):>7}{r['step_images_per_s']:>11.1f}{r['loader_images_per_s']:>11.1f}"
          f"{r['data_wait_frac']:>6.0%}{mem:>6}{r.get('max_batch_padded_tokens', 0):>8}{graphs:>8}  {r['moe_kernel']}, SAM {r.get('sam_attention', '-')}")
    for sync in r.get("host_syncs_per_step") or []:
        print(f"  {f.stem[6:]}: a step synchronizes at {sync}")
    if r.get("profile"):
        profiles.append(f"\n== kernel profile of {f.stem[6:]}\n{r['profile']}")
print("(GiB: peak allocated; max tok: padded tokens of the largest batch run, the one that sets the peak;"
      " graphs: torch.compile graphs built by the end of each half of the run, a rise in the second half"
      " means the measured half paid for a compilation)")
print("".join(profiles))
PY
if [[ -f "$RES/sam_attention.log" ]]; then  # (a bare test would end the script with status 1 without it)
  { echo; cat "$RES/sam_attention.log"; } | tee -a "$OUT/summary.txt"
fi
