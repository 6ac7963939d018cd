"""The LaTtE-Flow generation stream (docs/model.md section 3): time embedder, patch embed, L modulated layers
with TCRA, output head; layerwise timestep-expert groups.

Layouts: latent x [B, C, h, w] (NCHW); image tokens [B, N, D], N = (h/p)(w/p), token n = i*(w/p)+j;
a token's features are the patch flattened as (c, py, px) (channel outermost). q [B, N, H, d],
prompt K/V [B, P, G, d] (post-RoPE, from the frozen VLM's layer l), logits [B, H, N, P + N] (prompt first),
the TCRA residual R [B, H, N, N] (image columns only). Weight names: docs/checkpoint-format.md.
"""
import json
import math
import os
from dataclasses import dataclass, field, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import st
from .rope import mrope_cos_sin
from .text import MLP, Attention, RMSNorm, attention_logits, attention_output

FORMAT = "latte-flow-generator"
FORMAT_VERSION = 1


@dataclass
class GenConfig:
    hidden_size: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    num_layers: int
    latent_channels: int
    latent_size: list                       # [h, w] of the latent the model was trained on
    patch_size: int = 1
    num_groups: int = 4
    group_boundaries: list = None           # K+1 increasing floats from 0 to 1; None = uniform k/K
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1e6
    mrope_section: list = field(default_factory=lambda: [16, 24, 24])
    time_embed_dim: int = 256               # sinusoid features
    time_scale: float = 1000.0              # the sinusoid sees time_scale * t
    time_max_period: float = 10000.0
    guidance_scale: float = 4.0
    guidance_per_group: list = None         # one CFG weight per group (time order): the default when set
    num_steps: int = 40
    sampler: str = "euler"                  # "euler" | "heun"
    time_shift: float = 1.0
    prompt_template: str = "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
    null_prompt: str = ""
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads

    @property
    def boundaries(self):
        if self.group_boundaries is not None:
            b = [float(x) for x in self.group_boundaries]
            if len(b) != self.num_groups + 1 or b[0] != 0.0 or b[-1] != 1.0 or any(x >= y for x, y in zip(b, b[1:])):
                raise ValueError(f"group_boundaries must be {self.num_groups + 1} increasing values from 0 to 1")
            return b
        return [k / self.num_groups for k in range(self.num_groups + 1)]

    def group_of(self, t):
        """Group k owns [b_k, b_{k+1}); the last group also owns t = 1. Compared in float64."""
        b = self.boundaries
        k = 0
        while k + 1 < self.num_groups and float(t) >= b[k + 1]:
            k += 1
        return k

    def group_layers(self, k):
        if self.num_layers % self.num_groups:
            raise ValueError("num_layers must be a multiple of num_groups")
        m = self.num_layers // self.num_groups
        return range(k * m, (k + 1) * m)

    @staticmethod
    def from_dict(d):
        if d.get("format", FORMAT) != FORMAT or int(d.get("format_version", 1)) > FORMAT_VERSION:
            raise ValueError(f"unsupported generator checkpoint {d.get('format')} v{d.get('format_version')}")
        known = set(GenConfig.__dataclass_fields__)
        return GenConfig(**{k: v for k, v in d.items() if k in known})

    def to_dict(self):
        d = asdict(self)
        if d["guidance_per_group"] is None:   # optional: configs that do not use it stay as they were
            del d["guidance_per_group"]
        return d


