"""Regenerate every parity fixture in test/fixtures/ deterministically (tiny random models, f32).

    /usr/bin/python3 tools/reference/make_fixtures.py [--out test/fixtures] [--only NAME[,NAME]]

--only regenerates some fixture groups (models, vlm, vlm_bf16, gen, vae, sampling, pipeline) against the tiny model
already in --out and updates only their files' MANIFEST.json entries; without it everything is rewritten.

Layout (docs/reference.md describes every tensor):
  tiny-model/                      a complete tiny LaTtE-Flow model in the documented directory layout
    latte_flow.json                  manifest: where each part lives
    vlm/      config.json model.safetensors tokenizer.json preprocessor_config.json
    generator/ config.json model.safetensors        (L = 4, K = 2)
    vae/      config.json diffusion_pytorch_model.safetensors
  vlm_*.safetensors, gen_*.safetensors, vae_*.safetensors, noise.safetensors
  vlm_bf16.safetensors             the f32 reference logits next to bf16-weight and all-bf16 runs of the tiny VLM
  pipeline.safetensors             end-to-end text_to_image of tiny-model (uint8 images), for generateImage parity
Each fixture file holds inputs "in.*", outputs "out.*" and, for single-layer fixtures, the layer's weights
under their checkpoint names; its __metadata__ has "config" (JSON) and "model" (the model dir it uses).
MANIFEST.json lists every file with its size and sha256.
"""
import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from latte_ref import chat, flow, preprocess, rng, rope, sampling, st, tiny  # noqa: E402
from latte_ref import text as text_mod, vision as vision_mod        # noqa: E402
from latte_ref.config import Qwen2VLConfig                          # noqa: E402
from latte_ref.dcae import AutoencoderDC                            # noqa: E402
from latte_ref.genstream import GenerationStream, image_positions   # noqa: E402
from latte_ref.rope import get_rope_index, mrope_cos_sin            # noqa: E402
from latte_ref.tokenizer import Tokenizer                           # noqa: E402
from latte_ref.train import gen_config_from_vlm, init_from_vlm      # noqa: E402
from latte_ref.vlm import Qwen2VL                                   # noqa: E402

PCFG = {"min_pixels": 56 * 56, "max_pixels": 28 * 28 * 16, "patch_size": 14, "temporal_patch_size": 2,
        "merge_size": 2, "rescale_factor": 1 / 255, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711]}
PROMPT = "a small red circle on the left"


