"""Qwen2-VL vision tower + patch merger. Parameter names are the HF checkpoint's (prefix "visual.").

Input: pixel_values [N_patches, C * T * P * P] from preprocess.patchify (T = temporal patch 2, P = 14),
grid_thw [n_images, 3] in patches. Output: [N_patches / merge^2, text hidden] image token embeddings.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .rope import apply_rotary, vision_rotary


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


class PatchEmbed(nn.Module):
    """Conv3d with kernel = stride = (T, P, P) over one patch is a Linear on the flattened patch.
    The weight keeps the checkpoint's 5-D conv shape [E, C, T, P, P]; no bias."""

    def __init__(self, cfg):
        super().__init__()
        self.proj = nn.Conv3d(cfg.in_channels, cfg.embed_dim,
                              kernel_size=(cfg.temporal_patch_size, cfg.patch_size, cfg.patch_size),
                              stride=(cfg.temporal_patch_size, cfg.patch_size, cfg.patch_size), bias=False)

    def forward(self, x):                                   # [N, C*T*P*P]
        w = self.proj.weight                                # [E, C, T, P, P]
        return x @ w.reshape(w.shape[0], -1).t()            # [N, E]


class VisionAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.qkv = nn.Linear(cfg.embed_dim, 3 * cfg.embed_dim, bias=True)
        self.proj = nn.Linear(cfg.embed_dim, cfg.embed_dim, bias=True)

    def forward(self, x, cos, sin, seg_lens):
        n, e = x.shape
        d = e // self.num_heads
        q, k, v = self.qkv(x).reshape(n, 3, self.num_heads, d).unbind(1)   # each [N, heads, d]
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        # Full (bidirectional) attention inside each frame of each image; none across frames/images.
        if len(set(seg_lens)) == 1:   # a batch of same-size images (training): one batched product, not a loop
            b, L = len(seg_lens), seg_lens[0]
            s = torch.einsum("bqhd,bkhd->bhqk", q.reshape(b, L, -1, d), k.reshape(b, L, -1, d)) / math.sqrt(d)
            p = torch.softmax(s.float(), dim=-1).to(v.dtype)
            return self.proj(torch.einsum("bhqk,bkhd->bqhd", p, v.reshape(b, L, -1, d)).reshape(n, e))
        outs = []
        for qs, ks, vs in zip(q.split(seg_lens), k.split(seg_lens), v.split(seg_lens)):
            s = torch.einsum("qhd,khd->hqk", qs, ks) / math.sqrt(d)
            p = torch.softmax(s.float(), dim=-1).to(vs.dtype)
            outs.append(torch.einsum("hqk,khd->qhd", p, vs))
        return self.proj(torch.cat(outs, 0).reshape(n, e))


class VisionBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.attn = VisionAttention(cfg)
        hidden = int(cfg.embed_dim * cfg.mlp_ratio)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(cfg.embed_dim, hidden)
        self.mlp.fc2 = nn.Linear(hidden, cfg.embed_dim)
        if cfg.hidden_act not in ("quick_gelu",):
            raise ValueError(f"vision hidden_act {cfg.hidden_act!r} not supported (Qwen2-VL uses quick_gelu)")

    def forward(self, x, cos, sin, seg_lens):
        x = x + self.attn(self.norm1(x), cos, sin, seg_lens)
        return x + self.mlp.fc2(quick_gelu(self.mlp.fc1(self.norm2(x))))


class PatchMerger(nn.Module):
    """LayerNorm per patch, then each 2x2 window (contiguous in patch order) concatenated -> MLP."""

    def __init__(self, cfg):
        super().__init__()
        self.width = cfg.embed_dim * cfg.spatial_merge_size ** 2
        self.ln_q = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(self.width, self.width), nn.GELU(), nn.Linear(self.width, cfg.hidden_size))

    def forward(self, x):                                   # [N, E]
        return self.mlp(self.ln_q(x).reshape(-1, self.width))   # [N/m^2, hidden]


class VisionTower(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg)
        self.blocks = nn.ModuleList([VisionBlock(cfg) for _ in range(cfg.depth)])
        self.merger = PatchMerger(cfg)

    def rotary(self, grid_thw):
        return vision_rotary(grid_thw, self.cfg.head_dim, self.cfg.spatial_merge_size, self.cfg.rope_theta)

    @staticmethod
    def segments(grid_thw):
        """Attention segments: one per frame (t) of each image, of h*w patches."""
        return [int(h * w) for t, h, w in grid_thw.tolist() for _ in range(int(t))]

    def forward(self, pixel_values, grid_thw, return_pre_merger=False):
        x = self.patch_embed(pixel_values.to(self.patch_embed.proj.weight.dtype))
        cos, sin = self.rotary(grid_thw)
        seg = self.segments(grid_thw)
        for blk in self.blocks:
            x = blk(x, cos, sin, seg)
        out = self.merger(x)
        return (out, x) if return_pre_merger else out
