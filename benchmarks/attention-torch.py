"""PyTorch's scaled_dot_product_attention on the CPU, timed on request: the peer of
benchmarks/attention.ts, which alternates its own samples with these in one run.

    python benchmarks/attention-torch.py     (a python with torch >= 2.5, e.g. a transformers venv)

Protocol: one JSON request per stdin line, {"case": {B, Sq, Skv, H, G, d, mask, imageCol0?, residual?},
"threads": t, "inner": n}; one JSON line back, {"ms": per-call ms over n back-to-back calls} (or
{"error": ...}). Inputs are [B, H, S, d] contiguous, K/V already repeated to the H query heads (the
fastest form SDPA takes; the repeat is not timed); causal is is_causal (Sq == Skv); the TCRA residual
is an additive float mask on the image columns, built once. First line out: {"torch": version}.
Exit code 3: torch missing.
"""
import json
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:
    print(f"attention-torch: PyTorch is not importable by {sys.executable}: {e}", file=sys.stderr)
    sys.exit(3)


def build(c):
    B, Sq, Skv, H, G, d = (c[k] for k in ("B", "Sq", "Skv", "H", "G", "d"))
    g = torch.Generator().manual_seed(1)
    q = torch.randn(B, H, Sq, d, generator=g)
    k = torch.randn(B, G, Skv, d, generator=g).repeat_interleave(H // G, dim=1).contiguous()
    v = torch.randn(B, G, Skv, d, generator=g).repeat_interleave(H // G, dim=1).contiguous()
    mask = None
    if c.get("residual"):
        c0 = c["imageCol0"]
        mask = torch.zeros(B, H, Sq, Skv)
        mask[..., c0:] = torch.randn(B, H, Sq, Skv - c0, generator=g)
    causal = c["mask"] == "causal"
    if causal and Sq != Skv:
        raise ValueError("causal with Sq != Skv: SDPA's is_causal aligns to the top left")
    return lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)


def main():
    torch.set_num_interop_threads(1)
    print(json.dumps({"torch": torch.__version__, "capability": torch.backends.cpu.get_cpu_capability()}), flush=True)
    fns = {}
    with torch.no_grad():
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                req = json.loads(line)
                key = json.dumps(req["case"], sort_keys=True)
                if key not in fns:
                    fns[key] = build(req["case"])
                fn = fns[key]
                if torch.get_num_threads() != req["threads"]:
                    torch.set_num_threads(req["threads"])
                n = max(1, int(req["inner"]))
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                ms = (time.perf_counter() - t0) * 1e3 / n
                print(json.dumps({"ms": ms}), flush=True)
            except Exception as e:  # the TS side reports it and goes on without the anchor
                print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)


if __name__ == "__main__":
    main()
