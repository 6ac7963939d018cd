"""DC-AE decoder in the diffusers AutoencoderDC layout (weights "decoder.*" + config.json).

Follows diffusers' autoencoder_dc.py / SanaMultiscaleLinearAttention / Sana GLUMBConv as on diffusers main at
commit 071190da (2026); AutoencoderDC first shipped in diffusers 0.32.0 (docs/reference.md):
  conv_in (+ channel-repeat shortcut) -> up_blocks in reverse order (deepest first), each =
  [DCUpBlock2d (except the deepest stage)] + layers_per_block x (ResBlock | EfficientViTBlock)
  -> RMSNorm over channels (eps 1e-5, affine + bias) -> conv_act (ReLU) -> conv_out 3x3.
A config's per-stage lists (block types, norm types, act fns, qkv multiscales) are read as is.
Layout NCHW. Encoder included (small) so the tiny DC-AE trainer can learn a latent space.
"""
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import st


def activation(name):
    return {"relu": nn.ReLU(), "relu6": nn.ReLU6(), "silu": nn.SiLU(), "gelu": nn.GELU(), None: nn.Identity()}[name]


class RMSNorm(nn.Module):
    """diffusers RMSNorm(dim, eps, elementwise_affine=True, bias=True), over the LAST dim."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        var = x.float().pow(2).mean(-1, keepdim=True)
        return x * torch.rsqrt(var + self.eps) * self.weight + self.bias


def make_norm(norm_type, channels):
    if norm_type == "rms_norm":
        return RMSNorm(channels, 1e-5)
    if norm_type == "batch_norm":                 # inference: running statistics
        return nn.BatchNorm2d(channels, eps=1e-5)
    raise ValueError(f"norm {norm_type!r}")


def apply_norm(norm, x):
    """RMSNorm runs over channels: move C last and back. BatchNorm2d takes NCHW."""
    return norm(x.movedim(1, -1)).movedim(-1, 1) if isinstance(norm, RMSNorm) else norm(x)


class ResBlock(nn.Module):
    def __init__(self, c, norm_type, act_fn):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.norm = make_norm(norm_type, c)
        self.nonlinearity = activation(act_fn)

    def forward(self, x):
        return apply_norm(self.norm, self.conv2(self.nonlinearity(self.conv1(x)))) + x


class MultiscaleProjection(nn.Module):
    """Depthwise k x k conv then grouped 1x1 conv (groups = 3 * heads) over the concatenated q,k,v."""

    def __init__(self, inner, heads, k):
        super().__init__()
        ch = 3 * inner
        self.proj_in = nn.Conv2d(ch, ch, k, padding=k // 2, groups=ch, bias=False)
        self.proj_out = nn.Conv2d(ch, ch, 1, 1, 0, groups=3 * heads, bias=False)

    def forward(self, x):
        return self.proj_out(self.proj_in(x))


class LiteMLA(nn.Module):
    """SanaMultiscaleLinearAttention: ReLU linear attention over q,k,v and their multi-scale aggregates."""

    def __init__(self, c, head_dim, kernel_sizes, norm_type, eps=1e-15):
        super().__init__()
        self.d, self.eps = head_dim, eps
        heads = c // head_dim
        inner = heads * head_dim
        self.to_q = nn.Linear(c, inner, bias=False)
        self.to_k = nn.Linear(c, inner, bias=False)
        self.to_v = nn.Linear(c, inner, bias=False)
        self.to_qkv_multiscale = nn.ModuleList([MultiscaleProjection(inner, heads, k) for k in kernel_sizes])
        self.to_out = nn.Linear(inner * (1 + len(kernel_sizes)), c, bias=False)
        self.norm_out = make_norm(norm_type, c)

    def forward(self, x):
        B, _, H, W = x.shape
        y = x.movedim(1, -1)
        qkv = torch.cat([self.to_q(y), self.to_k(y), self.to_v(y)], dim=3).movedim(-1, 1)   # [B, 3*inner, H, W]
        qkv = torch.cat([qkv] + [m(qkv) for m in self.to_qkv_multiscale], dim=1)
        # NB: diffusers groups CONSECUTIVE 3*d channels into one head's (q, k, v), over the concatenation
        # [q | k | v | ms(q|k|v)...]; we reproduce that grouping exactly.
        qkv = qkv.float().reshape(B, -1, 3 * self.d, H * W)
        q, k, v = qkv.chunk(3, dim=2)                                     # [B, heads', d, N]
        q, k = F.relu(q), F.relu(k)
        if H * W > self.d:                                                # linear attention
            v = F.pad(v, (0, 0, 0, 1), mode="constant", value=1.0)        # [B, h, d+1, N]: a row of ones
            o = (v @ k.transpose(-1, -2)) @ q                             # [B, h, d+1, N]
            o = o[:, :, :-1] / (o[:, :, -1:] + self.eps)
        else:                                                             # tiny maps: quadratic form
            s = k.transpose(-1, -2) @ q                                   # [B, h, N_k, N_q]
            s = s / (s.sum(dim=2, keepdim=True) + self.eps)
            o = v @ s
        o = o.to(x.dtype).reshape(B, -1, H, W)
        o = self.to_out(o.movedim(1, -1)).movedim(-1, 1)
        return apply_norm(self.norm_out, o) + x


class GLUMBConv(nn.Module):
    """1x1 expand (x4, x2 for the gate) + SiLU -> depthwise 3x3 -> GLU with SiLU gate -> 1x1 -> RMSNorm, + x."""

    def __init__(self, c, expand=4):
        super().__init__()
        hid = int(expand * c)
        self.conv_inverted = nn.Conv2d(c, hid * 2, 1, 1, 0)
        self.conv_depth = nn.Conv2d(hid * 2, hid * 2, 3, 1, 1, groups=hid * 2)
        self.conv_point = nn.Conv2d(hid, c, 1, 1, 0, bias=False)
        self.norm = RMSNorm(c, 1e-5)

    def forward(self, x):
        y = self.conv_depth(F.silu(self.conv_inverted(x)))
        y, gate = y.chunk(2, dim=1)
        return apply_norm(self.norm, self.conv_point(y * F.silu(gate))) + x


class EfficientViTBlock(nn.Module):
    def __init__(self, c, head_dim, kernel_sizes, norm_type):
        super().__init__()
        self.attn = LiteMLA(c, head_dim, kernel_sizes, norm_type)
        self.conv_out = GLUMBConv(c)

    def forward(self, x):
        return self.conv_out(self.attn(x))


class UpBlock(nn.Module):
    """DCUpBlock2d: conv then pixel shuffle (or nearest 2x then conv); shortcut = channel repeat + shuffle."""

    def __init__(self, cin, cout, interpolate=False, shortcut=True):
        super().__init__()
        self.interpolate, self.shortcut = interpolate, shortcut
        self.repeats = cout * 4 // cin
        self.conv = nn.Conv2d(cin, cout if interpolate else cout * 4, 3, 1, 1)

    def forward(self, x):
        y = self.conv(F.interpolate(x, scale_factor=2, mode="nearest")) if self.interpolate else \
            F.pixel_shuffle(self.conv(x), 2)
        if self.shortcut:
            y = y + F.pixel_shuffle(x.repeat_interleave(self.repeats, dim=1), 2)
        return y


def _per_stage(v, n):
    return [v] * n if isinstance(v, str) else list(v)


def make_block(kind, c, cfg, norm_type, act_fn, ms):
    if kind == "ResBlock":
        return ResBlock(c, norm_type, act_fn)
    if kind == "EfficientViTBlock":
        return EfficientViTBlock(c, cfg.get("attention_head_dim", 32), tuple(ms), norm_type)
    raise ValueError(f"block type {kind!r}")


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch = list(cfg["decoder_block_out_channels"])
        layers = list(cfg["decoder_layers_per_block"])
        n = len(ch)
        kinds = _per_stage(cfg.get("decoder_block_types", "ResBlock"), n)
        norms = _per_stage(cfg.get("decoder_norm_types", "rms_norm"), n)
        acts = _per_stage(cfg.get("decoder_act_fns", "silu"), n)
        ms = cfg.get("decoder_qkv_multiscales", [[]] * n)
        interp = cfg.get("upsample_block_type", "pixel_shuffle") == "interpolate"
        lat = cfg["latent_channels"]
        self.conv_in = nn.Conv2d(lat, ch[-1], 3, 1, 1)
        self.in_shortcut = cfg.get("decoder_in_shortcut", True)
        self.in_repeats = ch[-1] // lat
        stages = []
        for i in range(n):                      # stored shallow-first; run deepest-first
            blocks = []
            if i < n - 1 and layers[i] > 0:
                blocks.append(UpBlock(ch[i + 1], ch[i], interp, True))
            blocks += [make_block(kinds[i], ch[i], cfg, norms[i], acts[i], ms[i]) for _ in range(layers[i])]
            stages.append(nn.Sequential(*blocks))
        self.up_blocks = nn.ModuleList(stages)
        c0 = ch[0] if layers[0] > 0 else ch[1]
        self.norm_out = RMSNorm(c0, 1e-5)
        self.conv_act = activation(cfg.get("decoder_conv_act_fn", "relu"))
        self.conv_out = nn.Conv2d(c0, cfg.get("in_channels", 3), 3, 1, 1) if layers[0] > 0 else \
            UpBlock(c0, cfg.get("in_channels", 3), interp, shortcut=False)

    def forward(self, z):
        x = self.conv_in(z)
        if self.in_shortcut:
            x = x + z.repeat_interleave(self.in_repeats, dim=1)
        for stage in reversed(self.up_blocks):
            x = stage(x)
        return self.conv_out(self.conv_act(apply_norm(self.norm_out, x)))


class DownBlock(nn.Module):
    """DCDownBlock2d with pixel-unshuffle downsampling and the channel-averaging shortcut."""

    def __init__(self, cin, cout, shortcut=True):
        super().__init__()
        self.shortcut, self.group = shortcut, cin * 4 // cout
        self.conv = nn.Conv2d(cin, cout // 4, 3, 1, 1)

    def forward(self, x):
        y = F.pixel_unshuffle(self.conv(x), 2)
        if self.shortcut:
            y = y + F.pixel_unshuffle(x, 2).unflatten(1, (-1, self.group)).mean(dim=2)
        return y


class Encoder(nn.Module):
    """diffusers Encoder restricted to ResBlock/EfficientViT stages with pixel_unshuffle downsampling."""

    def __init__(self, cfg):
        super().__init__()
        ch = list(cfg["encoder_block_out_channels"])
        layers = list(cfg["encoder_layers_per_block"])
        n = len(ch)
        kinds = _per_stage(cfg.get("encoder_block_types", "ResBlock"), n)
        ms = cfg.get("encoder_qkv_multiscales", [[]] * n)
        if layers[0] == 0:
            raise ValueError("encoder_layers_per_block[0] == 0 is not supported here")
        self.conv_in = nn.Conv2d(cfg.get("in_channels", 3), ch[0], 3, 1, 1)
        stages = []
        for i in range(n):
            blocks = [make_block(kinds[i], ch[i], cfg, "rms_norm", "silu", ms[i]) for _ in range(layers[i])]
            if i < n - 1 and layers[i] > 0:
                blocks.append(DownBlock(ch[i], ch[i + 1]))
            stages.append(nn.Sequential(*blocks))
        self.down_blocks = nn.ModuleList(stages)
        self.conv_out = nn.Conv2d(ch[-1], cfg["latent_channels"], 3, 1, 1)
        self.out_group = ch[-1] // cfg["latent_channels"]

    def forward(self, x):
        x = self.conv_in(x)
        for stage in self.down_blocks:
            x = stage(x)
        return self.conv_out(x) + x.unflatten(1, (-1, self.out_group)).mean(dim=2)


class AutoencoderDC(nn.Module):
    def __init__(self, cfg, with_encoder=False):
        super().__init__()
        self.config = cfg
        self.decoder = Decoder(cfg)
        self.encoder = Encoder(cfg) if with_encoder else None
        self.scaling_factor = cfg.get("scaling_factor", 1.0)

    def decode(self, z):
        return self.decoder(z)

    @staticmethod
    def load(directory, with_encoder=False):
        with open(os.path.join(directory, "config.json")) as f:
            cfg = json.load(f)
        m = AutoencoderDC(cfg, with_encoder)
        sd = st.load_checkpoint_dir(directory)
        if not with_encoder:
            sd = {k: v for k, v in sd.items() if k.startswith("decoder.")}
        missing, unexpected = m.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]   # BatchNorm bookkeeping
        if missing or unexpected:
            raise ValueError(f"VAE checkpoint mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
        return m.eval()

    def save(self, directory):
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump({"_class_name": "AutoencoderDC", **self.config}, f, indent=2)
        st.save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()},
                     os.path.join(directory, "diffusion_pytorch_model.safetensors"))
