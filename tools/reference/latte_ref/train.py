"""Trainers (docs/model.md section 6): the generation stream (the only network LaTtE-Flow trains), plus minimal
trainers for a tiny Qwen2-VL and a tiny DC-AE (used by the shapes-world model; kept small and plain).

Generation-stream objective, per image with latent x1 and prompt c (replaced by the null prompt with
probability 10%, shared by the image's K copies): for each group k draw t_k ~ U[b_k, b_{k+1}) and an
independent x0_k ~ N(0, I) (D), x_t = t_k x1 + (1 - t_k) x0_k, run group k only (patch embed -> its M
layers, no TCRA residual into its first layer -> head), loss = mean over k of MSE(v_k, x1 - x0_k).
"""
import os
import shutil

import torch
import torch.nn.functional as F

from .genstream import GenConfig, GenerationStream
from .rope import get_rope_index


# ---- generation stream -----------------------------------------------------------------------------------
def init_from_vlm(gen: GenerationStream, vlm):
    """Layer l <- VLM decoder layer l (attention, MLP, input/post norms); final norm <- VLM's; the
    modulation heads, TCRA gates, head modulation and output projection start at zero (adaLN-Zero)."""
    src = vlm.model
    with torch.no_grad():
        for l, layer in enumerate(gen.layers):
            v = src.layers[l]
            for name in ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp"):
                getattr(layer, name).load_state_dict(getattr(v, name).state_dict())
            for lin in (layer.modulation, layer.tcra_gate):
                lin.weight.zero_()
                lin.bias.zero_()
        gen.head.norm.load_state_dict(src.norm.state_dict())
        for lin in (gen.head.head_modulation, gen.head.proj_out):
            lin.weight.zero_()
            lin.bias.zero_()
        for lin in (gen.time_embedder.linear_1, gen.time_embedder.linear_2):
            torch.nn.init.normal_(lin.weight, std=0.02)
            lin.bias.zero_()
    return gen


def gen_config_from_vlm(vcfg, latent_channels, latent_size, num_groups=4, patch_size=1, **kw):
    """kw overrides any GenConfig field, rope_theta included (the image grid's M-RoPE may use its own theta)."""
    t = vcfg.text
    base = dict(hidden_size=t.hidden_size, num_attention_heads=t.num_attention_heads,
                num_key_value_heads=t.num_key_value_heads, intermediate_size=t.intermediate_size,
                num_layers=t.num_hidden_layers, latent_channels=latent_channels,
                latent_size=list(latent_size), patch_size=patch_size, num_groups=num_groups,
                rms_norm_eps=t.rms_norm_eps, rope_theta=t.rope_theta, mrope_section=list(t.mrope_section))
    return GenConfig(**{**base, **kw})


def prompt_kv(vlm, tokenizer, texts, template):
    """Batch of prompt texts -> (per-layer (K, V) [B, P_max, G, d], lengths [B], key mask [B, P_max]).
    Right padding: with a causal prompt, padding after a prompt does not change its K/V. Differentiable
    (the trainer's prompt anchor trains through it); encode_prompts is the same without gradients."""
    ids = [tokenizer.encode(template.format(prompt=t)) for t in texts]
    P = max(map(len, ids))
    pad = tokenizer.token_id("<|endoftext|>") or 0
    x = torch.tensor([s + [pad] * (P - len(s)) for s in ids])
    emb = vlm.model.embed_tokens(x)
    pos = torch.arange(P)[None, None].expand(3, len(ids), P)
    cos, sin = vlm.rope(pos)
    _, cache = vlm.model(emb, cos, sin)
    lens = torch.tensor([len(s) for s in ids])
    return cache, lens, torch.arange(P)[None] < lens[:, None]


encode_prompts = torch.no_grad()(prompt_kv)


def gen_loss(gen, x1, prompt, null, generator=None, cond_drop=0.1, low_t_weight=1):
    """x1 [B, C, h, w]; prompt/null = encode_prompts(...) outputs (null for B = 1, broadcast).
    Returns the mean over groups of the per-group MSE.
    low_t_weight = w > 1 trains the noisiest quarter of the time range w times as often (the layout is decided
    there): K > 1 adds w - 1 more draws for group 0; K = 1 draws t from quarters weighted (w, 1, 1, 1)."""
    cfg = gen.cfg
    B = x1.shape[0]
    drop = torch.rand(B, generator=generator) < cond_drop
    kv, lens, mask = _mix_prompts(prompt, null, drop)
    b = cfg.boundaries
    groups = list(range(cfg.num_groups)) + [0] * (int(low_t_weight) - 1 if cfg.num_groups > 1 else 0)
    losses = []
    for k in groups:
        u = torch.rand(B, generator=generator)
        if cfg.num_groups == 1 and low_t_weight > 1:
            q = torch.multinomial(torch.tensor([float(low_t_weight), 1.0, 1.0, 1.0]), B, replacement=True, generator=generator)
            t = (q + u) / 4
        else:
            t = b[k] + (b[k + 1] - b[k]) * u
        x0 = torch.randn(x1.shape, generator=generator)
        xt = t[:, None, None, None] * x1 + (1 - t[:, None, None, None]) * x0
        v = gen.forward_layers(xt, t, list(cfg.group_layers(k)), kv, lens, mask)
        losses.append(F.mse_loss(v, x1 - x0))
    return torch.stack(losses).mean()


