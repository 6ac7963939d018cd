"""The frozen VLM's K/V of the generator stages' captions, encoded once (PromptCache) or all up front
(PromptTable). Imported by train_shapes.py, which puts tools/reference (latte_ref) on sys.path first."""
import torch
import torch.nn.functional as F

from latte_ref.train import encode_prompts


class PromptCache:
    """The frozen VLM's K/V of each caption, computed once: the world has a few thousand distinct captions,
    and encoding them was a quarter of a generator step."""

    def __init__(self, vlm, tok, template):
        self.vlm, self.tok, self.template, self.memo = vlm, tok, template, {}

    def one(self, text):
        if text not in self.memo:
            kv, _, _ = encode_prompts(self.vlm, self.tok, [text], self.template)
            self.memo[text] = kv
        return self.memo[text]

    def batch(self, texts):
        """Same result as encode_prompts(texts): right-padded per-layer (K, V), lengths, key mask."""
        kvs = [self.one(t) for t in texts]
        lens = torch.tensor([kv[0][0].shape[1] for kv in kvs])
        P = int(lens.max())
        pad = lambda t: F.pad(t, (0, 0, 0, 0, 0, P - t.shape[1]))     # noqa: E731
        layers = [(torch.cat([pad(kv[l][0]) for kv in kvs]), torch.cat([pad(kv[l][1]) for kv in kvs]))
                  for l in range(len(kvs[0]))]
        return layers, lens, torch.arange(P)[None] < lens[:, None]


class PromptTable:
    """PromptCache, filled up front (--prompt-table; always on a GPU): every caption of the latent pool
    encoded in big batches and kept as one [captions, P_max, G, d] K and V per layer, so a step gathers its
    prompts with one index per layer. On a GPU, per-caption encodes and pads were thousands of tiny kernels
    a step; on the CPU, one-at-a-time encodes of a varied-language pool took tens of minutes (memory: about
    5 GB for 12,288 images with 3 captions each). Rows are right-padded; the key mask hides the padding,
    as in encode_prompts."""

    def __init__(self, vlm, tok, template, pool_caps, chunk=512):
        self.per_image = len(pool_caps[0])
        assert all(len(c) == self.per_image for c in pool_caps), "every image needs as many captions"
        texts = sorted({c for cs in pool_caps for c in cs})
        where = {t: i for i, t in enumerate(texts)}
        self.ids = torch.tensor([[where[c] for c in cs] for cs in pool_caps])      # [images, per_image]
        parts, lens = [], []
        for i in range(0, len(texts), chunk):
            kv, ln, _ = encode_prompts(vlm, tok, texts[i:i + chunk], template)
            parts.append(kv)
            lens.append(ln)
        self.lens = torch.cat(lens)
        P = int(self.lens.max())
        pad = lambda t: F.pad(t, (0, 0, 0, 0, 0, P - t.shape[1]))     # noqa: E731
        self.layers = [tuple(torch.cat([pad(kv[l][j]) for kv in parts]) for j in (0, 1)) for l in range(len(parts[0]))]
        self.positions = torch.arange(P)

    def batch(self, images, variant):
        """The prompts of images[b]'s caption variant[b]: (per-layer (K, V), lengths, key mask)."""
        rows = self.ids[images, variant]
        lens = self.lens[rows]
        return [(k[rows], v[rows]) for k, v in self.layers], lens, self.positions[None] < lens[:, None]
