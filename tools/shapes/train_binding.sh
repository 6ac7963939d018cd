#!/usr/bin/env bash
# Phase 5 of the shipped model (issue 17), on 2 cores (as run on 4-5 Dec 2026, benchmarks/RESULTS.md
# section 14e). After phase 4 the VLM answered 97% of the development questions about one-shape scenes and
# 59% about two-shape ones: it told which colour goes with which shape badly (describe 0 of 14, "what
# colour is the square?" 5 of 17). So, side by side, one core each, 90 minutes:
# 1. the whole VLM again, with the prompt anchor, on scenes drawn two-shape 3 times as often as one-shape
#    (--two-object-weight 3: 3 in 4 of its scenes);
# 2. the K = 4 stream with every one-shape image's bare prompt in a third of its draws (one varied caption
#    beside the template one and the bare prompt, not two), on new images, reading the VLM as it was.
# Then 25 minutes of the K = 4 stream on the new VLM, the noisiest quarter of the time (where the layout
# is decided: a bare prompt's misses were two places drawn at once) trained twice as often (--low-t-gen 2).
# As run, a 25-minute VLM continuation ran beside it and was not kept (development VQA fell).
# Budgets are wall-clock minutes.
#   bash tools/shapes/train_binding.sh OUT      (OUT: the phase-4 models/shapes)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: train_binding.sh OUT}
PY=/usr/bin/python3
T='<|im_start|>{prompt}<|im_end|>'
run() { $PY tools/shapes/train_shapes.py --out "$OUT" --threads 1 "$@"; }

run --stages vlm --language --minutes-vlm 90 --lr-vlm 4e-4 --anchor-prompts 20 --two-object-weight 3 & a=$!
# the stream reads the VLM when it starts (its latent pool and prompt table); the VLM stage writes at its end
run --stages gen --patch-gen 2 --template-gen "$T" --resume --language --pool-gen 12288 --lr-gen 3e-4 --prompt-table \
  --bare-captions --caption-variants 1 --checkpoint-minutes 10 --pool-seed 100 --minutes-gen 90
wait $a
run --stages gen --patch-gen 2 --template-gen "$T" --resume --language --pool-gen 12288 --lr-gen 2e-4 --prompt-table \
  --bare-captions --caption-variants 1 --low-t-gen 2 --checkpoint-minutes 10 --pool-seed 110 --minutes-gen 25
