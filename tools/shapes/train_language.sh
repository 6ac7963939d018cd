#!/usr/bin/env bash
# Phase 2 of the shipped model (issue 17): continues the template-trained shapes models on the world's
# varied language (docs/shapes-world.md "Language", tools/reference/latte_ref/shapes_language.py), with
# the budgets of the runs in benchmarks/RESULTS.md section 14 (4 Dec 2026, about 4 h of wall time on
# 2 cores, over two sessions; every stage continues from the saved weights, so a stopped run resumes
# from the stage it was in, and the generator stages checkpoint every 10 minutes).
#   bash tools/shapes/train_language.sh OUT      (OUT: the phase-1 models/shapes, with OUT-vanilla beside it)
# 1. the whole VLM on the mixed questions (templates, varied wording, blank images);
# 2. both generator streams on template + varied captions (their conditioning, the VLM's prompt K/V,
#    moved), side by side with the VLM's vision tower alone on the same mixture (it leaves the decoder,
#    so the streams' conditioning, untouched: the stage asserts it);
# 3. both streams again, half template captions, at a lower learning rate;
# 4. both streams on new images (another latent pool), template + two varied captions;
# 5. the K = 4 stream alone on 2 threads: new images, half template captions, two-object scenes drawn
#    twice as often (relations were what the language cost it most).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: train_language.sh OUT}
PY=/usr/bin/python3
T='<|im_start|>{prompt}<|im_end|>'
run() { $PY tools/shapes/train_shapes.py --out "$OUT" "$@"; }

run --stages vlm --language --minutes-vlm 24 --lr-vlm 5e-4 --threads 2
GEN=(--threads 1 --patch-gen 2 --template-gen "$T" --resume --language)
run --stages gen "${GEN[@]}" --pool-gen 12288 --minutes-gen 55 --lr-gen 5e-4 & a=$!
run --stages vanilla "${GEN[@]}" --pool-gen 12288 --minutes-gen 55 --lr-gen 5e-4 & b=$!
run --stages vlm_vision --language --minutes-vlm-vision 50 --lr-vlm-vision 5e-4 --threads 1 & c=$!
wait $a $b $c
run --stages gen "${GEN[@]}" --pool-gen 8192 --minutes-gen 20 --lr-gen 3e-4 --caption-variants 1 & a=$!
run --stages vanilla "${GEN[@]}" --pool-gen 8192 --minutes-gen 20 --lr-gen 3e-4 --caption-variants 1 & b=$!
wait $a $b
run --stages gen "${GEN[@]}" --pool-gen 12288 --pool-seed 20 --minutes-gen 65 --lr-gen 5e-4 & a=$!
run --stages vanilla "${GEN[@]}" --pool-gen 12288 --pool-seed 20 --minutes-gen 65 --lr-gen 5e-4 & b=$!
wait $a $b
run --stages gen --threads 2 --patch-gen 2 --template-gen "$T" --resume --language --pool-gen 8192 --pool-seed 30 \
  --minutes-gen 24 --lr-gen 3e-4 --caption-variants 1 --two-object-weight 2
run --stages world
