#!/usr/bin/env bash
# Reproduces the shipped shapes-world models from scratch: models/shapes (K = 4) and models/shapes-vanilla
# (K = 1), with the recipe and budgets they were trained with (training_log.json records each stage).
#   bash tools/shapes/train_all.sh [OUT=models/shapes]
# Needs Debian's python3-torch with libopenblas0-pthread, and for phase 3 a CUDA GPU with torch >= 2.0
# (GPU_PY). Phase 1 (about 2 h of wall time on 2 cores) trains on the world's template sentences; the two
# generator streams train side by side, one core each, 70 minutes. Phase 2 (tools/shapes/train_language.sh,
# about 4 h) continues everything the wording touches on the world's varied language (docs/shapes-world.md,
# "Language"). Phase 3 (tools/shapes/train_gpu.sh: 9 minutes on an H200, then 45 minutes on 2 cores)
# trains the VLM longer and both streams on it. Phase 4 (tools/shapes/train_grammar.sh, about 2 h on 2
# cores) trains the VLM and the K = 4 stream on the grown grammar. Phase 5 (tools/shapes/train_binding.sh,
# 90 minutes on 2 cores) trains the VLM on more two-shape scenes and the K = 4 stream on more bare prompts.
# Phase 6 (tools/shapes/train_stream.sh, 95 minutes on 1 core) trains the K = 4 stream longer, and phases 7
# and 8 (tools/shapes/train_longer.sh, 295 minutes on 1 core) longer again. Phase 9 trains nothing: it gives
# the question word " things" a token of its own (the tokenizer was trained on the template text only).
# Phases 1-3 ran, on 4 Dec 2026, with the language as it was before it grew (commit 7fddfbf); rerun today
# they draw from the grown one. Every stage of phases 2-9 continues from saved weights, and the VLM and
# stream stages save their model every 10 minutes: after a stop, rerun the stages that had not finished.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-models/shapes}
PY=/usr/bin/python3
T='<|im_start|>{prompt}<|im_end|>'   # the caption alone between the chat markers: fewer template tokens to attend past
GEN=(--threads 1 --patch-gen 2 --pool-gen 16384 --template-gen "$T" --minutes-gen 70 --lr-gen 2e-3)
run() { $PY tools/shapes/train_shapes.py --out "$OUT" "$@"; }

run --stages tok,ae,world --minutes-ae 10 --threads 2           # tokenizer; DC-AE 64x64 -> 8x8x16; world.json (vocabulary, pictures)
run --stages vlm --minutes-vlm 28 --threads 1                   # tiny Qwen2-VL (M-RoPE theta 3), captioning + VQA
# the two generator streams on the frozen VLM (their M-RoPE theta is the VLM's), side by side
run --stages gen "${GEN[@]}" & a=$!
run --stages vanilla "${GEN[@]}" & b=$!
wait $a $b
# phase 2: the world's varied language (VLM, vision tower, both streams), continuing from phase 1
bash tools/shapes/train_language.sh "$OUT"
# phase 3: the VLM and both streams again on a CUDA GPU, then two CPU stages (GPU_PY: a torch that sees it)
bash tools/shapes/train_gpu.sh "$OUT"
# phase 4: the grown grammar (the VLM held to its prompt K/V, and the K = 4 stream), 2 cores, about 2 h
bash tools/shapes/train_grammar.sh "$OUT"
# phase 5: the VLM on more two-shape scenes (colour / shape binding), the K = 4 stream on more bare prompts
bash tools/shapes/train_binding.sh "$OUT"
# phase 6: the K = 4 stream again, the noisiest quarter of the time trained twice as often
bash tools/shapes/train_stream.sh "$OUT"
# phases 7 and 8: the K = 4 stream 295 minutes more, on new images, two-shape scenes more often in the last 200
bash tools/shapes/train_longer.sh "$OUT"
# phase 9: " things" (a word only the questions use, spelt a letter at a time) one token; captions tokenize as before
run --stages vocab --vocab-words " things"
# the sampling defaults picked on the development prompt set (tools/shapes/tune.ts; benchmarks/RESULTS.md section 6)
$PY - "$OUT" <<'PY'
import json, sys
def defaults(path, **kw):
    with open(path) as f:
        cfg = json.load(f)
    cfg.update(kw)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
out = sys.argv[1].rstrip("/")
defaults(f"{out}/generator/config.json", guidance_scale=4.0, guidance_per_group=[4.0, 4.0, 2.0, 1.0], num_steps=30)
defaults(f"{out}-vanilla/generator/config.json", guidance_scale=3.0, num_steps=30)
# total CPU time of the stages that record it (each stage's process_cpu_seconds; a phase_N entry sums its
# phase's stages, so it is not counted again)
log_path = f"{out}/training_log.json"
with open(log_path) as f:
    log = json.load(f)
log["total_process_cpu_seconds"] = round(sum(v.get("process_cpu_seconds") or 0 for k, v in log.items()
                                              if isinstance(v, dict) and not k.startswith("phase_")), 1)
with open(log_path, "w") as f:
    json.dump(log, f, indent=1)
PY
