"""Tiny, seeded models for fixtures, tests and parity checks: Qwen2-VL, generation stream, DC-AE, and a
byte-level BPE tokenizer.json (trained here in pure Python, loadable by HF `tokenizers`).
"""
import json
import os
from collections import Counter

import torch

from .config import Qwen2VLConfig, TextConfig, VisionConfig
from .tokenizer import QWEN2_PATTERN, bytes_to_unicode, _translate
import re

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>"]

SAMPLE_TEXT = ("a small red circle on the left. a blue square above a yellow triangle. "
               "what colour is the square? how many shapes are there? describe the image. "
               "You are a helpful assistant. user assistant system The image shows 2 shapes.\n")


def train_bpe(text, num_merges):
    """Greedy byte-level BPE over the Qwen2 pre-tokenizer pieces -> (vocab, merges)."""
    b2u = bytes_to_unicode()
    pieces = re.findall(_translate(QWEN2_PATTERN), text)
    words = Counter(tuple(b2u[b] for b in p.encode("utf-8")) for p in pieces)
    vocab = {c: i for i, c in enumerate(b2u.values())}          # the 256 byte symbols, GPT-2 order
    merges = []
    for _ in range(num_merges):
        pairs = Counter()
        for w, n in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += n
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]   # deterministic tie-break
        merges.append(best)
        vocab[best[0] + best[1]] = len(vocab)
        new = Counter()
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] += n
        words = new
    return vocab, merges


def write_tokenizer_json(path, num_merges=40, text=SAMPLE_TEXT):
    """Write a Qwen2-style tokenizer.json; returns {special token: id}."""
    vocab, merges = train_bpe(text, num_merges)
    added = []
    for tok in SPECIAL_TOKENS:
        added.append({"id": len(vocab) + len(added), "content": tok, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False, "special": True})
    tj = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]},
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False, indent=1)
    return {t["content"]: t["id"] for t in added}


def tiny_qwen2vl_config(vocab_size, specials, hidden=64, layers=2, heads=4, kv_heads=2, inter=96,
                        v_depth=2, v_dim=32, v_heads=4, patch=14, section=(2, 3, 3), tie=True, theta=10000.0):
    text = TextConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=kv_heads, intermediate_size=inter, vocab_size=vocab_size,
                      rms_norm_eps=1e-6, rope_theta=theta, mrope_section=list(section), tie_word_embeddings=tie)
    vision = VisionConfig(depth=v_depth, embed_dim=v_dim, num_heads=v_heads, hidden_size=hidden, mlp_ratio=2.0,
                          patch_size=patch)
    return Qwen2VLConfig(text, vision, image_token_id=specials["<|image_pad|>"],
                         video_token_id=specials["<|video_pad|>"],
                         vision_start_token_id=specials["<|vision_start|>"],
                         vision_end_token_id=specials["<|vision_end|>"])


def randomize_(module, seed, std=0.08):
    """Deterministic random weights (norm weights near 1), independent of torch's init order/version."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(module.named_parameters()):
            r = torch.randn(p.shape, generator=g)
            if name.endswith("norm.weight") or "layernorm" in name or name.endswith(("norm1.weight", "norm2.weight", "ln_q.weight")):
                p.copy_(1.0 + 0.1 * r)
            else:
                p.copy_(std * r)
        for name, b in sorted(module.named_buffers()):
            if name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
            elif name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
    return module


def tiny_dcae_config(latent_channels=4):
    return {"in_channels": 3, "latent_channels": latent_channels, "attention_head_dim": 8,
            "encoder_block_types": ["ResBlock", "ResBlock", "EfficientViTBlock"],
            "decoder_block_types": ["ResBlock", "ResBlock", "EfficientViTBlock"],
            "encoder_block_out_channels": [8, 16, 32], "decoder_block_out_channels": [8, 16, 32],
            "encoder_layers_per_block": [1, 1, 1], "decoder_layers_per_block": [1, 1, 2],
            "encoder_qkv_multiscales": [[], [], [5]], "decoder_qkv_multiscales": [[], [], [5]],
            "upsample_block_type": "pixel_shuffle", "downsample_block_type": "pixel_unshuffle",
            "decoder_norm_types": ["batch_norm", "rms_norm", "rms_norm"],
            "decoder_act_fns": ["relu", "silu", "silu"], "encoder_out_shortcut": True,
            "decoder_in_shortcut": True, "decoder_conv_act_fn": "relu", "scaling_factor": 0.75}
