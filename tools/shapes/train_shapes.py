"""Train the shipped "shapes world" LaTtE-Flow from scratch (docs/shapes-world.md, ../shared/spec/shapes.md).

    /usr/bin/python3 tools/shapes/train_shapes.py --out models/shapes [--stages tok,ae,vlm,gen,vanilla]
        [--minutes-ae 12 --minutes-vlm 15 --minutes-gen 15] [--threads 2]

Stages, each with a wall-clock budget (losses and wall time go to <out>/training_log.json):
  tok      byte-level BPE tokenizer.json trained on the world's text (Qwen2 special tokens)
  ae       DC-AE (diffusers AutoencoderDC format) 64x64 -> 8x8x16, reconstruction loss weighting shape pixels;
           writes <out>/ae_recon_eval.safetensors (reconstructions of the ShapesEval images) for the ceiling check
  vlm      tiny Qwen2-VL (HF format): captioning + VQA on rendered images
  gen      generation stream, K = 4 groups, layerwise flow matching on the frozen VLM + AE
  vanilla  the K = 1 twin with the same budget (written to <out>-vanilla/generator, sharing vlm/ and vae/)
Data is rendered on the fly (tools/reference/latte_ref/shapes_world.py); nothing is stored.
"""
import argparse
import json
import os
import sys
import time

# Debian's OpenBLAS mis-detects some CPUs (performance.md); an explicit AVX2 kernel set is safe on any x86-64-v3.
# With the reference BLAS instead (libblas3, no libopenblas0), training is ~25x slower: install libopenblas0-pthread.
os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")
import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
from latte_ref import chat, preprocess, shapes_world, st, tiny  # noqa: E402
from latte_ref.dcae import AutoencoderDC  # noqa: E402
from latte_ref.genstream import GenerationStream  # noqa: E402
from latte_ref.tokenizer import Tokenizer  # noqa: E402
from latte_ref.train import encode_prompts, gen_config_from_vlm, gen_loss, init_from_vlm, vlm_loss  # noqa: E402
from latte_ref.vlm import Qwen2VL  # noqa: E402

TRAIN_SEED = 1
PCFG = {"min_pixels": 32 * 32, "max_pixels": 64 * 64, "patch_size": 4, "temporal_patch_size": 2, "merge_size": 2,
        "rescale_factor": 1 / 255, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711]}
AE_CONFIG = {"in_channels": 3, "latent_channels": 16, "attention_head_dim": 8,
             "encoder_block_types": "ResBlock", "decoder_block_types": "ResBlock",
             "encoder_block_out_channels": [16, 32, 64, 64], "decoder_block_out_channels": [16, 32, 64, 64],
             "encoder_layers_per_block": [1, 1, 1, 1], "decoder_layers_per_block": [1, 1, 1, 1],
             "encoder_qkv_multiscales": [[], [], [], []], "decoder_qkv_multiscales": [[], [], [], []],
             "upsample_block_type": "pixel_shuffle", "downsample_block_type": "pixel_unshuffle",
             "decoder_norm_types": "rms_norm", "decoder_act_fns": "silu", "encoder_out_shortcut": True,
             "decoder_in_shortcut": True, "decoder_conv_act_fn": "relu", "scaling_factor": 1.0}


class Log:
    def __init__(self, path):
        self.path = path
        self.data = json.load(open(path)) if os.path.exists(path) else {}

    def stage(self, name, **info):
        self.data[name] = {**self.data.get(name, {}), **info}
        with open(self.path, "w") as f:
            json.dump(self.data, f, indent=1)


def world_text(n=3000):
    parts = []
    for ex in shapes_world.examples(TRAIN_SEED + 100, 0, n):
        parts.append(ex["caption"])
        for q, a in ex["qa"]:
            parts.append(q + " " + a)
    parts.append("You are a helpful assistant. user assistant system")
    return "\n".join(parts) + "\n"


