"""Qwen2 decoder with M-RoPE and a KV cache. Parameter names are the HF checkpoint's (prefix "model.").

Layouts: hidden [B, S, D]; q [B, S, H, d]; k, v [B, S, G, d] (G KV heads shared by H/G query heads);
the cache keeps k (post-RoPE) and v per layer, [B, S_past, G, d]. The generation stream reuses these
modules and the cache as its prompt K/V.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .rope import apply_rotary


def rms_norm(x, weight, eps):
    """Qwen2RMSNorm: statistics in f32, scale applied after casting back."""
    dt = x.dtype
    xf = x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return weight * xf.to(dt)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


def attention_logits(q, k):
    """q [B, Sq, H, d], k [B, Skv, G, d] -> S [B, H, Sq, Skv] = q k^T / sqrt(d), GQA by head grouping:
    query head h reads KV head h // (H / G)."""
    b, sq, h, d = q.shape
    g = k.shape[2]
    k = k.repeat_interleave(h // g, dim=2)                         # [B, Skv, H, d]
    return torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d)


def attention_output(p, v):
    """p [B, H, Sq, Skv] probabilities, v [B, Skv, G, d] -> [B, Sq, H*d]."""
    h, g = p.shape[1], v.shape[2]
    v = v.repeat_interleave(h // g, dim=2)
    o = torch.einsum("bhqk,bkhd->bqhd", p, v)
    return o.reshape(o.shape[0], o.shape[1], -1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, self.h, self.g = cfg.head_dim, cfg.num_attention_heads, cfg.num_key_value_heads
        self.q_proj = nn.Linear(cfg.hidden_size, self.h * d, bias=True)
        self.k_proj = nn.Linear(cfg.hidden_size, self.g * d, bias=True)
        self.v_proj = nn.Linear(cfg.hidden_size, self.g * d, bias=True)
        self.o_proj = nn.Linear(self.h * d, cfg.hidden_size, bias=False)

    def qkv(self, x, cos, sin):
        """x [B, S, D] -> q [B,S,H,d], k [B,S,G,d] (both rotated), v [B,S,G,d]."""
        b, s, _ = x.shape
        q = self.q_proj(x).reshape(b, s, self.h, -1)
        k = self.k_proj(x).reshape(b, s, self.g, -1)
        v = self.v_proj(x).reshape(b, s, self.g, -1)
        return apply_rotary(q, cos, sin), apply_rotary(k, cos, sin), v

    def forward(self, x, cos, sin, past=None):
        q, k, v = self.qkv(x, cos, sin)
        if past is not None:
            k, v = torch.cat([past[0], k], 1), torch.cat([past[1], v], 1)
        s = attention_logits(q, k)                                    # [B, H, Sq, Skv]
        sq, skv = s.shape[-2:]
        # causal: query i (absolute position skv - sq + i) sees keys j <= that position
        mask = torch.ones(sq, skv, dtype=torch.bool).tril(diagonal=skv - sq)
        s = s.masked_fill(~mask, float("-inf"))
        p = torch.softmax(s.float(), dim=-1).to(q.dtype)
        return self.o_proj(attention_output(p, v)), (k, v)


class MLP(nn.Module):
    def __init__(self, hidden, inter):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inter, bias=False)
        self.up_proj = nn.Linear(hidden, inter, bias=False)
        self.down_proj = nn.Linear(inter, hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = MLP(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x, cos, sin, past=None):
        a, kv = self.self_attn(self.input_layernorm(x), cos, sin, past)
        x = x + a
        return x + self.mlp(self.post_attention_layernorm(x)), kv


class TextModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x, cos, sin, cache=None):
        """x [B, S, D] input embeddings -> (final normed hidden [B, S, D], new cache: list of (k, v))."""
        new = []
        for i, layer in enumerate(self.layers):
            x, kv = layer(x, cos, sin, None if cache is None else cache[i])
            new.append(kv)
        return self.norm(x), new
