"""Token sampling on logits: greedy, or temperature / top-k / top-p with the project's seeded uniform.

Defined exactly so that the engine can reproduce it (docs/reference.md):
  greedy (temperature == 0): argmax, lowest token id on ties.
  else: z = logits / temperature (f32);
        top_k > 0: drop tokens whose z is below the k-th largest z (ties at the k-th value are kept);
        top_p < 1: p = softmax(z); walk tokens by descending p (ties: lower id first) and keep the shortest
                   prefix whose cumulative p (f64) reaches top_p; at least one token is kept;
        p = softmax over kept tokens (f32); draw u = rng.uniform(seed, step); return the smallest token id
        i (in id order) with cumsum_f64(p)[i] > u * sum_f64(p).
"""
import torch

from . import rng


def sample_token(logits, temperature=0.0, top_k=0, top_p=1.0, seed=0, step=0):
    """logits [V] (f32) -> token id (int)."""
    logits = logits.float()
    if temperature <= 0.0:
        return int(torch.argmax(logits))              # torch returns the first maximum
    z = logits / temperature
    keep = torch.ones_like(z, dtype=torch.bool)
    if top_k and top_k < z.numel():
        kth = torch.topk(z, top_k).values[-1]
        keep &= z >= kth
    if top_p < 1.0:
        p = torch.softmax(z.masked_fill(~keep, float("-inf")), -1)
        ids = sorted(range(z.numel()), key=lambda i: (-float(p[i]), i))
        acc, kept = 0.0, torch.zeros_like(keep)
        for i in ids:
            kept[i] = True
            acc += float(p[i])
            if acc >= top_p:
                break
        keep &= kept
    p = torch.softmax(z.masked_fill(~keep, float("-inf")), -1).double()
    cdf = torch.cumsum(p, 0)
    u = rng.uniform(seed, step) * float(cdf[-1])
    return int(torch.nonzero(cdf > u)[0])
