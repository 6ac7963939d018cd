"""Qwen2-VL reference: shapes, M-RoPE positions, KV cache, preprocessing, template, tokenizer, sampling.
(Numerical agreement with HF transformers is hf_parity.py's job; see HF_PARITY.md.)"""
import os
import tempfile
import unittest

import numpy as np
import torch

from latte_ref import chat, preprocess, tiny
from latte_ref.rope import get_rope_index, mrope_cos_sin, vision_rotary
from latte_ref.sampling import sample_token
from latte_ref.tokenizer import Tokenizer
from latte_ref.vlm import Qwen2VL

TMP = tempfile.mkdtemp()
SPECIALS = tiny.write_tokenizer_json(os.path.join(TMP, "tokenizer.json"), 30)
TOK = Tokenizer(os.path.join(TMP, "tokenizer.json"))
CFG = tiny.tiny_qwen2vl_config(len(TOK.vocab) + len(TOK.added), SPECIALS, layers=2)
PCFG = {"min_pixels": 56 * 56, "max_pixels": 28 * 28 * 16, "patch_size": 14, "temporal_patch_size": 2,
        "merge_size": 2, "rescale_factor": 1 / 255, "image_mean": [0.5] * 3, "image_std": [0.25] * 3}


def model():
    return tiny.randomize_(Qwen2VL(CFG), 0, std=0.2).eval()


class ConfigTest(unittest.TestCase):
    REAL = {"architectures": ["Qwen2VLForConditionalGeneration"], "hidden_size": 1536, "intermediate_size": 8960,
            "num_attention_heads": 12, "num_hidden_layers": 28, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
            "rope_theta": 1000000.0, "tie_word_embeddings": True, "vocab_size": 151936,
            "vision_start_token_id": 151652, "vision_end_token_id": 151653, "image_token_id": 151655,
            "video_token_id": 151656, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
            "vision_config": {"depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16, "in_chans": 3,
                              "hidden_size": 1536, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}}

    def test_real_scale_legacy_and_v5_layouts(self):
        from latte_ref.config import Qwen2VLConfig
        a = Qwen2VLConfig.from_dict(self.REAL)
        self.assertEqual((a.text.head_dim, a.text.num_key_value_heads, a.text.rope_theta), (128, 2, 1e6))
        self.assertEqual((a.vision.head_dim, a.vision.hidden_size, a.image_token_id), (80, 1536, 151655))
        self.assertTrue(a.text.tie_word_embeddings)
        text = {k: self.REAL[k] for k in ("hidden_size", "intermediate_size", "num_attention_heads",
                                          "num_hidden_layers", "num_key_value_heads", "rms_norm_eps", "vocab_size")}
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}
        v5 = {"text_config": text, "vision_config": {**self.REAL["vision_config"], "in_channels": 3},
              "image_token_id": 151655, "tie_word_embeddings": True}
        b = Qwen2VLConfig.from_dict(v5)
        self.assertEqual(a.text, b.text)
        self.assertEqual(Qwen2VLConfig.from_dict(a.to_hf_dict()), a)


class PositionsTest(unittest.TestCase):
    def test_rope_index_hand_example(self):
        # 2 text tokens, a 4x6-patch image (2x3 merged tokens), 2 text tokens.
        img = CFG.image_token_id
        ids = torch.tensor([5, 6] + [img] * 6 + [7, 8])
        pos, delta = get_rope_index(ids, torch.tensor([[1, 4, 6]]), CFG)
        self.assertEqual(pos.tolist(), [[0, 1, 2, 2, 2, 2, 2, 2, 5, 6],
                                        [0, 1, 2, 2, 2, 3, 3, 3, 5, 6],
                                        [0, 1, 2, 3, 4, 2, 3, 4, 5, 6]])
        self.assertEqual(delta, 7 - 10)

    def test_mrope_sections(self):
        # temporal axis 0, height 10, width 20: each section of the frequencies follows its own axis
        pos = torch.tensor([0, 10, 20]).reshape(3, 1, 1)
        cos, sin = mrope_cos_sin(pos, 16, 10000.0, [2, 3, 3])
        self.assertEqual(tuple(cos.shape), (1, 1, 16))
        inv = 1.0 / (10000.0 ** (torch.arange(0, 16, 2).float() / 16))
        want = torch.cat([inv[:2] * 0, inv[2:5] * 10, inv[5:8] * 20])
        self.assertTrue(torch.allclose(cos[0, 0], torch.cat([want, want]).cos()))
        self.assertTrue(torch.allclose(sin[0, 0], torch.cat([want, want]).sin()))

    def test_vision_rotary_order(self):
        cos, _ = vision_rotary(torch.tensor([[1, 2, 4]]), 8, 2)
        # patches in merge-window order: window (0,0) = (r0c0, r0c1, r1c0, r1c1), then window (0,1)
        inv = 1.0 / (10000.0 ** (torch.arange(0, 4, 2).float() / 4))
        rows, cols = [0, 0, 1, 1, 0, 0, 1, 1], [0, 1, 0, 1, 2, 3, 2, 3]
        for n, (r, c) in enumerate(zip(rows, cols)):
            f = torch.cat([inv * r, inv * c])
            self.assertTrue(torch.allclose(cos[n], torch.cat([f, f]).cos()))


