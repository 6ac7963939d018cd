"""Trainer smoke tests: losses fall on a fixed batch; the objective's structure (groups, residual rule)."""
import os
import tempfile
import unittest

import torch

from latte_ref import tiny, train
from latte_ref.dcae import AutoencoderDC
from latte_ref.genstream import GenerationStream
from latte_ref.tokenizer import Tokenizer
from latte_ref.vlm import Qwen2VL

TMP = tempfile.mkdtemp()
SPECIALS = tiny.write_tokenizer_json(os.path.join(TMP, "tokenizer.json"), 30)
TOK = Tokenizer(os.path.join(TMP, "tokenizer.json"))
CFG = tiny.tiny_qwen2vl_config(len(TOK.vocab) + len(TOK.added), SPECIALS, layers=4, hidden=32, inter=48, v_dim=16,
                               section=(1, 1, 2))


def frozen_vlm():
    torch.manual_seed(0)
    vlm = tiny.randomize_(Qwen2VL(CFG), 0, std=0.1).eval()
    for p in vlm.parameters():
        p.requires_grad_(False)
    return vlm


class GeneratorTrainerTest(unittest.TestCase):
    def test_init_from_vlm(self):
        vlm = frozen_vlm()
        gen = train.init_from_vlm(GenerationStream(train.gen_config_from_vlm(CFG, 4, (2, 2), 2)), vlm)
        self.assertTrue(torch.equal(gen.layers[3].self_attn.q_proj.weight, vlm.model.layers[3].self_attn.q_proj.weight))
        self.assertEqual(float(gen.layers[0].modulation.weight.abs().sum()), 0.0)
        self.assertEqual(float(gen.head.proj_out.weight.abs().sum()), 0.0)

    def test_config_from_vlm_copies_theta_unless_overridden(self):
        self.assertEqual(train.gen_config_from_vlm(CFG, 4, (2, 2), 2).rope_theta, CFG.text.rope_theta)
        cfg = train.gen_config_from_vlm(CFG, 4, (2, 2), 2, rope_theta=3.0, guidance_scale=2.5)
        self.assertEqual((cfg.rope_theta, cfg.guidance_scale, cfg.num_groups), (3.0, 2.5, 2))

    def test_loss_uses_each_group_once_without_first_layer_residual(self):
        vlm = frozen_vlm()
        gen = train.init_from_vlm(GenerationStream(train.gen_config_from_vlm(CFG, 4, (2, 2), 2)), vlm)
        seen = []
        orig = gen.forward_layers

        def spy(x, t, layers, *a, **kw):
            seen.append((list(layers), [float(v) for v in t], kw.get("first_is_group_start", True)))
            return orig(x, t, layers, *a, **kw)
        gen.forward_layers = spy
        null = train.encode_prompts(vlm, TOK, [""], gen.cfg.prompt_template)
        prompt = train.encode_prompts(vlm, TOK, ["a red circle", "two blue squares"], gen.cfg.prompt_template)
        train.gen_loss(gen, torch.randn(2, 4, 2, 2), prompt, null, torch.Generator().manual_seed(0))
        self.assertEqual([s[0] for s in seen], [[0, 1], [2, 3]])
        self.assertTrue(all(0.0 <= t < 0.5 for t in seen[0][1]) and all(0.5 <= t < 1.0 for t in seen[1][1]))
        self.assertTrue(all(s[2] for s in seen))

    def test_low_t_weight(self):
        """w = 2: K = 2 runs group 0 twice (its own t draws); K = 1 draws about 2/5 of its t below 1/4."""
        vlm = frozen_vlm()
        null = train.encode_prompts(vlm, TOK, [""], "{prompt}.")
        for groups in (2, 1):
            gen = train.init_from_vlm(GenerationStream(train.gen_config_from_vlm(CFG, 4, (2, 2), groups)), vlm)
            gen.cfg.prompt_template = "{prompt}."
            seen = []
            orig = gen.forward_layers

            def spy(x, t, layers, *a, **kw):
                seen.append((list(layers), [float(v) for v in t]))
                return orig(x, t, layers, *a, **kw)
            gen.forward_layers = spy
            B = 400 if groups == 1 else 2
            prompt = train.encode_prompts(vlm, TOK, ["a red circle"] * B, gen.cfg.prompt_template)
            train.gen_loss(gen, torch.randn(B, 4, 2, 2), prompt, null, torch.Generator().manual_seed(0), low_t_weight=2)
            if groups == 2:
                self.assertEqual([s[0] for s in seen], [[0, 1], [2, 3], [0, 1]])
                self.assertNotEqual(seen[0][1], seen[2][1])
                self.assertTrue(all(t < 0.5 for t in seen[2][1]))
            else:
                low = sum(t < 0.25 for t in seen[0][1]) / B
                self.assertAlmostEqual(low, 0.4, delta=0.07)

    def test_condition_dropout_rate(self):
        drop = torch.rand(20000, generator=torch.Generator().manual_seed(1)) < 0.1
        self.assertAlmostEqual(float(drop.float().mean()), 0.1, delta=0.01)

    def test_training_reduces_loss(self):
        vlm = frozen_vlm()
        gen = train.init_from_vlm(GenerationStream(train.gen_config_from_vlm(CFG, 4, (2, 2), 2)), vlm)
        torch.manual_seed(0)
        x1 = torch.randn(4, 4, 2, 2)
        caps = ["a red circle", "a blue square", "two shapes", "a yellow triangle"]
        losses = []
        train.train_generator(gen, vlm, TOK, iter(lambda: (x1, caps), None), 40, lr=3e-3, seed=0,
                              log=lambda s, l: losses.append(l))
        self.assertLess(sum(losses[-5:]) / 5, 0.8 * sum(losses[:5]) / 5)