def images_tensor(exs):
    x = torch.from_numpy(np.stack([e["image"] for e in exs])).float()
    return (x / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()


class Stream:
    """Training examples in order from the training seed (a different seed from every eval stream)."""

    def __init__(self, seed):
        self.seed, self.i = seed, 0

    def take(self, n):
        exs = shapes_world.examples(self.seed, self.i, n)
        self.i += n
        return exs


# ---- stages ------------------------------------------------------------------------------------------------
def stage_tok(out, log):
    vdir = os.path.join(out, "vlm")
    os.makedirs(vdir, exist_ok=True)
    t0 = time.time()
    specials = tiny.write_tokenizer_json(os.path.join(vdir, "tokenizer.json"), 300, world_text())
    log.stage("tok", seconds=time.time() - t0, merges=300, specials=specials)


def stage_ae(out, log, minutes):
    torch.manual_seed(0)
    ae = AutoencoderDC(dict(AE_CONFIG), with_encoder=True)
    opt = torch.optim.AdamW(ae.parameters(), lr=2e-3)
    sched_end = time.time() + 60 * minutes
    data = Stream(TRAIN_SEED)
    losses, step, t0 = [], 0, time.time()
    while time.time() < sched_end:
        x = images_tensor(data.take(16))
        y = ae.decoder(ae.encoder(x))
        # shape pixels (not white) weigh 5x: the background is most of every image
        w = 1.0 + 4.0 * (x.min(dim=1, keepdim=True).values < 0.95).float()
        loss = (w * (y - x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            losses.append((step, round(time.time() - t0, 1), float(loss)))
            print(f"ae step {step} loss {float(loss):.5f}", flush=True)
        if step == 1500:
            for g in opt.param_groups:
                g["lr"] = 5e-4
    ae.eval()
    with torch.no_grad():
        z = torch.cat([ae.encoder(images_tensor(data.take(64))) for _ in range(4)])
        ae.config["scaling_factor"] = float(1.0 / z.std())
        ae.scaling_factor = ae.config["scaling_factor"]
        eval_imgs = [ex["image"] for ex in eval_examples()]
        x = images_tensor([{"image": im} for im in eval_imgs])
        rec = torch.cat([ae.decoder(ae.encoder(x[i:i + 50])) for i in range(0, len(x), 50)])
        rec = ((rec.clamp(-1, 1) + 1) * 127.5 + 0.5).floor().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    vae_dir = os.path.join(out, "vae")
    ae_dec = AutoencoderDC(dict(ae.config))
    ae_dec.decoder.load_state_dict(ae.decoder.state_dict())
    ae_dec.save(vae_dir)
    torch.save(ae.encoder.state_dict(), os.path.join(out, "ae_encoder.pt"))   # for the generator's latents
    st.save_file({"recon": rec.contiguous(), "original": torch.from_numpy(np.stack(eval_imgs))},
                 os.path.join(out, "ae_recon_eval.safetensors"), {"what": "ShapesEval images and their AE reconstructions"})
    log.stage("ae", seconds=time.time() - t0, steps=step, losses=losses, scaling_factor=ae.config["scaling_factor"],
              config=AE_CONFIG)


def eval_examples():
    """The ShapesEval prompts' own rendered examples (stream 424242: the first 100 of each kind), in stream
    order, for the AE ceiling check: ShapesEval of their reconstructions bounds what any generator can score."""
    out, counts, i = [], {1: 0, 2: 0}, 0
    while counts[1] < 100 or counts[2] < 100:
        ex = shapes_world.example(424242, i)
        k = len(ex["objects"])
        if counts[k] < 100:
            counts[k] += 1
            out.append(ex)
        i += 1
    return out


def load_encoder(out):
    cfg = json.load(open(os.path.join(out, "vae", "config.json")))
    cfg.pop("_class_name", None)
    ae = AutoencoderDC(cfg, with_encoder=True)
    ae.encoder.load_state_dict(torch.load(os.path.join(out, "ae_encoder.pt")))
    return ae.encoder.eval(), cfg["scaling_factor"]


def vlm_config(tok):
    specials = {t: tok.token_id(t) for t in tiny.SPECIAL_TOKENS}
    cfg = tiny.tiny_qwen2vl_config(len(tok.vocab) + len(tok.added), specials, hidden=128, layers=8, heads=4, kv_heads=2,
                                   inter=384, v_depth=2, v_dim=64, v_heads=4, patch=4, section=(4, 6, 6))
    return cfg


def vlm_example(tok, ex, rng):
    q, a = ex["qa"][rng.randint(len(ex["qa"]))]
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}]
    pv, grid = preprocess.preprocess_image(ex["image"], PCFG)
    prompt = chat.expand_image_pads(chat.render(msgs), [grid[0].tolist()], 2)
    p_ids = tok.encode(prompt)
    a_ids = tok.encode(a + "<|im_end|>")
    ids = torch.tensor(p_ids + a_ids)
    labels = torch.tensor([-100] * len(p_ids) + a_ids)
    return ids, labels, pv, grid


def stage_vlm(out, log, minutes):
    vdir = os.path.join(out, "vlm")
    tok = Tokenizer(os.path.join(vdir, "tokenizer.json"))
    torch.manual_seed(0)
    vlm = Qwen2VL(vlm_config(tok))
    opt = torch.optim.AdamW(vlm.parameters(), lr=1e-3)
    end = time.time() + 60 * minutes
    data, rng = Stream(TRAIN_SEED + 1), np.random.RandomState(0)
    losses, step, t0, acc = [], 0, time.time(), 8
    vlm.train()
    while time.time() < end:
        opt.zero_grad()
        total = 0.0
        for ex in data.take(acc):
            loss = vlm_loss(vlm, *vlm_example(tok, ex, rng)) / acc
            loss.backward()
            total += float(loss)
        opt.step()
        step += 1
        if step % 25 == 0:
            losses.append((step, round(time.time() - t0, 1), total))
            print(f"vlm step {step} loss {total:.4f}", flush=True)
    vlm.eval()
    vlm.save_pretrained(vdir)
    with open(os.path.join(vdir, "preprocessor_config.json"), "w") as f:
        json.dump({"image_processor_type": "Qwen2VLImageProcessor", "do_resize": True, "do_rescale": True,
                   "do_normalize": True, "resample": 3, **PCFG}, f, indent=2)
    log.stage("vlm", seconds=time.time() - t0, steps=step, sequences=step * acc, losses=losses)


def stage_gen(out, gen_dir, log, minutes, groups, name, lr=3e-4, resume=False):
    vdir = os.path.join(out, "vlm")
    tok = Tokenizer(os.path.join(vdir, "tokenizer.json"))
    vlm = Qwen2VL.from_pretrained(vdir)
    for p in vlm.parameters():
        p.requires_grad_(False)
    enc, sf = load_encoder(out)
    gcfg = gen_config_from_vlm(vlm.cfg, latent_channels=16, latent_size=(8, 8), num_groups=groups,
                               guidance_scale=2.0, num_steps=20)
    torch.manual_seed(0)
    # resume: continue from the saved stream (a second budget, e.g. at a higher learning rate)
    gen = GenerationStream.load(gen_dir) if resume else init_from_vlm(GenerationStream(gcfg), vlm)
    gcfg = gen.cfg
    opt = torch.optim.AdamW(gen.parameters(), lr=lr, weight_decay=0.0)
    null = encode_prompts(vlm, tok, [gcfg.null_prompt], gcfg.prompt_template)
    g = torch.Generator().manual_seed(2 if resume else 1)
    end = time.time() + 60 * minutes
    data = Stream(TRAIN_SEED + (5 if resume else 2))
    losses, step, t0 = [], 0, time.time()
    gen.train()
    while time.time() < end:
        exs = data.take(32)
        with torch.no_grad():
            x1 = enc(images_tensor(exs)) * sf
        prompt = encode_prompts(vlm, tok, [e["caption"] for e in exs], gcfg.prompt_template)
        loss = gen_loss(gen, x1, prompt, null, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 20 == 0:
            losses.append((step, round(time.time() - t0, 1), float(loss)))
            print(f"{name} step {step} loss {float(loss):.4f}", flush=True)
    gen.eval()
    gen.save(gen_dir)
    entry = {"seconds": time.time() - t0, "steps": step, "images": step * 32, "losses": losses, "num_groups": groups, "lr": lr}
    log.stage(name + ("_resumed" if resume else ""), **entry)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "shapes"))
    ap.add_argument("--stages", default="tok,ae,vlm,gen,vanilla")
    ap.add_argument("--minutes-ae", type=float, default=12)
    ap.add_argument("--minutes-vlm", type=float, default=15)
    ap.add_argument("--minutes-gen", type=float, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr-gen", type=float, default=3e-4)
    ap.add_argument("--resume", action="store_true", help="continue the gen/vanilla stages from the saved streams")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    log = Log(os.path.join(a.out, "training_log.json"))
    stages = a.stages.split(",")
    if "tok" in stages:
        stage_tok(a.out, log)
    if "ae" in stages:
        stage_ae(a.out, log, a.minutes_ae)
    if "vlm" in stages:
        stage_vlm(a.out, log, a.minutes_vlm)
    if "gen" in stages:
        stage_gen(a.out, os.path.join(a.out, "generator"), log, a.minutes_gen, 4, "gen", a.lr_gen, a.resume)
    if "vanilla" in stages:
        van = a.out.rstrip("/") + "-vanilla"
        stage_gen(a.out, os.path.join(van, "generator"), log, a.minutes_gen, 1, "vanilla", a.lr_gen, a.resume)
        with open(os.path.join(van, "latte_flow.json"), "w") as f:
            rel = os.path.relpath(a.out, van)
            json.dump({"format": "latte-flow", "format_version": 1, "vlm": f"{rel}/vlm", "generator": "generator",
                       "vae": f"{rel}/vae", "tokenizer": f"{rel}/vlm/tokenizer.json"}, f, indent=2)
    with open(os.path.join(a.out, "latte_flow.json"), "w") as f:
        json.dump({"format": "latte-flow", "format_version": 1, "vlm": "vlm", "generator": "generator", "vae": "vae",
                   "tokenizer": "vlm/tokenizer.json"}, f, indent=2)


if __name__ == "__main__":
    main()