class ModelTest(unittest.TestCase):
    def test_shapes(self):
        m = model()
        img = (np.arange(40 * 60 * 3) % 251).astype(np.uint8).reshape(40, 60, 3)
        pv, grid = preprocess.preprocess_image(img, PCFG)
        self.assertEqual(grid.tolist(), [[1, 4, 6]])                  # 40x60 -> 28x56 < min -> 56x84
        self.assertEqual(tuple(pv.shape), (24, 3 * 2 * 14 * 14))
        emb = m.visual(pv, grid)
        self.assertEqual(tuple(emb.shape), (6, CFG.text.hidden_size))
        text = chat.expand_image_pads(chat.render([{"role": "user", "content": [{"type": "image"}]}]), [[1, 4, 6]], 2)
        ids = torch.tensor(TOK.encode(text))
        logits, state = m.prefill(ids, pv, grid)
        self.assertEqual(tuple(logits.shape), (ids.numel(), CFG.text.vocab_size))
        self.assertEqual(len(state["cache"]), CFG.text.num_hidden_layers)
        self.assertEqual(tuple(state["cache"][0][0].shape), (1, ids.numel(), CFG.text.num_key_value_heads, CFG.text.head_dim))

    def test_kv_cache_decode_matches_full_prefill(self):
        m = model()
        ids = torch.tensor(TOK.encode("what colour is the square?"))
        full, _ = m.prefill(ids)
        _, state = m.prefill(ids[:-3])
        for j in range(3):
            step, state = m.decode_step(int(ids[-3 + j]), state)
            self.assertTrue(torch.allclose(step, full[-3 + j], atol=1e-5), j)

    def test_save_load_round_trip_sharded(self):
        m = model()
        with tempfile.TemporaryDirectory() as d:
            m.save_pretrained(d, max_shard_bytes=20000)
            m2 = Qwen2VL.from_pretrained(d)
        ids = torch.tensor([1, 2, 3])
        self.assertTrue(torch.equal(m.prefill(ids)[0], m2.prefill(ids)[0]))


class PreprocessTest(unittest.TestCase):
    def test_smart_resize(self):
        self.assertEqual(preprocess.smart_resize(75, 131, 28, 56 * 56, 28 * 28 * 16), (84, 140))
        self.assertEqual(preprocess.smart_resize(10, 10, 28, 56 * 56, 28 * 28 * 16), (56, 56))       # grow
        self.assertEqual(preprocess.smart_resize(1000, 500, 28, 56 * 56, 28 * 28 * 16), (140, 56))   # shrink
        self.assertEqual(preprocess.smart_resize(42, 42, 28, 28 * 28, 28 * 28 * 16), (56, 56))       # round(1.5)=2

    def test_bicubic_identity_and_constant(self):
        img = (np.arange(12 * 9 * 3) % 256).astype(np.uint8).reshape(12, 9, 3)
        self.assertTrue(np.array_equal(preprocess.resize_bicubic(img, 12, 9), img))
        const = np.full((13, 17, 3), 200, np.uint8)
        self.assertTrue(np.all(preprocess.resize_bicubic(const, 28, 56) == 200))

    def test_patchify_order(self):
        c, h, w = 1, 4, 4
        x = np.arange(h * w, dtype=np.float32).reshape(c, h, w)
        flat, grid = preprocess.patchify(x, 1, 2, 2)
        self.assertEqual(grid, (1, 4, 4))
        # patch (feature) = (channel, frame): the pixel twice; rows = merge windows, row-major inside
        self.assertEqual(flat[:, 0].tolist(), [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15])
        self.assertTrue(np.array_equal(flat[:, 0], flat[:, 1]))


class TextTest(unittest.TestCase):
    def test_chat_template(self):
        s = chat.render([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}])
        self.assertEqual(s, "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                            "<|vision_start|><|image_pad|><|vision_end|>hi<|im_end|>\n<|im_start|>assistant\n")
        self.assertEqual(chat.expand_image_pads("a<|image_pad|>b", [[1, 4, 6]], 2), "a" + "<|image_pad|>" * 6 + "b")

    def test_tokenizer_round_trip(self):
        for s in ["a small red circle on the left.", "<|im_start|>user\nwhy?<|im_end|>", "Zürich 42 — ok\n\n"]:
            self.assertEqual(TOK.decode(TOK.encode(s)), s)
        self.assertEqual(TOK.encode("<|image_pad|>"), [SPECIALS["<|image_pad|>"]])

    def test_sampling(self):
        logits = torch.tensor([0.0, 3.0, 1.0, 3.0, -2.0])
        self.assertEqual(sample_token(logits), 1)                         # first of the tied maxima
        self.assertEqual({sample_token(logits, 1.0, top_k=1, seed=s) for s in range(30)}, {1, 3})  # ties kept
        self.assertEqual({sample_token(logits + torch.tensor([0, 0, 0, 0.1, 0]), 1.0, top_k=1, seed=s)
                          for s in range(30)}, {3})
        draws = [sample_token(logits, 1.0, seed=s) for s in range(200)]
        self.assertEqual(draws, [sample_token(logits, 1.0, seed=s) for s in range(200)])
        self.assertEqual(set(draws) - {0, 1, 2, 3, 4}, set())
        self.assertGreater(draws.count(1) + draws.count(3), 150)
        # p = (0.023, 0.456, 0.062, 0.456, 0.003): descending walk 1, 3, 2, ...
        self.assertEqual({sample_token(logits, 1.0, top_p=0.4, seed=s) for s in range(50)}, {1})
        self.assertEqual({sample_token(logits, 1.0, top_p=0.9, seed=s) for s in range(100)}, {1, 3})
        self.assertEqual({sample_token(logits, 1.0, top_p=0.95, seed=s) for s in range(300)}, {1, 2, 3})


if __name__ == "__main__":
    unittest.main()