def timestep_sinusoid(t, dim=256, scale=1000.0, max_period=10000.0):
    """DiT's timestep features of (scale * t): [cos(a * f_j), sin(a * f_j)], f_j = max_period^(-j/half).
    Everything in float32. t [B] -> [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    a = (t.float() * scale)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(a), torch.sin(a)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class TimeEmbedder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.linear_1 = nn.Linear(cfg.time_embed_dim, cfg.hidden_size)
        self.linear_2 = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, t):
        f = timestep_sinusoid(t, self.cfg.time_embed_dim, self.cfg.time_scale, self.cfg.time_max_period)
        return self.linear_2(F.silu(self.linear_1(f)))


class GenLayer(nn.Module):
    """One generation layer; the names shared with a VLM decoder layer are the VLM's (init from it)."""

    def __init__(self, cfg):
        super().__init__()
        D, self.h = cfg.hidden_size, cfg.num_attention_heads
        self.input_layernorm = RMSNorm(D, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.attn_out_norm = RMSNorm(D, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(D, cfg.rms_norm_eps)
        self.mlp = MLP(D, cfg.intermediate_size)
        self.ffn_out_norm = RMSNorm(D, cfg.rms_norm_eps)
        self.modulation = nn.Linear(D, 4 * D)          # -> (s1, s2, b2, s3)
        self.tcra_gate = nn.Linear(D, self.h)          # -> g(t) = tanh(.) in R^H

    def forward(self, h, c, cos, sin, prompt_k, prompt_v, prompt_mask=None, r_prev=None):
        """h [B, N, D]; c [B, D]; prompt_k/v [B, P, G, d]; prompt_mask [B, P] bool (True = real token);
        r_prev [B, H, N, N] or None (None: no TCRA residual, e.g. the first layer of a group).
        Returns (h, R) with R the post-residual image-column logits."""
        sc = F.silu(c)
        s1, s2, b2, s3 = (m[:, None] for m in self.modulation(sc).chunk(4, dim=-1))
        q, k, v = self.self_attn.qkv(self.input_layernorm(h), cos, sin)
        keys, values = torch.cat([prompt_k, k], 1), torch.cat([prompt_v, v], 1)
        s = attention_logits(q, keys)                                    # [B, H, N, P + N]
        P = prompt_k.shape[1]
        img = s[..., P:]
        if r_prev is not None:
            g = torch.tanh(self.tcra_gate(sc))                           # [B, H]
            img = img + g[:, :, None, None] * r_prev
        pre = s[..., :P]
        if prompt_mask is not None:          # padding in a batch of prompts of different lengths
            pre = pre.masked_fill(~prompt_mask[:, None, None, :], float("-inf"))
        s = torch.cat([pre, img], -1)
        p = torch.softmax(s.float(), dim=-1).to(q.dtype)
        o = self.self_attn.o_proj(attention_output(p, values))
        h = h + s1 * self.attn_out_norm(o)
        y = self.post_attention_layernorm(h) * (1 + s2) + b2
        h = h + s3 * self.ffn_out_norm(self.mlp(y))
        return h, img


class GenHead(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D = cfg.hidden_size
        self.norm = RMSNorm(D, cfg.rms_norm_eps)
        self.head_modulation = nn.Linear(D, 2 * D)                      # -> (shift, scale)
        self.proj_out = nn.Linear(D, cfg.latent_channels * cfg.patch_size ** 2)


def patchify(x, p):
    """[B, C, h, w] -> [B, (h/p)(w/p), C*p*p], features (c, py, px)."""
    B, C, H, W = x.shape
    x = x.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)     # [B, h/p, w/p, C, p, p]
    return x.reshape(B, (H // p) * (W // p), C * p * p)


def unpatchify(tok, C, H, W, p):
    B = tok.shape[0]
    x = tok.reshape(B, H // p, W // p, C, p, p).permute(0, 3, 1, 4, 2, 5)   # [B, C, h/p, p, w/p, p]
    return x.reshape(B, C, H, W)


def image_positions(prompt_lens, gh, gw):
    """M-RoPE ids of the image grid placed right after a prompt of length P: (P, P + i, P + j).
    prompt_lens [B] -> [3, B, gh*gw]."""
    i = torch.arange(gh)[:, None].expand(gh, gw).flatten()
    j = torch.arange(gw)[None, :].expand(gh, gw).flatten()
    base = torch.stack([torch.zeros_like(i), i, j])                          # [3, N]
    return base[:, None, :] + torch.as_tensor(prompt_lens)[None, :, None]


class GenerationStream(nn.Module):
    def __init__(self, cfg: GenConfig):
        super().__init__()
        self.cfg = cfg
        self.time_embedder = TimeEmbedder(cfg)
        self.patch_embed = nn.Linear(cfg.latent_channels * cfg.patch_size ** 2, cfg.hidden_size)
        self.layers = nn.ModuleList([GenLayer(cfg) for _ in range(cfg.num_layers)])
        self.head = GenHead(cfg)

    def forward_layers(self, x, t, layer_ids, prompt_kv, prompt_lens=None, prompt_mask=None,
                       first_is_group_start=True, return_trace=False):
        """Run patch embed -> the listed layers -> head. x [B, C, h, w]; t float or [B];
        prompt_kv: list over ALL layers of (k, v) [B, P, G, d]; prompt_lens [B] (defaults to P).
        The TCRA residual is chained from layer to layer inside layer_ids; the first listed layer gets none
        when first_is_group_start (always, in inference and training)."""
        cfg = self.cfg
        B, C, H, W = x.shape
        p = cfg.patch_size
        t = torch.as_tensor(t, dtype=torch.float32).reshape(-1).expand(B)
        c = self.time_embedder(t)                                            # [B, D]
        h = self.patch_embed(patchify(x, p))                                 # [B, N, D]
        P = prompt_kv[layer_ids[0]][0].shape[1]
        lens = torch.full((B,), P, dtype=torch.long) if prompt_lens is None else torch.as_tensor(prompt_lens)
        cos, sin = mrope_cos_sin(image_positions(lens, H // p, W // p), cfg.head_dim, cfg.rope_theta,
                                 cfg.mrope_section)
        r, trace = None, []
        for n, l in enumerate(layer_ids):
            use_r = r if (n > 0 or not first_is_group_start) else None
            h, r = self.layers[l](h, c, cos, sin, *prompt_kv[l], prompt_mask, use_r)
            if return_trace:
                trace.append((h, r))
        shift, scale = self.head.head_modulation(F.silu(c))[:, None].chunk(2, dim=-1)
        y = self.head.norm(h) * (1 + scale) + shift
        v = unpatchify(self.head.proj_out(y), C, H, W, p)
        return (v, trace) if return_trace else v

    def forward_group(self, x, t, k, prompt_kv, prompt_lens=None, prompt_mask=None):
        return self.forward_layers(x, t, list(self.cfg.group_layers(k)), prompt_kv, prompt_lens, prompt_mask)

    def velocity(self, x, t, prompt_kv, prompt_lens=None, prompt_mask=None):
        """The expert group chosen by t (one scalar t for the batch)."""
        return self.forward_group(x, t, self.cfg.group_of(t), prompt_kv, prompt_lens, prompt_mask)

    # ---- checkpoint --------------------------------------------------------------------------------------
    def save(self, directory):
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump(self.cfg.to_dict(), f, indent=2)
        sd = {checkpoint_name(k): v.detach().float().contiguous() for k, v in self.state_dict().items()}
        st.save_file(sd, os.path.join(directory, "model.safetensors"),
                     {"format": FORMAT, "format_version": str(FORMAT_VERSION)})

    @staticmethod
    def load(directory):
        with open(os.path.join(directory, "config.json")) as f:
            cfg = GenConfig.from_dict(json.load(f))
        m = GenerationStream(cfg)
        sd = {module_name(k): v for k, v in st.load_checkpoint_dir(directory).items()}
        m.load_state_dict(sd, strict=True)
        return m.eval()


# Checkpoint names drop the module nesting of the head: "norm.weight", "head_modulation.*", "proj_out.*".
def checkpoint_name(k):
    return k[len("head."):] if k.startswith("head.") else k


def module_name(k):
    return "head." + k if k.split(".")[0] in ("norm", "head_modulation", "proj_out") else k
