"""Flow sampler: exact on fields it should integrate exactly; schedule, time shift, CFG, seeded runs."""
import unittest

import torch

from latte_ref import flow, rng
from tests.test_genstream import make, prompt_kv


class SamplerTest(unittest.TestCase):
    def test_euler_exact_on_constant_field(self):
        # the flow-matching target itself: x1 - x0 along the straight path
        x0, x1 = torch.randn(2, 3, 4, 4).double(), torch.randn(2, 3, 4, 4).double()
        for steps in (1, 4, 40):
            x = flow.integrate(lambda x, t: x1 - x0, x0, steps, "euler")
            self.assertTrue(torch.allclose(x, x1, atol=1e-6), steps)

    def test_heun_exact_on_linear_in_t_field(self):
        a, b = torch.randn(5).double(), torch.randn(5).double()
        x0 = torch.randn(5).double()
        want = x0 + a + b / 2                                        # integral of a + b t over [0, 1]
        for steps in (1, 3, 10):
            x = flow.integrate(lambda x, t: a + b * t, x0, steps, "heun")
            self.assertTrue(torch.allclose(x, want, atol=1e-6), steps)
        x = flow.integrate(lambda x, t: a + b * t, x0, 10, "euler")   # Euler is first order: not exact
        self.assertFalse(torch.allclose(x, want, atol=1e-3))

    def test_linear_field_with_shift_is_still_exact(self):
        x0, d = torch.randn(4).double(), torch.randn(4).double()
        x = flow.integrate(lambda x, t: d, x0, 7, "euler", shift=3.0)
        self.assertTrue(torch.allclose(x, x0 + d, atol=1e-6))

    def test_schedule(self):
        self.assertEqual(flow.schedule(4), [0.0, 0.25, 0.5, 0.75, 1.0])
        s = flow.schedule(10, 3.0)
        self.assertEqual((s[0], s[-1]), (0.0, 1.0))
        self.assertTrue(all(a < b for a, b in zip(s, s[1:])))
        self.assertLess(s[5], 0.5)                                  # shift > 1: more steps at high noise
        self.assertAlmostEqual(s[5], 1 - 3 * 0.5 / (1 + 2 * 0.5))
        with self.assertRaises(ValueError):
            flow.schedule(0)

    def test_cfg(self):
        vc, vn = torch.tensor([1.0, 2.0]), torch.tensor([0.5, -1.0])
        self.assertTrue(torch.equal(flow.cfg_combine(vc, vn, 1.0), vc))
        self.assertTrue(torch.allclose(flow.cfg_combine(vc, vn, 3.0), torch.tensor([2.0, 8.0])))

    def test_guidance_one_skips_null_branch_and_routing_per_step(self):
        m = make(2, 4)
        kv, nkv = prompt_kv(m, P=5, seed=1), prompt_kv(m, P=3, seed=2)
        calls = []
        orig = m.forward_group

        def spy(x, t, k, pkv, *a):
            calls.append((round(float(t), 4), k, pkv is nkv))
            return orig(x, t, k, pkv, *a)
        m.forward_group = spy
        x0 = rng.normal(3, (1, 3, 4, 6))
        with torch.no_grad():
            flow.integrate(flow.guided_velocity(m, kv, nkv, 1.0), x0, 4)
            self.assertEqual(calls, [(0.0, 0, False), (0.25, 0, False), (0.5, 1, False), (0.75, 1, False)])
            calls.clear()
            flow.integrate(flow.guided_velocity(m, kv, nkv, 2.5), x0, 2, "heun")
            self.assertEqual(calls, [(0.0, 0, False), (0.0, 0, True), (0.5, 1, False), (0.5, 1, True),
                                     (0.5, 1, False), (0.5, 1, True), (1.0, 1, False), (1.0, 1, True)])
            calls.clear()   # one weight per group: group 0 guided, group 1 (weight 1) without the null branch
            flow.integrate(flow.guided_velocity(m, kv, nkv, [2.5, 1.0]), x0, 4)
            self.assertEqual(calls, [(0.0, 0, False), (0.0, 0, True), (0.25, 0, False), (0.25, 0, True),
                                     (0.5, 1, False), (0.75, 1, False)])
            m.forward_group = orig
            m.cfg.guidance_per_group = [3.0, 3.0]   # the config's per-group default equals the same single weight
            self.assertTrue(torch.equal(flow.generate_latent(m, kv, nkv, seed=4, steps=3),
                                        flow.generate_latent(m, kv, nkv, seed=4, steps=3, guidance=3.0)))

    def test_generate_latent_is_seeded(self):
        m = make(2, 4)
        kv, nkv = prompt_kv(m, seed=1), prompt_kv(m, seed=2)
        a = flow.generate_latent(m, kv, nkv, seed=11, steps=3)
        self.assertEqual(tuple(a.shape), (1, 3, 4, 6))
        self.assertTrue(torch.equal(a, flow.generate_latent(m, kv, nkv, seed=11, steps=3)))
        self.assertFalse(torch.equal(a, flow.generate_latent(m, kv, nkv, seed=12, steps=3)))


if __name__ == "__main__":
    unittest.main()