def fixture_image(h=45, w=71):
    """Deterministic smooth test picture (uint8 RGB)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([127 + 120 * np.sin(xx / 7 + yy / 11), 127 + 120 * np.cos(yy / 5),
                    255 * ((xx + 2 * yy) % 23) / 23], -1)
    return np.clip(img.round(), 0, 255).astype(np.uint8)


WRITTEN = []   # paths save() wrote, for --only's partial MANIFEST.json update


def save(out, name, tensors, config, model=None):
    meta = {"config": json.dumps(config, sort_keys=True)}
    if model:
        meta["model"] = model
    st.save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out, name), meta)
    WRITTEN.append(os.path.join(out, name))


def prefixed(module, prefix):
    return {prefix + k: v.detach().clone() for k, v in module.state_dict().items()}


# ---- models ----------------------------------------------------------------------------------------------
def build_models(root):
    vdir, gdir, adir = (os.path.join(root, d) for d in ("vlm", "generator", "vae"))
    os.makedirs(vdir, exist_ok=True)
    specials = tiny.write_tokenizer_json(os.path.join(vdir, "tokenizer.json"), 40)
    tok = Tokenizer(os.path.join(vdir, "tokenizer.json"))
    cfg = tiny.tiny_qwen2vl_config(len(tok.vocab) + len(tok.added), specials, layers=4)
    vlm = tiny.randomize_(Qwen2VL(cfg), 1, std=0.3).eval()
    vlm.save_pretrained(vdir)
    with open(os.path.join(vdir, "preprocessor_config.json"), "w") as f:
        json.dump({"image_processor_type": "Qwen2VLImageProcessor", "do_resize": True, "do_rescale": True,
                   "do_normalize": True, "resample": 3, **PCFG}, f, indent=2)
    gcfg = gen_config_from_vlm(cfg, latent_channels=4, latent_size=(4, 4), num_groups=2, guidance_scale=2.0,
                               num_steps=4)
    gen = init_from_vlm(GenerationStream(gcfg), vlm)
    tiny.randomize_(gen, 2, std=0.1)                      # "trained" weights: nonzero gates and heads
    with torch.no_grad():                                 # make modulation and TCRA gates matter visibly
        for layer in gen.layers:
            layer.modulation.weight.mul_(4.0)
            layer.tcra_gate.weight.mul_(8.0)
    gen.save(gdir)
    vae = tiny.randomize_(AutoencoderDC(tiny.tiny_dcae_config(4)), 3, std=0.15).eval()
    vae.save(adir)
    with open(os.path.join(root, "latte_flow.json"), "w") as f:
        json.dump({"format": "latte-flow", "format_version": 1, "vlm": "vlm", "generator": "generator",
                   "vae": "vae", "tokenizer": "vlm/tokenizer.json"}, f, indent=2)
    for dp, _, fs in os.walk(root):
        WRITTEN.extend(os.path.join(dp, f) for f in fs)
    return load_models(root)


def load_models(root):
    vdir, gdir, adir = (os.path.join(root, d) for d in ("vlm", "generator", "vae"))
    return (Qwen2VL.from_pretrained(vdir), Tokenizer(os.path.join(vdir, "tokenizer.json")),
            GenerationStream.load(gdir), AutoencoderDC.load(adir))


# ---- VLM fixtures ----------------------------------------------------------------------------------------
def vlm_inputs(tok):
    """The picture and chat prompt of the whole-VLM fixtures -> (image, pixel_values, grid_thw, text, ids)."""
    img = fixture_image()
    pv, grid = preprocess.preprocess_image(img, PCFG)
    text = chat.render([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "describe the image."}]}])
    text = chat.expand_image_pads(text, [grid[0].tolist()], 2)
    return img, pv, grid, text, torch.tensor(tok.encode(text), dtype=torch.long)


def vlm_fixtures(out, vlm, tok):
    cfg = vlm.cfg
    c = cfg.to_hf_dict()
    img, pv, grid, text, ids = vlm_inputs(tok)
    h, w = int(grid[0, 1]) * 14, int(grid[0, 2]) * 14
    save(out, "vlm_preprocess.safetensors",
         {"in.image": torch.from_numpy(img), "out.resized": torch.from_numpy(preprocess.resize_bicubic(img, h, w)),
          "out.pixel_values": pv, "out.grid_thw": grid}, PCFG)
    with torch.no_grad():
        x = vlm.visual.patch_embed(pv)
        cos, sin = vlm.visual.rotary(grid)
        blk = vlm.visual.blocks[0]
        y = blk(x, cos, sin, vlm.visual.segments(grid))
        save(out, "vlm_vision_block.safetensors",
             {**prefixed(blk, "visual.blocks.0."), "in.hidden": x, "in.grid_thw": grid, "out.cos": cos,
              "out.sin": sin, "out.hidden": y}, c["vision_config"])
        emb, pre = vlm.visual(pv, grid, return_pre_merger=True)
        save(out, "vlm_vision_tower.safetensors", {"in.pixel_values": pv, "in.grid_thw": grid,
             "out.patch_embed": x, "out.pre_merger": pre, "out.image_embeds": emb}, c, "tiny-model/vlm")

        pos, delta = get_rope_index(ids, grid, cfg)
        # one decoder layer on the real embedded prompt, with M-RoPE positions covering an image
        xe = vlm.embed(ids, pv, grid)
        cs, sn = vlm.rope(pos[:, None])
        layer = vlm.model.layers[0]
        hy, (k, v) = layer(xe, cs, sn)
        save(out, "vlm_decoder_layer.safetensors",
             {**prefixed(layer, "model.layers.0."), "in.hidden": xe, "in.position_ids": pos[:, None],
              "out.cos": cs, "out.sin": sn, "out.hidden": hy, "out.k": k, "out.v": v}, c)
        logits, _ = vlm.prefill(ids, pv, grid)
        save(out, "vlm_logits.safetensors", {"in.input_ids": ids, "in.pixel_values": pv, "in.grid_thw": grid,
             "out.position_ids": pos, "out.rope_delta": torch.tensor([delta]), "out.logits": logits},
             {**c, "prompt": text}, "tiny-model/vlm")
        stop = [tok.token_id(t) for t in chat.STOP_TOKENS]
        sampling = {"temperature": 0.8, "top_k": 20, "top_p": 0.9, "seed": 1234}
        greedy = vlm.generate(ids, pv, grid, max_new_tokens=6)
        sampled = vlm.generate(ids, pv, grid, max_new_tokens=6, **sampling)
        save(out, "vlm_generate.safetensors", {"in.input_ids": ids, "in.pixel_values": pv, "in.grid_thw": grid,
             "out.greedy": torch.tensor(greedy), "out.sampled": torch.tensor(sampled)},
             {"max_new_tokens": 6, "stop_ids": stop, "sampled_with": sampling, "prompt": text}, "tiny-model/vlm")


@contextlib.contextmanager
def hf_bf16_rotary():
    """Rotary dtype handling of transformers' Qwen2-VL, so the reference runs with bf16 activations: its
    f32 cos/sin tables would otherwise promote q, k to f32 and the P V einsum (f32 P, bf16 V) fails. Decoder
    (Qwen2VLRotaryEmbedding): tables cast to the activation dtype, rotation in bf16. Vision tower
    (apply_rotary_pos_emb_vision): rotation in f32, q and k rounded back to bf16. No-ops for f32 inputs."""
    saved = text_mod.apply_rotary, vision_mod.apply_rotary

    def decoder(x, cos, sin):
        return rope.apply_rotary(x, cos.to(x.dtype), sin.to(x.dtype))

    def vision(x, cos, sin):
        return rope.apply_rotary(x.float(), cos.float(), sin.float()).to(x.dtype)

    text_mod.apply_rotary, vision_mod.apply_rotary = decoder, vision
    try:
        yield
    finally:
        text_mod.apply_rotary, vision_mod.apply_rotary = saved


def logits_error(x, ref):
    """max |x - ref|, that over max |ref|, and on how many rows argmax agrees (numbers at 4 significant digits)."""
    d = float((x - ref).abs().max())
    return {"max_abs_err": float(f"{d:.4g}"), "max_rel_err": float(f"{d / float(ref.abs().max()):.4g}"),
            "argmax_agree_rows": int((x.argmax(-1) == ref.argmax(-1)).sum()), "rows": int(ref.shape[0])}


def vlm_bf16_fixtures(out, vdir):
    """Prefill logits of the vlm_logits prompt in three precisions, for testing a bf16-weight engine:
    f32 (= vlm_logits out.logits); bf16w = every checkpoint tensor rounded to bf16, all arithmetic f32 (what
    bf16 weight storage with f32 activations computes); bf16 = the model and pixel values in bf16 throughout
    (transformers' dtype handling: f32 RMSNorm statistics and softmax, see hf_bf16_rotary), a naive upper bound."""
    tok = Tokenizer(os.path.join(vdir, "tokenizer.json"))
    _, pv, grid, text, ids = vlm_inputs(tok)
    f32 = Qwen2VL.from_pretrained(vdir)
    bf16w = Qwen2VL.from_pretrained(vdir)
    bf16w.load_state_dict({k: v.to(torch.bfloat16).to(torch.float32) for k, v in bf16w.state_dict().items()})
    bf16 = Qwen2VL.from_pretrained(vdir, torch.bfloat16)
    with torch.no_grad():
        l32, _ = f32.prefill(ids, pv, grid)
        lw, _ = bf16w.prefill(ids, pv, grid)
        with hf_bf16_rotary():
            lb, _ = bf16.prefill(ids, pv.to(torch.bfloat16), grid)
        lb = lb.to(torch.float32)
        greedy = bf16w.generate(ids, pv, grid, max_new_tokens=6)
        greedy32 = f32.generate(ids, pv, grid, max_new_tokens=6)
    errors = {"logits_bf16w": logits_error(lw, l32), "logits_bf16": logits_error(lb, l32)}
    save(out, "vlm_bf16.safetensors", {"in.input_ids": ids, "in.pixel_values": pv, "in.grid_thw": grid,
         "out.logits_f32": l32, "out.logits_bf16w": lw, "out.logits_bf16": lb,
         "out.greedy_bf16w": torch.tensor(greedy)},
         {"prompt": text, "max_new_tokens": 6, "errors_vs_f32": errors, "greedy_bf16w_equals_f32": greedy == greedy32,
          "bf16w": "state dict .to(bfloat16).to(float32), f32 compute",
          "bf16": "model .to(bfloat16), pixel values bf16; rotary as transformers (docs/reference.md#bf16-reference)",
          "bf16_torch": torch.__version__},
         "tiny-model/vlm")
    return errors


# ---- generation-stream fixtures --------------------------------------------------------------------------
def gen_fixtures(out, vlm, tok, gen):
    cfg = gen.cfg
    c = cfg.to_dict()
    with torch.no_grad():
        kv = flow.encode_prompt(vlm, tok, PROMPT, cfg.prompt_template)
        nkv = flow.encode_prompt(vlm, tok, cfg.null_prompt, cfg.prompt_template)
        kv_t = {f"in.prompt.{l}.{n}": t for l, (k, v) in enumerate(kv) for n, t in (("k", k), ("v", v))}
        nkv_t = {f"in.null.{l}.{n}": t for l, (k, v) in enumerate(nkv) for n, t in (("k", k), ("v", v))}
        P = kv[0][0].shape[1]
        H, W = cfg.latent_size
        g = torch.Generator().manual_seed(5)
        # one layer (layer 1: NOT a group start, so it may take a residual), two timesteps, +/- residual
        l = 1
        layer = gen.layers[l]
        h = torch.randn(1, H * W, cfg.hidden_size, generator=g)
        r_prev = torch.randn(1, cfg.num_attention_heads, H * W, H * W, generator=g)
        pos = image_positions(torch.tensor([P]), H, W)
        cs, sn = mrope_cos_sin(pos, cfg.head_dim, cfg.rope_theta, cfg.mrope_section)
        t = torch.tensor([0.3, 0.85])
        tens = {**prefixed(layer, f"layers.{l}."), **prefixed(gen.time_embedder, "time_embedder."),
                "in.hidden": h, "in.t": t, "in.r_prev": r_prev, "in.prompt_k": kv[l][0], "in.prompt_v": kv[l][1],
                "in.position_ids": pos, "out.cos": cs, "out.sin": sn}
        for i in range(2):
            cvec = gen.time_embedder(t[i:i + 1])
            tens[f"out.t{i}.c"] = cvec
            for tag, r in (("res", r_prev), ("nores", None)):
                hy, ry = layer(h, cvec, cs, sn, kv[l][0], kv[l][1], None, r)
                tens[f"out.t{i}.{tag}.hidden"], tens[f"out.t{i}.{tag}.r"] = hy, ry
        save(out, "gen_layer.safetensors", tens, {**c, "layer": l})
        # a whole group (group 1 = layers 2, 3) with per-layer trace
        x = torch.randn(1, cfg.latent_channels, H, W, generator=g)
        tg = 0.7
        k = cfg.group_of(tg)
        v, trace = gen.forward_layers(x, tg, list(cfg.group_layers(k)), kv, return_trace=True)
        tr = {f"out.layer{li}.{n}": tt for li, (hh, rr) in zip(cfg.group_layers(k), trace) for n, tt in (("hidden", hh), ("r", rr))}
        save(out, "gen_group.safetensors", {**kv_t, "in.x": x, "in.t": torch.tensor([tg]),
             "out.group": torch.tensor([k]), **tr, "out.v": v}, c, "tiny-model/generator")
        # routing over schedules (t in float64 is exact for these; stored f32 as well as the group ids)
        rows = {}
        for name, steps, shift, bounds in (("s40", 40, 1.0, None), ("s7_shift3", 7, 3.0, None),
                                           ("s10_explicit", 10, 1.0, [0.0, 0.35, 1.0])):
            gc = type(cfg)(**{**c, "group_boundaries": bounds})
            ts = flow.schedule(steps, shift)
            rows[f"out.{name}.t"] = torch.tensor(ts, dtype=torch.float32)
            rows[f"out.{name}.group"] = torch.tensor([gc.group_of(x_) for x_ in ts[:-1]])
        save(out, "gen_routing.safetensors", rows,
             {"num_groups": cfg.num_groups, "cases": {"s40": [40, 1.0, None], "s7_shift3": [7, 3.0, None],
                                                      "s10_explicit": [10, 1.0, [0.0, 0.35, 1.0]]}})
        # 4-step Euler sampling from fixed noise with CFG, and a 2-step Heun run without CFG
        x0 = rng.normal(7, (1, cfg.latent_channels, H, W))
        steps_t, w = {}, 2.0
        def cb(i, ti, xi):
            steps_t[f"out.euler.step{i}.x"] = xi
        xe = flow.integrate(flow.guided_velocity(gen, kv, nkv, w), x0, 4, "euler", 1.0, cb)
        vc0, vn0 = gen.velocity(x0, 0.0, kv), gen.velocity(x0, 0.0, nkv)
        xh = flow.integrate(flow.guided_velocity(gen, kv, nkv, 1.0), x0, 2, "heun", 1.0)
        save(out, "gen_sample.safetensors", {**kv_t, **nkv_t, "in.noise": x0, "out.step0.v_cond": vc0,
             "out.step0.v_null": vn0, **steps_t, "out.euler.x": xe, "out.heun.x": xh},
             {**c, "seed": 7, "euler": {"steps": 4, "guidance": w}, "heun": {"steps": 2, "guidance": 1.0},
              "prompt": PROMPT}, "tiny-model/generator")
        save(out, "noise.safetensors", {"out.seed42": rng.normal(42, (2, 4, 4, 4)),
             "out.seed_2pow53m1": rng.normal(2 ** 53 - 1, (17,))},
             {"algorithm": "docs/reference.md#noise", "seeds": [42, 2 ** 53 - 1]})


def sampling_fixtures(out):
    """Token choices of latte_ref.sampling for seeded random logits under several settings."""
    g = torch.Generator().manual_seed(11)
    logits = torch.randn(12, 97, generator=g) * 3
    logits[3, 5] = logits[3, 9] = logits[3].max() + 1          # a tie at the maximum
    settings = [(0.0, 0, 1.0), (1.0, 0, 1.0), (0.7, 10, 1.0), (1.3, 0, 0.8), (0.9, 5, 0.5), (1.0, 1, 1.0)]
    ids = torch.zeros(len(settings), 12, 3, dtype=torch.int64)   # [setting, row, (seed, step) case]
    cases = [(0, 0), (42, 3), (2 ** 53 - 1, 17)]
    for s, (temp, k, p) in enumerate(settings):
        for r in range(12):
            for c, (seed, step) in enumerate(cases):
                ids[s, r, c] = sampling.sample_token(logits[r], temp, k, p, seed, step)
    save(out, "sampling.safetensors", {"in.logits": logits, "out.ids": ids},
         {"settings": [list(x) for x in settings], "cases": [list(x) for x in cases],
          "algorithm": "docs/reference.md#token-sampling"})


def vae_fixtures(out, vae):
    g = torch.Generator().manual_seed(9)
    z = torch.randn(1, vae.config["latent_channels"], 4, 4, generator=g)
    with torch.no_grad():
        d = vae.decoder
        x = d.conv_in(z) + z.repeat_interleave(d.in_repeats, dim=1)
        tens = {"in.latent": z, "out.conv_in": x}
        for i in reversed(range(len(d.up_blocks))):
            x = d.up_blocks[i](x)
            tens[f"out.up_blocks.{i}"] = x
        tens["out.image"] = vae.decode(z)
    save(out, "vae_decoder.safetensors", tens, vae.config, "tiny-model/vae")


# end-to-end text-to-image cases of the pipeline fixture (LatteFlow.text_to_image keyword arguments)
PIPELINE_CASES = {
    "euler": {"prompt": PROMPT, "seed": 3, "steps": 4, "sampler": "euler", "guidance": 2.0, "shift": 1.0},
    "heun_w1": {"prompt": PROMPT, "seed": 5, "steps": 3, "sampler": "heun", "guidance": 1.0, "shift": 2.0},
    # one CFG weight per expert group (the tiny model has K = 2): guided first half, unguided second
    "per_group": {"prompt": PROMPT, "seed": 7, "steps": 4, "sampler": "euler", "guidance": [2.5, 1.0], "shift": 1.0},
}


def pipeline_fixtures(out, root):
    """LatteFlow(tiny-model).text_to_image for PIPELINE_CASES -> uint8 [H, W, 3] images (U8), and the f32
    latent before decoding of the "euler" case (flow.generate_latent; decoding it gives out.euler)."""
    from latte_ref.pipeline import LatteFlow
    m = LatteFlow(root)
    tens = {}
    for name, a in PIPELINE_CASES.items():
        img = m.text_to_image(a["prompt"], seed=a["seed"], steps=a["steps"], sampler=a["sampler"],
                              guidance=a["guidance"], shift=a["shift"])
        tens[f"out.{name}"] = torch.from_numpy(np.ascontiguousarray(img))
    a = PIPELINE_CASES["euler"]
    cfg = m.gen.cfg
    with torch.no_grad():
        kv = flow.encode_prompt(m.vlm, m.tokenizer, a["prompt"], cfg.prompt_template)
        nkv = flow.encode_prompt(m.vlm, m.tokenizer, cfg.null_prompt, cfg.prompt_template)
        x = flow.generate_latent(m.gen, kv, nkv, a["seed"], a["steps"], a["sampler"], a["guidance"], a["shift"])
        dec = flow.latent_to_uint8(m.vae.decoder, x, m.vae.scaling_factor)[0]
    if not torch.equal(dec, tens["out.euler"]):
        raise AssertionError("pipeline fixture: decoding out.latent_euler does not give out.euler")
    tens["out.latent_euler"] = x
    save(out, "pipeline.safetensors", tens,
         {"cases": PIPELINE_CASES, "latent_euler": "flow.generate_latent of case euler, before decoding",
          "image": "uint8 [H, W, 3] = latent_to_uint8(vae.decoder, latent / scaling_factor)"}, "tiny-model")


GROUPS = ("models", "vlm", "vlm_bf16", "gen", "vae", "sampling", "pipeline")


def file_entry(p):
    with open(p, "rb") as fh:
        return {"bytes": os.path.getsize(p), "sha256": hashlib.sha256(fh.read()).hexdigest()}


def build(out, only=None):
    """Write every fixture (only=None) and MANIFEST.json, returning its files; or only the given GROUPS, using
    the tiny model already in out, updating just their MANIFEST.json entries and returning those."""
    unknown = set(only or ()) - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown fixture groups {sorted(unknown)}; known: {', '.join(GROUPS)}")
    run = set(GROUPS if only is None else only)
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    root = os.path.join(out, "tiny-model")
    mpath = os.path.join(out, "MANIFEST.json")
    if only is not None and not os.path.exists(mpath):
        raise FileNotFoundError(f"{mpath} missing: run without --only first")
    del WRITTEN[:]
    if "models" in run:
        vlm, tok, gen, vae = build_models(root)
    elif run & {"vlm", "gen", "vae"}:
        vlm, tok, gen, vae = load_models(root)
    if "vlm" in run:
        vlm_fixtures(out, vlm, tok)
    if "gen" in run:
        gen_fixtures(out, vlm, tok, gen)
    if "vae" in run:
        vae_fixtures(out, vae)
    if "sampling" in run:
        sampling_fixtures(out)
    if "vlm_bf16" in run:
        vlm_bf16_fixtures(out, os.path.join(root, "vlm"))
    if "pipeline" in run:
        pipeline_fixtures(out, root)
    if only is None:
        files = {}
        for dp, _, fs in os.walk(out):
            for f in fs:
                p = os.path.join(dp, f)
                rel = os.path.relpath(p, out)
                if rel != "MANIFEST.json":
                    files[rel] = file_entry(p)
        manifest = {"generator": "tools/reference/make_fixtures.py", "torch": torch.__version__, "files": files}
    else:
        with open(mpath) as f:
            manifest = json.load(f)
        files = {os.path.relpath(p, out): file_entry(p) for p in WRITTEN}
        manifest["files"].update(files)
    manifest["files"] = dict(sorted(manifest["files"].items()))
    with open(mpath, "w") as f:
        json.dump(manifest, f, indent=1)
    return files


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "test", "fixtures"))
    ap.add_argument("--only", metavar="NAME[,NAME]", help=f"regenerate only these groups: {', '.join(GROUPS)}")
    a = ap.parse_args()
    only = None if a.only is None else [n.strip() for n in a.only.split(",") if n.strip()]
    if only is not None and (not only or set(only) - set(GROUPS)):
        ap.error(f"--only takes a comma-separated list of: {', '.join(GROUPS)}")
    files = build(os.path.abspath(a.out), only)
    for k, v in sorted(files.items()):
        print(f"{v['bytes']:>9}  {k}")
    print(f"{sum(v['bytes'] for v in files.values()):>9}  total")
