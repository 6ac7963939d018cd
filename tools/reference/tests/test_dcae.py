"""DC-AE decoder blocks against small hand-derived cases (diffusers AutoencoderDC semantics)."""
import math
import unittest

import torch
import torch.nn.functional as F

from latte_ref import tiny
from latte_ref.dcae import GLUMBConv, LiteMLA, ResBlock, RMSNorm, UpBlock, AutoencoderDC, apply_norm


def explicit_relu_linear_attention(qkv, d, eps=1e-15):
    """qkv [C3, N] for ONE image: heads take consecutive 3d channels (q = first d, k = next d, v = last d);
    out[:, n] = sum_m v[:, m] (k_m . q_n) / (sum_m k_m . q_n + eps) with ReLU'd q, k."""
    qkv, outs = qkv.detach(), []
    for h in range(qkv.shape[0] // (3 * d)):
        blk = qkv[h * 3 * d:(h + 1) * 3 * d]
        q, k, v = F.relu(blk[:d]), F.relu(blk[d:2 * d]), blk[2 * d:]
        o = torch.zeros(d, qkv.shape[1], dtype=torch.float64)
        for n in range(qkv.shape[1]):
            w = [float(k[:, m] @ q[:, n]) for m in range(qkv.shape[1])]
            o[:, n] = sum(v[:, m].double() * w[m] for m in range(qkv.shape[1])) / (sum(w) + eps)
        outs.append(o)
    return torch.cat(outs).float()


class BlockTest(unittest.TestCase):
    def test_rms_norm_over_channels(self):
        n = RMSNorm(2)
        with torch.no_grad():
            n.weight.copy_(torch.tensor([2.0, 1.0]))
            n.bias.copy_(torch.tensor([0.5, 0.0]))
        x = torch.tensor([3.0, 4.0]).reshape(1, 2, 1, 1)
        r = math.sqrt((9 + 16) / 2 + 1e-5)
        self.assertTrue(torch.allclose(apply_norm(n, x).flatten(), torch.tensor([2 * 3 / r + 0.5, 4 / r])))

    def test_resblock_zero_branch(self):
        for norm in ("rms_norm", "batch_norm"):
            b = tiny.randomize_(ResBlock(3, norm, "silu"), 0).eval()
            with torch.no_grad():
                b.conv2.weight.zero_()
            x = torch.randn(1, 3, 5, 5)
            if norm == "rms_norm":
                want = x + b.norm.bias.reshape(1, 3, 1, 1)            # RMSNorm(0) = bias
            else:
                n = b.norm
                want = x + (n.bias - n.running_mean * n.weight / torch.sqrt(n.running_var + 1e-5)).reshape(1, 3, 1, 1)
            self.assertTrue(torch.allclose(b(x), want, atol=1e-6), norm)

    def test_upblock_shortcut_is_nearest_upsampling(self):
        for interp in (False, True):
            u = UpBlock(4, 2, interpolate=interp)
            with torch.no_grad():
                u.conv.weight.zero_()
                u.conv.bias.zero_()
            x = torch.randn(1, 4, 3, 3)
            # repeats = 2*4/4 = 2: channels (0,0,1,1,2,2,3,3) -> pixel shuffle groups of 4 -> out ch 0 = in 0,0,1,1
            y = u(x)
            self.assertEqual(tuple(y.shape), (1, 2, 6, 6))
            self.assertTrue(torch.equal(y[0, 0, 0:2, 0:2], torch.tensor([[x[0, 0, 0, 0], x[0, 0, 0, 0]],
                                                                          [x[0, 1, 0, 0], x[0, 1, 0, 0]]])))

    def test_upblock_conv_path(self):
        u = tiny.randomize_(UpBlock(4, 2, shortcut=False), 1)
        x = torch.randn(1, 4, 3, 3)
        self.assertTrue(torch.allclose(u(x), F.pixel_shuffle(F.conv2d(x, u.conv.weight, u.conv.bias, padding=1), 2)))

    def test_litemla_linear_and_quadratic_match_explicit(self):
        torch.manual_seed(0)
        d, c = 4, 8                                                   # 2 heads
        m = tiny.randomize_(LiteMLA(c, d, (), "rms_norm"), 3, std=0.4)
        for hw in ((3, 3), (2, 2)):                                   # N = 9 > d: linear; N = 4 <= d: quadratic
            x = torch.randn(1, c, *hw)
            y = x.movedim(1, -1)
            qkv = torch.cat([m.to_q(y), m.to_k(y), m.to_v(y)], -1).movedim(-1, 1).reshape(3 * c, -1)
            o = explicit_relu_linear_attention(qkv, d).reshape(1, c, *hw)
            want = apply_norm(m.norm_out, m.to_out(o.movedim(1, -1)).movedim(-1, 1)) + x
            self.assertTrue(torch.allclose(m(x), want, atol=1e-5), hw)

    def test_litemla_multiscale_branch(self):
        d, c = 4, 4
        m = tiny.randomize_(LiteMLA(c, d, (3,), "rms_norm"), 4, std=0.4)
        x = torch.randn(1, c, 3, 3)
        y = x.movedim(1, -1)
        base = torch.cat([m.to_q(y), m.to_k(y), m.to_v(y)], -1).movedim(-1, 1)
        ms = m.to_qkv_multiscale[0]
        agg = F.conv2d(F.conv2d(base, ms.proj_in.weight, padding=1, groups=3 * c), ms.proj_out.weight, groups=3)
        qkv = torch.cat([base, agg], 1).reshape(6 * c, -1)
        o = explicit_relu_linear_attention(qkv, d).reshape(1, 2 * c, 3, 3)
        want = apply_norm(m.norm_out, m.to_out(o.movedim(1, -1)).movedim(-1, 1)) + x
        self.assertTrue(torch.allclose(m(x), want, atol=1e-5))

    def test_glumbconv_zero_point_conv(self):
        g = tiny.randomize_(GLUMBConv(3), 5)
        with torch.no_grad():
            g.conv_point.weight.zero_()
        x = torch.randn(1, 3, 4, 4)
        self.assertTrue(torch.allclose(g(x), x + g.norm.bias.reshape(1, 3, 1, 1)))

    def test_glumbconv_gate(self):
        g = tiny.randomize_(GLUMBConv(2, expand=1), 6)
        x = torch.randn(1, 2, 3, 3)
        y = F.conv2d(F.silu(F.conv2d(x, g.conv_inverted.weight, g.conv_inverted.bias)), g.conv_depth.weight,
                     g.conv_depth.bias, padding=1, groups=4)
        y = F.conv2d(y[:, :2] * F.silu(y[:, 2:]), g.conv_point.weight)
        self.assertTrue(torch.allclose(g(x), apply_norm(g.norm, y) + x, atol=1e-6))

    def test_decoder_shapes_and_load(self):
        cfg = tiny.tiny_dcae_config(4)
        ae = tiny.randomize_(AutoencoderDC(cfg, with_encoder=True), 0).eval()
        z = ae.encoder(torch.randn(1, 3, 16, 16))
        self.assertEqual(tuple(z.shape), (1, 4, 4, 4))
        self.assertEqual(tuple(ae.decode(z).shape), (1, 3, 16, 16))
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            ae.save(d)
            dec = AutoencoderDC.load(d)
        self.assertTrue(torch.equal(dec.decode(z), ae.decode(z)))


if __name__ == "__main__":
    unittest.main()
