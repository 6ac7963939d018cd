#!/usr/bin/env bash
# Phase 6 of the shipped model (issue 17), on 2 cores (as run on 5 Dec 2026, benchmarks/RESULTS.md section
# 14f): 95 more minutes of the K = 4 stream on new images (pool seed 120), the noisiest quarter of the time
# (where a bare prompt's layout is decided) trained twice as often, as at the end of phase 5.
# As run, a vision-only VLM stage ran beside it on the other core and was not kept: the vision tower grown
# to 4 blocks (--vision-depth 4, the new blocks starting as the identity), two-object weight 3, lr 5e-4,
# 100 minutes; development VQA fell (0.845 / 0.700 to 0.825 / 0.690), so the phase-5 VLM stays. To repeat
# it: run --stages vlm_vision --language --minutes-vlm-vision 100 --lr-vlm-vision 5e-4 --two-object-weight 3
# --vision-depth 4. Phase 7 (tools/shapes/train_longer.sh) continues this stream.
# Budgets are wall-clock minutes.
#   bash tools/shapes/train_stream.sh OUT      (OUT: the phase-5 models/shapes)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: train_stream.sh OUT}
PY=/usr/bin/python3
T='<|im_start|>{prompt}<|im_end|>'
run() { $PY tools/shapes/train_shapes.py --out "$OUT" --threads 1 "$@"; }

run --stages gen --patch-gen 2 --template-gen "$T" --resume --language --pool-gen 12288 --lr-gen 2e-4 --prompt-table \
  --bare-captions --caption-variants 1 --low-t-gen 2 --checkpoint-minutes 10 --pool-seed 120 --minutes-gen 95
