#!/usr/bin/env bash
# Phase 3 of the shipped model (issue 17): continues the phase-2 models (tools/shapes/train_language.sh)
# on the world's varied language with a GPU's speed, spent where the CPU runs were shortest: the whole
# VLM (phases 1 and 2 gave it about 1,600 steps of 32 sequences), then both generator streams on its new
# prompt K/V, then two CPU stages. As run on 4 Dec 2026 (benchmarks/RESULTS.md section 14c): the GPU
# stages on one H200 (torch 2.11), the CPU stages on 2 cores (Debian's torch 1.13). Budgets are
# wall-clock minutes, so another machine gives another number of steps.
#   bash tools/shapes/train_gpu.sh OUT     (OUT: the phase-2 models/shapes, with OUT-vanilla beside it)
# GPU_PY: a python3 whose torch sees a CUDA GPU (default python3); CPU_PY: Debian's (default /usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: train_gpu.sh OUT}
GPU_PY=${GPU_PY:-python3}
CPU_PY=${CPU_PY:-/usr/bin/python3}
T='<|im_start|>{prompt}<|im_end|>'
$GPU_PY -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' ||
  { echo "train_gpu.sh: $GPU_PY sees no CUDA GPU (phase 3 needs one)" >&2; exit 1; }
gpu() { $GPU_PY tools/shapes/train_shapes.py --out "$OUT" --device cuda --threads 2 "$@"; }
cpu() { $CPU_PY tools/shapes/train_shapes.py --out "$OUT" --threads 1 "$@"; }
GEN=(--patch-gen 2 --template-gen "$T" --resume --language)

# 1. the whole VLM on the mixed questions: 3 minutes, 2,298 steps of 64 (8 processes build the batches)
gpu --stages vlm --language --minutes-vlm 3 --lr-vlm 5e-4 --batch-vlm 64 --workers 8
# 2. both streams on the new K/V, side by side (on 4 Dec a third process shared the GPU: a K = 4 variant
#    with two-object scenes drawn twice as often, not kept; section 14c)
gpu --stages gen "${GEN[@]}" --batch-gen 64 --pool-gen 16384 --pool-seed 40 --minutes-gen 3.25 --lr-gen 5e-4 --checkpoint-minutes 1 & a=$!
gpu --stages vanilla "${GEN[@]}" --batch-gen 64 --pool-gen 16384 --pool-seed 40 --minutes-gen 3.25 --lr-gen 5e-4 --checkpoint-minutes 1 & b=$!
wait $a
wait $b
# 3. the K = 4 stream alone, batches of 128, new images
gpu --stages gen "${GEN[@]}" --batch-gen 128 --pool-gen 16384 --pool-seed 50 --minutes-gen 2.6 --lr-gen 5e-4 --checkpoint-minutes 1
# 4. on the CPU, one core each: both streams at a lower learning rate on new images, every pool caption
#    encoded up front (--prompt-table); K = 4 with two-object scenes drawn twice as often
cpu --stages gen "${GEN[@]}" --pool-gen 12288 --pool-seed 70 --minutes-gen 40 --lr-gen 3e-4 --two-object-weight 2 --prompt-table & a=$!
cpu --stages vanilla "${GEN[@]}" --pool-gen 12288 --pool-seed 60 --minutes-gen 45 --lr-gen 3e-4 --prompt-table & b=$!
wait $a
wait $b