class CheckpointTest(unittest.TestCase):
    def test_save_stream_atomically_replaces_and_leaves_nothing_beside(self):
        vlm = frozen_vlm()
        cfg = train.gen_config_from_vlm(CFG, 4, (2, 2), 2)
        d = os.path.join(tempfile.mkdtemp(), "generator")
        first = train.init_from_vlm(GenerationStream(cfg), vlm)
        train.save_stream_atomically(first, d)
        second = GenerationStream(cfg)
        with torch.no_grad():
            for p in second.parameters():
                p.fill_(0.25)
        train.save_stream_atomically(second, d)
        back = GenerationStream.load(d)
        for p in back.parameters():
            self.assertTrue(torch.all(p == 0.25))
        self.assertEqual(sorted(os.listdir(os.path.dirname(d))), ["generator"])


class TinyTrainersTest(unittest.TestCase):
    def test_vlm_trainer(self):
        vlm = tiny.randomize_(Qwen2VL(CFG), 1, std=0.1)
        ids = torch.tensor(TOK.encode("<|im_start|>user\nhow many?<|im_end|>\n<|im_start|>assistant\ntwo<|im_end|>"))
        labels = ids.clone()
        labels[:-3] = -100
        losses = []
        train.train_vlm(vlm, iter(lambda: (ids, labels, None, None), None), 30, lr=3e-3,
                        log=lambda s, l: losses.append(l))
        self.assertLess(losses[-1], 0.5 * losses[0])

    def test_dcae_trainer(self):
        ae = tiny.randomize_(AutoencoderDC(tiny.tiny_dcae_config(4), with_encoder=True), 2, std=0.1)
        g = torch.Generator().manual_seed(0)
        x = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
        losses = []
        train.train_dcae(ae, iter(lambda: x, None), 30, lr=3e-3, log=lambda s, l: losses.append(l))
        self.assertLess(losses[-1], 0.7 * losses[0])


if __name__ == "__main__":
    unittest.main()
