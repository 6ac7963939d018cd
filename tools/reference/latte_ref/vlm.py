"""Qwen2-VL for conditional generation: vision tower + M-RoPE decoder + (tied) LM head, prefill/decode.

Loads the HF checkpoint layout: config.json, model.safetensors or sharded model-*.safetensors with
model.safetensors.index.json, tokenizer.json, preprocessor_config.json. Parameter names are the checkpoint's
legacy names ("visual.*", "model.*", "lm_head.weight"); transformers 5 in-memory names
("model.language_model.*", "model.visual.*") are mapped back on load.
"""
import os

import torch
import torch.nn as nn

from . import st
from .config import Qwen2VLConfig
from .rope import get_rope_index, mrope_cos_sin
from .sampling import sample_token
from .text import TextModel
from .vision import VisionTower


def canonical_name(name):
    for a, b in (("model.language_model.", "model."), ("model.visual.", "visual.")):
        if name.startswith(a):
            return b + name[len(a):]
    return name


class Qwen2VL(nn.Module):
    def __init__(self, cfg: Qwen2VLConfig):
        super().__init__()
        self.cfg = cfg
        self.visual = VisionTower(cfg.vision)
        self.model = TextModel(cfg.text)
        self.lm_head = None if cfg.text.tie_word_embeddings else nn.Linear(cfg.text.hidden_size, cfg.text.vocab_size, bias=False)

    # ---- loading -------------------------------------------------------------------------------------------
    @staticmethod
    def from_pretrained(directory, dtype=torch.float32):
        cfg = Qwen2VLConfig.load(os.path.join(directory, "config.json"))
        m = Qwen2VL(cfg)
        sd = {canonical_name(k): v for k, v in st.load_checkpoint_dir(directory).items()}
        if cfg.text.tie_word_embeddings:
            sd.pop("lm_head.weight", None)
        missing, unexpected = m.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise ValueError(f"checkpoint mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
        return m.to(dtype).eval()

    def save_pretrained(self, directory, max_shard_bytes=None):
        os.makedirs(directory, exist_ok=True)
        import json
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump(self.cfg.to_hf_dict(), f, indent=2)
        sd = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        if max_shard_bytes:
            st.save_sharded(sd, directory, max_shard_bytes)
        else:
            st.save_file(sd, os.path.join(directory, "model.safetensors"), {"format": "pt"})

    # ---- pieces --------------------------------------------------------------------------------------------
    def lm_weight(self):
        return self.model.embed_tokens.weight if self.lm_head is None else self.lm_head.weight

    def embed(self, input_ids, pixel_values=None, grid_thw=None):
        """input_ids [S] -> [1, S, D]; image token positions take the vision tower's outputs in order."""
        x = self.model.embed_tokens(input_ids)
        if pixel_values is not None:
            img = self.visual(pixel_values, grid_thw).to(x.dtype)
            mask = input_ids == self.cfg.image_token_id
            if int(mask.sum()) != img.shape[0]:
                raise ValueError(f"{int(mask.sum())} image tokens but {img.shape[0]} image embeddings")
            x = x.clone()
            x[mask] = img
        return x[None]

    def rope(self, position_ids):
        t = self.cfg.text
        return mrope_cos_sin(position_ids, t.head_dim, t.rope_theta, t.mrope_section)

    # ---- prefill / decode ----------------------------------------------------------------------------------
    @torch.no_grad()
    def prefill(self, input_ids, pixel_values=None, grid_thw=None):
        """One sequence -> (logits [S, V], state) where state = {cache, delta, length}."""
        x = self.embed(input_ids, pixel_values, grid_thw)
        pos, delta = get_rope_index(input_ids, grid_thw, self.cfg)
        cos, sin = self.rope(pos[:, None])                                   # [1, S, d]
        h, cache = self.model(x, cos, sin)
        return (h[0] @ self.lm_weight().t()), {"cache": cache, "delta": delta, "length": input_ids.numel()}

    @torch.no_grad()
    def decode_step(self, token, state):
        """Feed one token; its M-RoPE position is length + delta on all three axes."""
        x = self.model.embed_tokens(torch.tensor([[token]]))
        p = state["length"] + state["delta"]
        cos, sin = self.rope(torch.full((3, 1, 1), p, dtype=torch.long))
        h, cache = self.model(x, cos, sin, state["cache"])
        state = {"cache": cache, "delta": state["delta"], "length": state["length"] + 1}
        return (h[0, -1] @ self.lm_weight().t()), state

    @torch.no_grad()
    def generate(self, input_ids, pixel_values=None, grid_thw=None, max_new_tokens=16, stop_ids=(),
                 temperature=0.0, top_k=0, top_p=1.0, seed=0):
        """Sampling step i uses rng.uniform(seed, i). Stops after emitting a stop id (included)."""
        logits, state = self.prefill(input_ids, pixel_values, grid_thw)
        last = logits[-1]
        out = []
        for i in range(max_new_tokens):
            tok = sample_token(last, temperature, top_k, top_p, seed, i)
            out.append(tok)
            if tok in stop_ids or i == max_new_tokens - 1:
                break
            last, state = self.decode_step(tok, state)
        return out

    @torch.no_grad()
    def prompt_kv(self, input_ids):
        """Generation-stream conditioning: run the frozen decoder causally over text-only prompt tokens and
        keep every layer's (K post-RoPE, V), each [1, P, G, d]. Text positions are 0..P-1 on all axes."""
        x = self.model.embed_tokens(input_ids)[None]
        pos = torch.arange(input_ids.numel())[None, None].expand(3, 1, -1)
        cos, sin = self.rope(pos)
        _, cache = self.model(x, cos, sin)
        return cache
