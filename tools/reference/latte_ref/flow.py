"""Flow-matching sampler (docs/model.md section 4) and the text-to-image pipeline around it.

Convention: x_t = t x1 + (1 - t) x0, x0 ~ N(0, I) at t = 0, data at t = 1, the network predicts
v = x1 - x0, and we integrate dx/dt = v from t = 0 to 1.

Schedule: t_i = shift(i / steps), i = 0..steps, i / steps in float64, with the time shift (D) acting on the
noise level sigma = 1 - t as in SD3: sigma' = s sigma / (1 + (s - 1) sigma), so s > 1 spends more steps
at high noise; s = 1 is the identity. Step i: dt = float32(t_{i+1} - t_i);
  euler: x += dt * v(x, t_i)
  heun:  v1 = v(x, t_i); xe = x + dt * v1; v2 = v(xe, t_{i+1}); x += dt * 0.5 * (v1 + v2)  (every step,
         the last included: in flow matching v is finite at t = 1)
The network time is t_i itself (float32), and the expert group is chosen by t_i (float64).
CFG: v = v_null + w (v_c - v_null); w == 1 evaluates only the conditional branch.
"""
import torch

from . import rng


def shift_time(t, shift):
    if shift == 1.0:
        return float(t)
    sigma = 1.0 - t
    return 1.0 - shift * sigma / (1.0 + (shift - 1.0) * sigma)


def schedule(steps, shift=1.0):
    if steps < 1:
        raise ValueError("steps must be >= 1")
    return [shift_time(i / steps, shift) for i in range(steps + 1)]


def integrate(v_fn, x, steps, method="euler", shift=1.0, callback=None):
    """Integrate dx/dt = v_fn(x, t) over the schedule. v_fn(x, t: float) -> tensor like x."""
    ts = schedule(steps, shift)
    for i in range(steps):
        dt = float(torch.tensor(ts[i + 1] - ts[i], dtype=torch.float32))
        v1 = v_fn(x, ts[i])
        if method == "euler":
            x = x + dt * v1
        elif method == "heun":
            v2 = v_fn(x + dt * v1, ts[i + 1])
            x = x + dt * (0.5 * (v1 + v2))
        else:
            raise ValueError(f"unknown sampler {method!r}")
        if callback:
            callback(i, ts[i], x)
    return x


def cfg_combine(v_cond, v_null, w):
    return v_null + w * (v_cond - v_null)


def guided_velocity(model, prompt_kv, null_kv, w):
    """v_fn for integrate(): the expert group of t, with classifier-free guidance. w: one weight, or a
    list of one per expert group (the group that owns t)."""
    def v_fn(x, t):
        wt = float(w[model.cfg.group_of(t)]) if isinstance(w, (list, tuple)) else w
        vc = model.velocity(x, t, prompt_kv)
        if wt == 1.0:
            return vc
        return cfg_combine(vc, model.velocity(x, t, null_kv), wt)
    return v_fn


def encode_prompt(vlm, tokenizer, text, template):
    """Prompt text -> per-layer (K, V) from the frozen VLM (the prompt is text only: no image tokens)."""
    ids = torch.tensor(tokenizer.encode(template.format(prompt=text)), dtype=torch.long)
    return vlm.prompt_kv(ids)


@torch.no_grad()
def generate_latent(model, prompt_kv, null_kv, seed, steps=None, method=None, guidance=None, shift=None,
                    batch=1):
    """Seeded noise -> sampled latent [batch, C, h, w] (config defaults for None arguments)."""
    cfg = model.cfg
    C, (h, w) = cfg.latent_channels, cfg.latent_size
    x0 = rng.normal(seed, (batch, C, h, w))
    w_ = (cfg.guidance_per_group or cfg.guidance_scale) if guidance is None else guidance
    return integrate(guided_velocity(model, prompt_kv, null_kv, w_), x0,
                     cfg.num_steps if steps is None else steps, method or cfg.sampler,
                     cfg.time_shift if shift is None else shift)


def latent_to_uint8(vae_decoder, x, scaling_factor):
    """z = x / scaling_factor -> DC-AE decoder -> [-1, 1] -> uint8 [B, H, W, 3] (round half up)."""
    img = vae_decoder(x / scaling_factor).clamp(-1, 1)
    return ((img + 1) * 127.5 + 0.5).floor().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