def _mix_prompts(prompt, null, drop):
    """Replace dropped rows by the null prompt, padding both to a common length."""
    (kv, lens, mask), (nkv, nlens, nmask) = prompt, null
    P = max(kv[0][0].shape[1], nkv[0][0].shape[1])

    def pad(t):
        return F.pad(t, (0, 0, 0, 0, 0, P - t.shape[1]))
    out = []
    for (k, v), (nk, nv) in zip(kv, nkv):
        sel = drop[:, None, None, None]
        out.append((torch.where(sel, pad(nk).expand_as(pad(k)), pad(k)), torch.where(sel, pad(nv).expand_as(pad(v)), pad(v))))
    m = F.pad(mask, (0, P - mask.shape[1]))
    nm = F.pad(nmask, (0, P - nmask.shape[1])).expand_as(m)
    return out, torch.where(drop, nlens.expand_as(lens), lens), torch.where(drop[:, None], nm, m)


def train_generator(gen, vlm, tokenizer, batches, steps, lr=1e-4, seed=0, log=None):
    """batches: iterator of (latents [B, C, h, w] already scaled by the VAE's scaling_factor, captions)."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(gen.parameters(), lr=lr, weight_decay=0.0)
    null = encode_prompts(vlm, tokenizer, [gen.cfg.null_prompt], gen.cfg.prompt_template)
    gen.train()
    for step in range(steps):
        x1, caps = next(batches)
        prompt = encode_prompts(vlm, tokenizer, caps, gen.cfg.prompt_template)
        loss = gen_loss(gen, x1, prompt, null, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log:
            log(step, float(loss))
    return gen.eval()


# ---- tiny Qwen2-VL ---------------------------------------------------------------------------------------
def vlm_loss(vlm, input_ids, labels, pixel_values=None, grid_thw=None):
    """Next-token cross-entropy for one sequence; labels = -100 where not trained (prompt, image tokens)."""
    x = vlm.embed(input_ids, pixel_values, grid_thw)
    pos, _ = get_rope_index(input_ids, grid_thw, vlm.cfg)
    cos, sin = vlm.rope(pos[:, None])
    h, _ = vlm.model(x, cos, sin)
    logits = h[0, :-1] @ vlm.lm_weight().t()
    return F.cross_entropy(logits, labels[1:], ignore_index=-100)


def train_vlm(vlm, examples, steps, lr=1e-3, log=None):
    """examples: iterator of (input_ids, labels, pixel_values | None, grid_thw | None)."""
    opt = torch.optim.AdamW(vlm.parameters(), lr=lr)
    vlm.train()
    for step in range(steps):
        loss = vlm_loss(vlm, *next(examples))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log:
            log(step, float(loss))
    return vlm.eval()


# ---- tiny DC-AE ------------------------------------------------------------------------------------------
def train_dcae(ae, images, steps, lr=1e-3, log=None):
    """images: iterator of [B, 3, H, W] in [-1, 1]. Plain reconstruction MSE through encoder + decoder."""
    opt = torch.optim.AdamW(ae.parameters(), lr=lr)
    ae.train()
    for step in range(steps):
        x = next(images)
        loss = F.mse_loss(ae.decoder(ae.encoder(x)), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log:
            log(step, float(loss))
    return ae.eval()


def save_stream_atomically(gen, gen_dir):
    """Writes the stream beside gen_dir and swaps it in: a kill mid-save never leaves a torn checkpoint
    (a long run checkpoints every few minutes, and --resume continues from the last one)."""
    gen.eval()
    tmp, old = gen_dir.rstrip("/") + ".saving", gen_dir.rstrip("/") + ".old"
    shutil.rmtree(tmp, ignore_errors=True)
    gen.save(tmp)
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(gen_dir):
        os.rename(gen_dir, old)
    os.rename(tmp, gen_dir)
    shutil.rmtree(old, ignore_errors=True)
