"""PyTorch anchors for benchmarks/gpu.ts (performance.md section 5): torch.matmul / F.linear (cuBLAS)
and scaled_dot_product_attention at the same shapes, timed with CUDA events. Reads the shapes as
JSON on stdin, prints one JSON line {"gemm": {key: ms}, "attention": {key: ms}, "torch": version}.
Runs only where torch sees a GPU (the GPU machine's python3); gpu.ts treats any failure as
"no PyTorch anchor".
"""
import json
import sys

import torch
import torch.nn.functional as F


def timed(fn, reps):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def main():
    spec = json.load(sys.stdin)
    dev = torch.device("cuda")
    out = {"torch": torch.__version__, "gemm": {}, "attention": {}}
    for g in spec["gemm"]:
        m, k, n, dtype = g["M"], g["K"], g["N"], g["dtype"]
        dt = torch.bfloat16 if dtype == "bf16" else torch.float32
        if dt == torch.float32:
            torch.backends.cuda.matmul.allow_tf32 = False  # the engine's f32 path is true fp32
        x = torch.randn(m, k, device=dev, dtype=dt)
        w = torch.randn(n, k, device=dev, dtype=dt)
        out["gemm"][g["key"]] = timed(lambda: F.linear(x, w), g["reps"])
    for a in spec["attention"]:
        B, Sq, Skv, H, G, d = a["B"], a["Sq"], a["Skv"], a["H"], a["G"], a["d"]
        for dtype in ("f32", "bf16"):
            dt = torch.bfloat16 if dtype == "bf16" else torch.float32
            q = torch.randn(B, H, Sq, d, device=dev, dtype=dt)
            k = torch.randn(B, H, Skv, d, device=dev, dtype=dt)  # GQA expanded: SDPA's own speed
            v = torch.randn(B, H, Skv, d, device=dev, dtype=dt)
            mask = None
            causal = a["mask"] == "causal" and Sq == Skv
            if a.get("imageCol0") is not None:  # TCRA: an additive mask on the image columns
                mask = torch.zeros(B, H, Sq, Skv, device=dev, dtype=dt)
                mask[..., a["imageCol0"]:] = torch.randn(B, H, Sq, Skv - a["imageCol0"], device=dev, dtype=dt)
            fn = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
            out["attention"][f'{a["key"]} {dtype}'] = timed(fn, a["reps"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
