"""Generation stream: shapes, group-boundary rule, TCRA rules, vanilla K = 1, time embedding, checkpoint."""
import math
import tempfile
import unittest

import torch
import torch.nn.functional as F

from latte_ref import tiny
from latte_ref.genstream import GenConfig, GenerationStream, image_positions, patchify, timestep_sinusoid, unpatchify
from latte_ref.rope import mrope_cos_sin


def make(num_groups=2, layers=4, seed=0, **kw):
    cfg = GenConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=2, intermediate_size=48,
                    num_layers=layers, latent_channels=3, latent_size=[4, 6], patch_size=2, num_groups=num_groups,
                    mrope_section=[1, 1, 2], rope_theta=10000.0, **kw)
    m = tiny.randomize_(GenerationStream(cfg), seed, std=0.2).eval()
    with torch.no_grad():
        for layer in m.layers:
            layer.tcra_gate.weight.mul_(5)
    return m


def prompt_kv(m, P=5, B=1, seed=1):
    g = torch.Generator().manual_seed(seed)
    c = m.cfg
    return [(torch.randn(B, P, c.num_key_value_heads, c.head_dim, generator=g),
             torch.randn(B, P, c.num_key_value_heads, c.head_dim, generator=g)) for _ in range(c.num_layers)]


def manual(m, x, t, layers, kv, residual_into_first):
    """An independent loop over layers: what the layer equations say, chaining R from layer to layer."""
    cfg = m.cfg
    B, C, H, W = x.shape
    c = m.time_embedder(torch.full((B,), float(t)))
    h = m.patch_embed(patchify(x, cfg.patch_size))
    P = kv[0][0].shape[1]
    cos, sin = mrope_cos_sin(image_positions(torch.full((B,), P), H // cfg.patch_size, W // cfg.patch_size),
                             cfg.head_dim, cfg.rope_theta, cfg.mrope_section)
    r = torch.zeros(B, cfg.num_attention_heads, h.shape[1], h.shape[1]) if residual_into_first else None
    for l in layers:
        h, r = m.layers[l](h, c, cos, sin, *kv[l], None, r)
    shift, scale = m.head.head_modulation(F.silu(c))[:, None].chunk(2, -1)
    return unpatchify(m.head.proj_out(m.head.norm(h) * (1 + scale) + shift), C, H, W, cfg.patch_size)


class GroupRuleTest(unittest.TestCase):
    def test_uniform_boundaries(self):
        cfg = make(4, 8).cfg
        self.assertEqual([cfg.group_of(t) for t in (0.0, 0.2499, 0.25, 0.5, 0.74, 0.75, 0.999, 1.0)],
                         [0, 0, 1, 2, 2, 3, 3, 3])
        self.assertEqual([list(cfg.group_layers(k)) for k in range(4)], [[0, 1], [2, 3], [4, 5], [6, 7]])
        # schedule points i/steps that land exactly on k/K belong to the upper group
        self.assertEqual([cfg.group_of(i / 40) for i in (9, 10, 19, 20, 29, 30, 40)], [0, 1, 1, 2, 2, 3, 3])
        self.assertEqual([cfg.group_of(i / 3) for i in range(4)], [0, 1, 2, 3])
        self.assertEqual([GenConfig.from_dict({**cfg.to_dict(), "num_groups": 3, "num_layers": 6}).group_of(i / 3)
                          for i in range(4)], [0, 1, 2, 2])

    def test_explicit_boundaries(self):
        cfg = make(2, 4, group_boundaries=[0.0, 0.3, 1.0]).cfg
        self.assertEqual([cfg.group_of(t) for t in (0.0, 0.29, 0.3, 1.0)], [0, 0, 1, 1])
        with self.assertRaises(ValueError):
            GenConfig.from_dict({**cfg.to_dict(), "group_boundaries": [0.0, 0.5]}).boundaries


class ForwardTest(unittest.TestCase):
    def test_shapes(self):
        m = make()
        x = torch.randn(2, 3, 4, 6)
        v, trace = m.forward_layers(x, torch.tensor([0.1, 0.2]), [0, 1], prompt_kv(m, B=2), return_trace=True)
        self.assertEqual(v.shape, x.shape)
        self.assertEqual(tuple(trace[0][0].shape), (2, 6, 32))
        self.assertEqual(tuple(trace[0][1].shape), (2, 4, 6, 6))

    def test_patchify_round_trip(self):
        x = torch.randn(2, 3, 4, 6)
        tok = patchify(x, 2)
        self.assertEqual(tuple(tok.shape), (2, 6, 12))
        self.assertTrue(torch.equal(tok[0, 1], x[0, :, 0:2, 2:4].reshape(-1)))    # token (0,1): (c, py, px)
        self.assertTrue(torch.equal(unpatchify(tok, 3, 4, 6, 2), x))

    def test_group_matches_manual_loop_and_skips_first_residual(self):
        m, x, kv = make(), torch.randn(1, 3, 4, 6), None
        kv = prompt_kv(m)
        with torch.no_grad():
            for t in (0.1, 0.6):
                k = m.cfg.group_of(t)
                v = m.velocity(x, t, kv)
                self.assertTrue(torch.allclose(v, manual(m, x, t, m.cfg.group_layers(k), kv, False), atol=1e-6))
                # a residual of zeros into the first layer changes nothing only if it is not applied
                self.assertTrue(torch.allclose(v, manual(m, x, t, m.cfg.group_layers(k), kv, True), atol=1e-6))

    def test_residual_matters_inside_group(self):
        m, x = make(), torch.randn(1, 3, 4, 6)
        kv = prompt_kv(m)
        with torch.no_grad():
            a = m.forward_layers(x, 0.3, [0, 1], kv)
            b = m.forward_layers(x, 0.3, [0, 1], kv, first_is_group_start=True)
            self.assertTrue(torch.equal(a, b))
            m.layers[1].tcra_gate.weight.zero_()
            m.layers[1].tcra_gate.bias.zero_()                        # g = tanh(0) = 0: residual vanishes
            c = m.forward_layers(x, 0.3, [0, 1], kv)
        self.assertFalse(torch.allclose(a, c, atol=1e-4))

    def test_vanilla_equals_all_layers(self):
        m4 = make(2, 4)
        m1 = GenerationStream(GenConfig.from_dict({**m4.cfg.to_dict(), "num_groups": 1}))
        m1.load_state_dict(m4.state_dict())
        m1.eval()
        x, kv = torch.randn(1, 3, 4, 6), prompt_kv(m4)
        with torch.no_grad():
            for t in (0.0, 0.4, 0.9, 1.0):
                self.assertEqual(m1.cfg.group_of(t), 0)
                v = m1.velocity(x, t, kv)
                self.assertTrue(torch.allclose(v, manual(m4, x, t, range(4), kv, False), atol=1e-6))
            # and differs from the K = 2 expert (fewer layers; residual reset at layer 2)
            self.assertFalse(torch.allclose(m1.velocity(x, 0.9, kv), m4.velocity(x, 0.9, kv), atol=1e-4))

    def test_prompt_padding_mask_is_neutral(self):
        m, x = make(), torch.randn(1, 3, 4, 6)
        kv = prompt_kv(m, P=5)
        padded = [(F.pad(k, (0, 0, 0, 0, 0, 3), value=3.0), F.pad(v, (0, 0, 0, 0, 0, 3), value=7.0)) for k, v in kv]
        mask = torch.arange(8)[None] < 5
        with torch.no_grad():
            a = m.forward_group(x, 0.2, 0, kv)
            b = m.forward_group(x, 0.2, 0, padded, torch.tensor([5]), mask)
        self.assertTrue(torch.allclose(a, b, atol=1e-6))

    def test_image_positions(self):
        pos = image_positions(torch.tensor([7]), 2, 3)
        self.assertEqual(pos[:, 0].tolist(), [[7] * 6, [7, 7, 7, 8, 8, 8], [7, 8, 9, 7, 8, 9]])


class TimeEmbeddingTest(unittest.TestCase):
    def test_sinusoid(self):
        e = timestep_sinusoid(torch.tensor([0.0, 0.5]), 256)
        self.assertEqual(tuple(e.shape), (2, 256))
        self.assertTrue(torch.equal(e[0, :128], torch.ones(128)))       # cos first
        self.assertTrue(torch.equal(e[0, 128:], torch.zeros(128)))      # then sin
        # slot j = 1: frequency 10000^(-1/128), argument 1000 * 0.5
        a = 500.0 * math.exp(-math.log(10000.0) / 128)
        self.assertAlmostEqual(float(e[1, 1]), math.cos(a), places=4)
        self.assertAlmostEqual(float(e[1, 129]), math.sin(a), places=4)


class CheckpointTest(unittest.TestCase):
    def test_round_trip(self):
        m = make(2, 4, group_boundaries=[0.0, 0.4, 1.0])
        with tempfile.TemporaryDirectory() as d:
            m.save(d)
            from latte_ref import st
            names = set(st.load_checkpoint_dir(d))
            m2 = GenerationStream.load(d)
        self.assertIn("norm.weight", names)
        self.assertIn("proj_out.weight", names)
        self.assertIn("layers.3.tcra_gate.weight", names)
        self.assertEqual(m2.cfg, m.cfg)
        x, kv = torch.randn(1, 3, 4, 6), prompt_kv(m)
        with torch.no_grad():
            self.assertTrue(torch.equal(m.velocity(x, 0.5, kv), m2.velocity(x, 0.5, kv)))

    def test_rejects_future_format(self):
        with self.assertRaises(ValueError):
            GenConfig.from_dict({**make().cfg.to_dict(), "format_version": 99})


if __name__ == "__main__":
    unittest.main()
