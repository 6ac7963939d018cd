#!/usr/bin/env bash
# Phase 4 of the shipped model (issue 17): the world's language grew from a few sentences per family into
# a small grammar (docs/shapes-world.md, "Train grammar"): 11 to 18 train forms per question family and
# 9 to 11 caption frames, the held-out frames unchanged. On 2 cores, one each, side by side (as run on
# 4 Dec 2026, benchmarks/RESULTS.md section 14d):
# 1. the whole VLM on the grown questions, with the prompt anchor (--anchor-prompts): every step also
#    pulls the K/V it gives a batch of captions back to what the VLM gave before, so both generator
#    streams keep the conditioning they were trained on and need not be retrained after;
# 2. the K = 4 stream on the grown captions, reading the VLM as it was (the anchor's target), new images,
#    each one-shape image also captioned by its bare prompt ("a red square": no size, no place).
# The K = 1 twin is not retrained in this phase. Budgets are wall-clock minutes.
#   bash tools/shapes/train_grammar.sh OUT      (OUT: the phase-3 models/shapes)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: train_grammar.sh OUT}
PY=/usr/bin/python3
T='<|im_start|>{prompt}<|im_end|>'
run() { $PY tools/shapes/train_shapes.py --out "$OUT" --threads 1 "$@"; }

gen() { run --stages gen --patch-gen 2 --template-gen "$T" --resume --language --pool-gen 12288 --lr-gen 3e-4 \
  --two-object-weight 1.5 --prompt-table --bare-captions --checkpoint-minutes 10 "$@"; }

run --stages vlm --language --minutes-vlm 110 --lr-vlm 5e-4 --anchor-prompts 20 & a=$!
# the stream in two runs. As run, the first was stopped after 24 minutes of a 102-minute budget and its
# 20-minute checkpoint kept (the caption frames then gained their "in the image / in this picture"
# openings); here it is a 20-minute run. The second draws a new latent pool.
gen --pool-seed 80 --minutes-gen 20
gen --pool-seed 90 --minutes-gen 78
wait $a
run --stages world   # world.json: the grown vocabulary
