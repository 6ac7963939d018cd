"""The PyTorch reference pipeline on the shipped shapes-world model: time per image (text_to_image) and per
answer, the baseline the engine is compared with (benchmarks/shapes.ts).

    /usr/bin/python3 benchmarks/reference-shapes.py [--model models/shapes] [--threads 1,2] [--reps 5] [--steps 20]

One JSON line per thread count: {"bench": "reference-shapes", "threads", "image_ms", "answer_ms", "steps"}.
Uses OpenBLAS with an explicit AVX2 kernel set when installed (with Debian's reference BLAS, torch is ~25x
slower at these sizes, which would flatter the engine).
"""
import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
import torch  # noqa: E402
from latte_ref import shapes_world  # noqa: E402
from latte_ref.pipeline import LatteFlow  # noqa: E402

PROMPT = "a red circle to the left of a blue square"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "shapes"))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    lf = LatteFlow(a.model)
    ex = shapes_world.example(31337, 0)
    q = ex["qa"][0][0]
    for th in map(int, a.threads.split(",")):
        torch.set_num_threads(th)
        lf.text_to_image(PROMPT, seed=0, steps=a.steps)
        lf.answer([ex["image"]], q, max_new_tokens=16)
        img, ans = [], []
        for r in range(a.reps):
            t0 = time.perf_counter()
            lf.text_to_image(PROMPT, seed=r, steps=a.steps)
            img.append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            lf.answer([ex["image"]], q, max_new_tokens=16)
            ans.append((time.perf_counter() - t0) * 1e3)
        print(json.dumps({"bench": "reference-shapes", "threads": th, "image_ms": statistics.median(img),
                          "answer_ms": statistics.median(ans), "steps": a.steps, "blas": torch.__config__.show().count("BLAS_INFO=open") > 0}), flush=True)


if __name__ == "__main__":
    main()
