"""Train the shipped "shapes world" LaTtE-Flow from scratch (docs/shapes-world.md, ../shared/spec/shapes.md).

    /usr/bin/python3 tools/shapes/train_shapes.py --out models/shapes [--stages tok,ae,vlm,gen,vanilla]
        [--minutes-ae 12 --minutes-vlm 15 --minutes-gen 15] [--threads 2] [--resume] [--lr-gen ...]
The shipped models' exact recipe (stages, budgets, options) is tools/shapes/train_all.sh.

Stages, each with a wall-clock budget (losses and wall time go to <out>/training_log.json):
  tok      byte-level BPE tokenizer.json trained on the world's text (Qwen2 special tokens)
  ae       DC-AE (diffusers AutoencoderDC format) 64x64 -> 8x8x16, reconstruction loss weighting shape pixels;
           writes <out>/ae_recon_eval.safetensors (reconstructions of the ShapesEval images) for the ceiling check
  vlm      tiny Qwen2-VL (HF format): captioning + VQA on rendered images, batches of 32
  vlm_vision  continue the VLM's vision tower and merger only (the decoder, so prompt K/V, unchanged)
  vocab    give the language's question-only words tokens of their own (stage_vocab); captions tokenize as before
  gen      generation stream, K = 4 groups, layerwise flow matching on the frozen VLM + AE, from a pool of
           latents encoded once, prompt K/V cached per caption; --resume continues a saved stream
  vanilla  the K = 1 twin with the same budget (written to <out>-vanilla/generator, sharing vlm/ and vae/)
  world    <out>/world.json: the training text's vocabulary and the world's images (lib/model-world.ts)
With --language, vlm and gen/vanilla continue the saved models on the world's varied language
(tools/reference/latte_ref/shapes_language.py): tools/shapes/train_language.sh, the shipped models'
second phase.
With --device cuda (torch >= 2.0) every stage trains on the GPU; --workers N builds the VLM's batches in N
processes, and the generator stages encode every caption of their latent pool up front (PromptTable).
tools/shapes/train_gpu.sh is the shipped models' third phase, run on one H200.
Data is rendered on the fly (tools/reference/latte_ref/shapes_world.py); nothing is stored.
Learning rates: linear warmup, then cosine decay over each stage's wall-clock budget.
"""
import collections
import concurrent.futures
import contextlib
import copy
import json
import math
import multiprocessing
import os
import shutil
import sys
import time

# Debian's OpenBLAS mis-detects some CPUs (performance.md); an explicit AVX2 kernel set is safe on any x86-64-v3.
# With the reference BLAS instead (libblas3, no libopenblas0), training is ~25x slower: install libopenblas0-pthread.
os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")
# OpenBLAS's own thread pool ignores torch.set_num_threads: size it from --threads before torch loads it
_argv = sys.argv[1:]
os.environ.setdefault("OPENBLAS_NUM_THREADS", _argv[_argv.index("--threads") + 1] if "--threads" in _argv else "2")
import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
from latte_ref import chat, preprocess, shapes_language, shapes_world, st, tiny  # noqa: E402
from latte_ref.dcae import AutoencoderDC  # noqa: E402
from latte_ref.genstream import GenerationStream  # noqa: E402
from latte_ref.tokenizer import Tokenizer  # noqa: E402
from latte_ref.rope import get_rope_index  # noqa: E402
from latte_ref.train import encode_prompts, gen_config_from_vlm, prompt_kv, gen_loss, init_from_vlm, save_stream_atomically  # noqa: E402
from latte_ref.vlm import Qwen2VL  # noqa: E402
from prompt_tables import PromptCache, PromptTable  # noqa: E402  (beside this file; needs latte_ref on the path)
from vlm_edits import grow_question_vocab, grow_vision_tower, vocab_pieces  # noqa: E402  (beside this file, as prompt_tables)
import train_options  # noqa: E402  (beside this file: the command line)

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


# M-RoPE theta of the tiny decoder (and so of the generation stream, which copies it). Qwen2-VL's sections give
# the width axis the lowest frequencies: with head_dim 32 and theta 1e4 they turn by 0.0002-0.003 rad per column,
# so neither the VLM nor the generator could tell the left of an 8-wide grid from its right ("where is" 4/31,
# generated objects smeared along a row). theta 3 turns every axis by 0.36-1 rad per step: distinct over a grid
# of 8, and prompts are short enough (< 100 tokens) for the text positions not to alias.
ROPE_THETA = 3.0

# --device cuda: the models and every tensor made while training live on the GPU (torch's default device);
# data is still built on the CPU (numpy images, the tokenizer), under on_cpu(), and moved once per batch.
DEVICE = torch.device("cpu")


def use_device(name):
    global DEVICE
    DEVICE = torch.device(name)
    if DEVICE.type != "cpu":
        torch.set_default_device(DEVICE)   # (torch >= 2.0; the CPU path never calls it, so Debian's 1.13 runs as before)


def on_cpu():
    return torch.device("cpu") if DEVICE.type != "cpu" else contextlib.nullcontext()


def cpu_copy(module):
    """A CPU copy of a module for saving (the writers read tensors through numpy)."""
    return module if DEVICE.type == "cpu" else copy.deepcopy(module).to("cpu")


def device_entry():
    return {} if DEVICE.type == "cpu" else {"device": f"{DEVICE.type}: {torch.cuda.get_device_name(DEVICE)}"}


class Log:
    def __init__(self, path):
        self.path = path
        self.data = json.load(open(path)) if os.path.exists(path) else {}

    def next_name(self, name):
        """name, or name_2, name_3, ... when a continuation stage runs again (each run keeps its entry)."""
        data = json.load(open(self.path)) if os.path.exists(self.path) else {}
        k, out = 1, name
        while out in data:
            k += 1
            out = f"{name}_{k}"
        return out

    def stage(self, name, in_progress=False, **info):
        """Records a stage's entry. in_progress: written at a checkpoint, so a run stopped before its end
        still leaves its steps and CPU time in the log (the stage's last write drops the flag)."""
        # re-read first: the gen and vanilla stages may run as two processes side by side
        self.data = json.load(open(self.path)) if os.path.exists(self.path) else {}
        # (that read can no longer see a half-written file: writes below go through a rename)
        t = os.times()   # CPU time of this process so far (each stage of train_all.sh is its own process)
        entry = {**self.data.get(name, {}), **info, "process_cpu_seconds": round(t.user + t.system, 1)}
        entry.pop("in_progress", None)
        self.data[name] = {**entry, "in_progress": True} if in_progress else entry
        tmp = f"{self.path}.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1)
        os.replace(tmp, self.path)   # atomic: the gen and vanilla stages never read a half-written log


def lr_at(step, frac, base, warmup=50, floor=0.05):
    """Linear warmup over the first steps, then cosine decay to floor * base over the wall-clock budget
    (frac = elapsed / budget): the budgets are in minutes, so the schedule is too."""
    cos = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
    return base * min(1.0, (step + 1) / warmup) * cos


def set_lr(opt, lr):
    for g in opt.param_groups:
        g["lr"] = lr


def warn_if_slow_blas():
    """Debian's python3-torch runs on whichever libblas.so.3 is installed; with the reference BLAS
    (libblas3 without libopenblas0-pthread) every CPU stage is about 10x slower (RESULTS section 14c)."""
    a = torch.randn(256, 256)
    a @ a
    t0 = time.time()
    for _ in range(4):
        a @ a
    ms = (time.time() - t0) / 4 * 1e3
    if ms > 3:   # on a 2-core EPYC at 1 thread: OpenBLAS under 1 ms, the reference BLAS about 6
        print(f"warning: a 256x256 matrix product took {ms:.0f} ms: torch looks linked to the reference BLAS; "
              "install libopenblas0-pthread (training is about 10x slower without it)", file=sys.stderr, flush=True)


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
    """Training examples in order from the training seed (a different seed from every eval stream).
    two_weight != 1: two-object scenes come that many times as often as one-object ones, by skipping
    examples; which are skipped depends only on (seed, i), so a worker given (seed, i) takes the same."""

    def __init__(self, seed, two_weight=1.0):
        self.seed, self.i, self.two_weight = seed, 0, two_weight

    def keep(self, kind):
        """The share of the stream's scenes of this kind ("one" / "two") that take() keeps."""
        return min(1.0, self.two_weight) if kind == "two" else min(1.0, 1.0 / self.two_weight)

    def kept(self, ex, i):
        if self.two_weight == 1:
            return True
        return ((i * 2654435761 + self.seed) % 2**32) / 2**32 < self.keep(ex["kind"])   # a fixed uniform draw per index

    def take(self, n):
        exs = []
        while len(exs) < n:
            want = n - len(exs)   # at most `want` of these are kept, so never more than n in all
            for k, ex in enumerate(shapes_world.examples(self.seed, self.i, want)):
                if self.kept(ex, self.i + k):
                    ex["at"] = (self.seed, self.i + k)   # the language's draws are keyed by (seed, i)
                    exs.append(ex)
            self.i += want
        return exs

    def span(self, n):
        """About how many indices take(n) moves on (a worker's batch starts that far after the last one)."""
        if self.two_weight == 1:
            return n
        return int(math.ceil(n / (0.5 * self.keep("one") + 0.5 * self.keep("two"))))


BLANK = np.full((shapes_world.IMAGE_SIZE, shapes_world.IMAGE_SIZE, 3), 255, dtype=np.uint8)


def language_qa(ex, rng):
    """One (image, question, answer) of the language mixture: a blank image 1 time in 16 (zero / no shapes /
    no), else the template question (7 in 15) or the same question in the language's train wording."""
    seed, i = ex["at"]
    r = rng.randint(16)
    if r == 0:
        qa = shapes_language.blank_qa(seed, i)
        return BLANK, qa[rng.randint(len(qa))]
    qa = ex["qa"] if r < 8 else shapes_language.qa_variants(ex, seed, i)
    return ex["image"], qa[rng.randint(len(qa))]


def language_captions(ex, variants=2, bare=False):
    """The template caption and `variants` captions in the language's train wording (drawn with seeds
    seed + 1000 k, so each is its own draw). bare: one more, the bare prompt ("a red square", no size or
    place) for a one-shape scene, another varied caption for a two-shape one."""
    seed, i = ex["at"]
    caps = [ex["caption"]] + [shapes_language.caption_variant(ex, seed + 1000 * k, i) for k in range(variants)]
    if bare:
        caps.append(shapes_language.bare_prompt(ex["objects"][0]) if ex["kind"] == "one"
                    else shapes_language.caption_variant(ex, seed + 1000 * variants, i))
    return caps


# ---- stages ------------------------------------------------------------------------------------------------
def stage_tok(out, log):
    vdir = os.path.join(out, "vlm")
    os.makedirs(vdir, exist_ok=True)
    t0 = time.time()
    specials = tiny.write_tokenizer_json(os.path.join(vdir, "tokenizer.json"), 300, world_text())
    log.stage("tok", seconds=time.time() - t0, merges=300, specials=specials)


def stage_vocab(out, log, words=None):
    """Gives the language's question-only words tokens of their own (vlm_edits.grow_question_vocab) and saves the
    grown VLM, then its tokenizer. words: only these of them (as written, " things"). A rerun adds nothing."""
    vdir = os.path.join(out, "vlm")
    path = os.path.join(vdir, "tokenizer.json")
    t0 = time.time()
    tok = Tokenizer(path)
    grown = grow_question_vocab(tok, path, Qwen2VL.from_pretrained(vdir), vocab_pieces(tok, words))
    if grown is None:
        return []
    tj, vlm, added, merges = grown
    save_vlm_atomically(vlm, vdir)   # the VLM first: a stop between the two leaves the old tokenizer, a rerun redoes it
    tmp = path + ".new"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False, indent=1)
    os.replace(tmp, path)
    log.stage(log.next_name("vocab"), seconds=time.time() - t0, merges=len(merges),
              words=[w.replace("\u0120", " ") for w in added], vocab_size=vlm.cfg.text.vocab_size)
    return added


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


def vlm_config(tok, rope_theta=ROPE_THETA):
    specials = {t: tok.token_id(t) for t in tiny.SPECIAL_TOKENS}
    cfg = tiny.tiny_qwen2vl_config(len(tok.vocab) + len(tok.added), specials, hidden=128, layers=8, heads=4, kv_heads=2,
                                   inter=384, v_depth=2, v_dim=64, v_heads=4, patch=4, section=(4, 6, 6),
                                   theta=rope_theta)
    return cfg


def vlm_example(tok, ex, rng, language=False):
    if language:
        image, (q, a) = language_qa(ex, rng)
    else:
        image, (q, a) = ex["image"], ex["qa"][rng.randint(len(ex["qa"]))]
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}]
    pv, grid = preprocess.preprocess_image(image, PCFG)
    prompt = chat.expand_image_pads(chat.render(msgs), [grid[0].tolist()], 2)
    p_ids = tok.encode(prompt)
    a_ids = tok.encode(a + "<|im_end|>")
    ids = torch.tensor(p_ids + a_ids)
    labels = torch.tensor([-100] * len(p_ids) + a_ids)
    return ids, labels, pv, grid


def vlm_batch(tok, cfg, exs, rng, language=False):
    """Right-padded batch: ids/labels [B, S], M-RoPE positions [3, B, S], the images' patches and grids.
    Causal attention: padding after a sequence changes none of its logits, so no attention mask is needed."""
    seqs = [vlm_example(tok, ex, rng, language) for ex in exs]
    S = max(len(ids) for ids, _, _, _ in seqs)
    pad = tok.token_id("<|endoftext|>")
    ids = torch.full((len(seqs), S), pad, dtype=torch.long)
    labels = torch.full((len(seqs), S), -100, dtype=torch.long)
    pos = torch.zeros((3, len(seqs), S), dtype=torch.long)
    for b, (i, l, _, grid) in enumerate(seqs):
        n = len(i)
        ids[b, :n], labels[b, :n] = i, l
        p, _ = get_rope_index(i, grid, cfg)
        pos[:, b, :n] = p
        pos[:, b, n:] = p[:, -1:] + torch.arange(1, S - n + 1)
    return ids, labels, pos, torch.cat([s[2] for s in seqs]), torch.cat([s[3] for s in seqs])


_WORKER = {}


def _vlm_worker_init(tok_path, cfg, language):
    torch.set_num_threads(1)
    _WORKER.update(tok=Tokenizer(tok_path), cfg=cfg, language=language)


def _vlm_worker_batch(job):
    """One batch in a worker process: (data seed, first example, size, rng seed) -> numpy arrays."""
    seed, start, n, rng_seed, two_weight = job
    data = Stream(seed, two_weight)
    data.i = start
    out = vlm_batch(_WORKER["tok"], _WORKER["cfg"], data.take(n), np.random.RandomState(rng_seed), _WORKER["language"])
    return tuple(t.numpy() for t in out)


def vlm_batches(tok, cfg, data, rng, batch, language, workers=0, tok_path=None):
    """Training batches on DEVICE. workers = 0: built here in stream order (the CPU recipe's exact data).
    workers > 0: built by that many spawned processes (a GPU steps faster than one CPU core renders and
    tokenizes), batch j from the same stream and its own rng (seeded from the stage's rng)."""
    if workers == 0:
        while True:
            with on_cpu():
                out = vlm_batch(tok, cfg, data.take(batch), rng, language)
            yield tuple(t.to(DEVICE) for t in out)
    # spawn, not fork: the parent may already hold a CUDA context. An executor, not a Pool: a worker that
    # dies raises BrokenProcessPool here (a Pool waits forever for its batch, and its terminate() can hang)
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                  initializer=_vlm_worker_init, initargs=(tok_path, cfg, language))
    try:
        pending = collections.deque()
        while True:
            while len(pending) < 2 * workers:
                pending.append(pool.submit(_vlm_worker_batch, (data.seed, data.i, batch, int(rng.randint(2**31)),
                                                                data.two_weight)))
                data.i += data.span(batch)
            out = pending.popleft().result()
            yield tuple(torch.from_numpy(a).to(DEVICE) for a in out)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def vlm_batch_loss(vlm, ids, labels, pos, pixel_values, grid):
    """Next-token cross-entropy over a batch; image tokens take the vision tower's outputs in order."""
    x = vlm.model.embed_tokens(ids)
    img = vlm.visual(pixel_values, grid).to(x.dtype)
    x = x.masked_scatter((ids == vlm.cfg.image_token_id)[..., None], img)
    cos, sin = vlm.rope(pos)
    h, _ = vlm.model(x, cos, sin)
    logits = h[:, :-1] @ vlm.lm_weight().t()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)


class PromptAnchor:
    """Keeps the generators' conditioning where they learnt it while the whole VLM trains (--anchor-prompts W):
    each step, the K/V the decoder gives a batch of captions (template, train wording, and the null prompt)
    are pulled towards what the VLM gave before this stage, by W times their relative squared error summed
    over layers. Without it a VLM stage moves every prompt's K/V and both streams must be retrained."""

    def __init__(self, vlm, tok, template, weight, batch=32):
        with on_cpu():
            self.frozen = copy.deepcopy(cpu_copy(vlm)).eval()
        self.frozen.to(DEVICE)
        for p in self.frozen.parameters():
            p.requires_grad_(False)
        self.tok, self.template, self.weight, self.batch = tok, template, weight, batch
        self.data, self.rng = Stream(TRAIN_SEED + 13), np.random.RandomState(13)

    def texts(self):
        with on_cpu():
            caps = [language_captions(ex, 1)[self.rng.randint(2)] for ex in self.data.take(self.batch - 1)]
        return caps + [""]

    def loss(self, vlm):
        texts = self.texts()
        with torch.no_grad():
            want, _, mask = encode_prompts(self.frozen, self.tok, texts, self.template)
        got, _, _ = prompt_kv(vlm, self.tok, texts, self.template)
        m = mask[:, :, None, None].to(DEVICE).float()
        err = sum(((g - w) ** 2 * m).sum() / ((w ** 2) * m).sum() for gl, wl in zip(got, want) for g, w in zip(gl, wl))
        return self.weight * err


def stage_vlm(out, log, minutes, batch=32, lr=1e-3, vision_only=False, rope_theta=ROPE_THETA, language=False, workers=0,
              anchor=0.0, two_weight=1.0, vision_depth=0, checkpoint_minutes=0, data_seed=0, rows_from=0):
    """vision_only: continue from the saved VLM training only the vision tower and merger. The decoder (and
    so every text-only prompt's K/V, the generator's conditioning) stays exactly as the generator saw it.
    language: continue the whole saved VLM on the language mixture (language_qa); the generators must then
    continue too (gen/vanilla with --resume --language), as their conditioning moved, unless anchor > 0
    holds the prompts' K/V near where they were (PromptAnchor). two_weight: two-object scenes come that many
    times as often (Stream). vision_depth (with vision_only or language): first grow the vision tower to that
    many blocks, each new one starting as the identity (grow_vision_tower), so the stage begins exactly where the
    saved VLM was; a rerun after a stop finds the depth reached and grows nothing.
    checkpoint_minutes: save the VLM this often (save_vlm_atomically); 0: only at the end.
    data_seed: offset of the scene and question seeds, so a continuation sees new data, not the same opening
    batches again. rows_from (with language): train only the embedding rows of token ids from this one on (the
    words stage_vocab added); every other weight, so every caption's K/V and every answer to a question
    without those words, stays bit for bit (asserted)."""
    vdir = os.path.join(out, "vlm")
    tok = Tokenizer(os.path.join(vdir, "tokenizer.json"))
    torch.manual_seed(0)
    with on_cpu():
        vlm = Qwen2VL.from_pretrained(vdir) if vision_only or language else Qwen2VL(vlm_config(tok, rope_theta))
    grow_vision = grow_vision_tower(vlm, vision_depth) if vision_depth else 0
    vlm.to(DEVICE)
    if vision_only:   # (with language: the vision tower learns on the language mixture)
        before = {k: v.detach().cpu().clone() for k, v in vlm.model.state_dict().items()}
        for p in vlm.model.parameters():
            p.requires_grad_(False)
        params = list(vlm.visual.parameters())
    elif rows_from:
        before = {k: v.detach().cpu().clone() for k, v in vlm.state_dict().items()}
        for p in vlm.parameters():
            p.requires_grad_(False)
        emb = vlm.model.embed_tokens.weight
        emb.requires_grad_(True)
        keep = torch.arange(emb.shape[0], device=emb.device)[:, None] < rows_from
        emb.register_hook(lambda g: g.masked_fill(keep, 0.0))
        params = [emb]
    elif language:
        params = list(vlm.parameters())
    else:
        with torch.no_grad():   # HF's initializer_range: unit-variance tied embeddings start with logits ~ +-11
            vlm.model.embed_tokens.weight.normal_(0.0, 0.02)
        params = list(vlm.parameters())
    opt = torch.optim.AdamW(params, lr=lr, **({"weight_decay": 0.0} if rows_from else {}))   # decay would move the old rows
    budget = 60 * minutes
    data = Stream(TRAIN_SEED + (9 if language and vision_only else 7 if language else 6 if vision_only else 1) + data_seed,
                  two_weight)
    rng = np.random.RandomState((3 if language and vision_only else 2 if language else 1 if vision_only else 0) + data_seed)
    batches = vlm_batches(tok, vlm.cfg, data, rng, batch, language, workers, os.path.join(vdir, "tokenizer.json"))
    if anchor:
        with open(os.path.join(out, "generator", "config.json")) as f:
            template = json.load(f)["prompt_template"]
        anchored = PromptAnchor(vlm, tok, template, anchor)
    losses, step, t0 = [], 0, time.time()
    # named at the start: the checkpoints' in-progress entries and the final one share it
    stage_name = log.next_name(("vlm_vision" if vision_only else "vlm") + "_language") if language else (
        "vlm_vision" if vision_only else "vlm")
    grown = {"grow_vision": grow_vision, "vision_depth": vlm.cfg.vision.depth} if vision_depth else {}

    def entry():
        return dict(seconds=time.time() - t0, steps=step, sequences=step * batch, batch=batch, lr=lr, losses=losses,
                    **({"workers": workers} if workers else {}), **({"two_object_weight": two_weight} if two_weight != 1 else {}),
                    **grown, **({"data_seed": data_seed} if data_seed else {}),
                    **({"prompt_anchor": anchor, "losses_columns": "step, seconds, loss, anchor term"} if anchor else {}),
                    **({"token_rows_from": rows_from} if rows_from else {}),
                    **device_entry())
    next_checkpoint = t0 + 60 * checkpoint_minutes
    vlm.train()
    while time.time() - t0 < budget:
        if checkpoint_minutes and time.time() > next_checkpoint:
            # a stopped run keeps its progress: the next --language run starts from the last checkpoint
            save_vlm_atomically(cpu_copy(vlm), vdir)
            log.stage(stage_name, in_progress=True, **entry())
            vlm.train()
            next_checkpoint = time.time() + 60 * checkpoint_minutes
        set_lr(opt, lr_at(step, (time.time() - t0) / budget, lr))
        loss = vlm_batch_loss(vlm, *next(batches))
        if anchor:
            drift = anchored.loss(vlm)
            loss_qa, loss = loss, loss + drift
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % 25 == 0:
            losses.append((step, round(time.time() - t0, 1), float(loss)) + ((float(drift),) if anchor else ()))
            print(f"vlm step {step} loss {float(loss):.4f}" + (f" (anchor {float(drift):.4f}, qa {float(loss_qa):.4f})" if anchor else ""),
                  flush=True)
    batches.close()
    vlm.eval()
    vlm = cpu_copy(vlm)
    if vision_only:
        assert all(torch.equal(before[k], v) for k, v in vlm.model.state_dict().items()), "the decoder changed"
    if rows_from:
        after = vlm.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before if k != "model.embed_tokens.weight"), "a weight changed"
        assert torch.equal(before["model.embed_tokens.weight"][:rows_from], after["model.embed_tokens.weight"][:rows_from]), \
            "an old token's row changed"
    save_vlm_atomically(vlm, vdir)
    log.stage(stage_name, **entry())


def save_vlm_atomically(vlm, vdir):
    """Writes the VLM (config, weights, and the preprocessor config) into a copy of vdir and swaps it in, as
    save_stream_atomically does for a stream: the tokenizer beside it is kept, and a kill mid-save leaves
    either the old VLM or the new one, never a config of one and the weights of the other."""
    vlm.eval()
    tmp, old = vdir.rstrip("/") + ".saving", vdir.rstrip("/") + ".old"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(vdir, tmp)
    with on_cpu():
        vlm.save_pretrained(tmp)
    with open(os.path.join(tmp, "preprocessor_config.json"), "w") as f:
        json.dump({"image_processor_type": "Qwen2VLImageProcessor", "do_resize": True, "do_rescale": True,
                   "do_normalize": True, "resample": 3, **PCFG}, f, indent=2)
    shutil.rmtree(old, ignore_errors=True)
    os.rename(vdir, old)
    os.rename(tmp, vdir)
    shutil.rmtree(old, ignore_errors=True)


def latent_pool(enc, sf, data, n, chunk=64, language=False, variants=2, bare=False):
    """n training latents and their captions, encoded once: encoding was a fifth of a step, and the pool
    (a few epochs over the budget) gives the generator that much more of its time. Each latent has a list
    of captions: the template one, and with `language` also varied ones (language_captions)."""
    xs, caps, two = [], [], []
    with torch.no_grad():
        for _ in range(0, n, chunk):
            with on_cpu():
                exs = data.take(chunk)
                x = images_tensor(exs)
            xs.append(enc(x.to(DEVICE)) * sf)
            caps += [language_captions(e, variants, bare) if language else [e["caption"]] for e in exs]
            two += [e["kind"] == "two" for e in exs]
    return torch.cat(xs), caps, torch.tensor(two)


def stage_gen(out, gen_dir, log, minutes, groups, name, lr=1e-3, resume=False, patch=1, batch=32, pool=24576,
              template=None, low_t_weight=1, rope_theta=None, language=False, variants=2, pool_seed=0,
              checkpoint_minutes=10, two_weight=1.0, prompt_table=False, bare=False):
    vdir = os.path.join(out, "vlm")
    tok = Tokenizer(os.path.join(vdir, "tokenizer.json"))
    with on_cpu():
        vlm = Qwen2VL.from_pretrained(vdir)
        enc, sf = load_encoder(out)
    vlm.to(DEVICE)
    enc.to(DEVICE)
    for p in vlm.parameters():
        p.requires_grad_(False)
    extra = {"prompt_template": template} if template else {}
    if rope_theta:
        extra["rope_theta"] = rope_theta
    gcfg = gen_config_from_vlm(vlm.cfg, latent_channels=16, latent_size=(8, 8), num_groups=groups, patch_size=patch,
                               guidance_scale=2.0, num_steps=20, **extra)
    torch.manual_seed(0)
    # resume: continue from the saved stream (a second budget, e.g. at a higher learning rate)
    with on_cpu():
        gen = GenerationStream.load(gen_dir) if resume else init_from_vlm(GenerationStream(gcfg), cpu_copy(vlm))
    gen.to(DEVICE)
    gcfg = gen.cfg
    opt = torch.optim.AdamW(gen.parameters(), lr=lr, weight_decay=0.0)
    prompts = PromptCache(vlm, tok, gcfg.prompt_template)
    null = encode_prompts(vlm, tok, [gcfg.null_prompt], gcfg.prompt_template)
    g = torch.Generator(device=DEVICE).manual_seed(2 if resume else 1)
    budget = 60 * minutes
    t0 = time.time()
    pool_x, pool_caps, pool_two = latent_pool(enc, sf, Stream(TRAIN_SEED + (8 if language else 5 if resume else 2) + pool_seed), pool,
                                    language=language, variants=variants, bare=bare)
    table = PromptTable(vlm, tok, gcfg.prompt_template, pool_caps) if prompt_table else None
    pool_seconds = time.time() - t0
    # two_weight > 1 draws two-object scenes that many times as often (relations are the hardest captions)
    draw_weight = torch.where(pool_two, two_weight, 1.0).double()
    losses, step = [], 0
    # named at the start: the checkpoints' in-progress entries and the final one share it
    stage_name = log.next_name(name + "_language") if language else name + ("_resumed" if resume else "")

    def entry():
        return {"seconds": time.time() - t0, "steps": step, "images": step * batch, "batch": batch, "losses": losses,
                "latent_pool": pool, "low_t_weight": low_t_weight, "pool_seconds": round(pool_seconds, 1),
                "prompt_template": gcfg.prompt_template, "num_groups": groups, "patch_size": gcfg.patch_size, "lr": lr,
                **({"caption_variants": variants} if language else {}), **({"pool_seed": pool_seed} if pool_seed else {}),
                **({"two_object_weight": two_weight} if two_weight != 1 else {}), **({"bare_captions": True} if bare else {}),
                **({"prompt_table": True} if prompt_table else {}), "schedule": "warmup 50 steps, cosine to 5% over the budget",
                **device_entry()}
    next_checkpoint = time.time() + 60 * checkpoint_minutes
    gen.train()
    while time.time() - t0 < budget:
        if checkpoint_minutes and time.time() > next_checkpoint:
            # a stopped run keeps its progress: --resume continues from the last checkpoint
            with on_cpu():
                save_stream_atomically(cpu_copy(gen), gen_dir)
            log.stage(stage_name, in_progress=True, **entry())
            gen.train()
            next_checkpoint = time.time() + 60 * checkpoint_minutes
        set_lr(opt, lr_at(step, (time.time() - t0) / budget, lr))
        pick = (torch.randint(len(pool_caps), (batch,), generator=g) if two_weight == 1
                else torch.multinomial(draw_weight, batch, replacement=True, generator=g))
        x1 = pool_x[pick]
        if table is not None:
            prompt = table.batch(pick, torch.randint(table.per_image, (batch,), generator=g))
        else:
            caps = [pool_caps[i][int(torch.randint(len(pool_caps[i]), (1,), generator=g))] for i in pick.tolist()]
            prompt = prompts.batch(caps)
        loss = gen_loss(gen, x1, prompt, null, g, low_t_weight=low_t_weight)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gen.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 20 == 0:
            losses.append((step, round(time.time() - t0, 1), float(loss)))
            print(f"{name} step {step} loss {float(loss):.4f}", flush=True)
    with on_cpu():
        save_stream_atomically(cpu_copy(gen), gen_dir)
    log.stage(stage_name, **entry())


def write_world(out):
    """<out>/world.json: what the engine checks inputs against (lib/model-world.ts): the words of the world's
    training text, and the images it knows (size, background, shape colours)."""
    world = {"vocabulary": shapes_language.vocabulary(),
             "image": {"width": shapes_world.IMAGE_SIZE, "height": shapes_world.IMAGE_SIZE,
                       "background": list(shapes_world.BACKGROUND),
                       "colours": {name: list(rgb) for name, rgb in shapes_world.COLOURS}}}
    with open(os.path.join(out, "world.json"), "w") as f:
        json.dump(world, f, indent=1)
        f.write("\n")


def world_entry(out, rel):
    """The manifest's "world" entry, where world.json has been written."""
    return {"world": rel} if os.path.exists(os.path.join(out, "world.json")) else {}


def main():
    a = train_options.parse(ROOT, ROPE_THETA)
    torch.set_num_threads(a.threads)
    use_device(a.device)
    if DEVICE.type == "cpu":
        warn_if_slow_blas()
    os.makedirs(a.out, exist_ok=True)
    log = Log(os.path.join(a.out, "training_log.json"))
    stages = a.stages.split(",")
    table = a.prompt_table or DEVICE.type != "cpu"
    if "world" in stages:   # first: the manifests written below name it
        write_world(a.out)
    if "tok" in stages:
        stage_tok(a.out, log)
    if "ae" in stages:
        stage_ae(a.out, log, a.minutes_ae)
    if "vocab" in stages:
        stage_vocab(a.out, log, a.vocab_words)
    if "vlm" in stages:
        stage_vlm(a.out, log, a.minutes_vlm, a.batch_vlm, a.lr_vlm, rope_theta=a.rope_theta_vlm, language=a.language,
                  workers=a.workers, anchor=a.anchor_prompts, two_weight=a.two_object_weight,
                  vision_depth=a.vision_depth, checkpoint_minutes=a.checkpoint_minutes, data_seed=a.vlm_seed,
                  rows_from=a.token_rows_from)
    if "vlm_vision" in stages:
        stage_vlm(a.out, log, a.minutes_vlm_vision, a.batch_vlm, a.lr_vlm_vision, vision_only=True, language=a.language,
                  workers=a.workers, two_weight=a.two_object_weight, vision_depth=a.vision_depth,
                  checkpoint_minutes=a.checkpoint_minutes, data_seed=a.vlm_seed)
    if "gen" in stages:
        stage_gen(a.out, os.path.join(a.out, "generator"), log, a.minutes_gen, 4, "gen", a.lr_gen, a.resume, a.patch_gen, a.batch_gen,
                  a.pool_gen, a.template_gen, a.low_t_gen, a.rope_theta_gen, a.language, a.caption_variants,
                  a.pool_seed, a.checkpoint_minutes, a.two_object_weight, table, a.bare_captions)
    if "vanilla" in stages:
        van = a.out.rstrip("/") + "-vanilla"
        stage_gen(a.out, os.path.join(van, "generator"), log, a.minutes_gen, 1, "vanilla", a.lr_gen, a.resume, a.patch_gen,
                  a.batch_gen, a.pool_gen, a.template_gen, a.low_t_gen, a.rope_theta_gen, a.language, a.caption_variants,
                  a.pool_seed, a.checkpoint_minutes, a.two_object_weight, table, a.bare_captions)
        with open(os.path.join(van, "latte_flow.json"), "w") as f:
            rel = os.path.relpath(a.out, van)
            json.dump({"format": "latte-flow", "format_version": 1, "vlm": f"{rel}/vlm", "generator": "generator",
                       "vae": f"{rel}/vae", "tokenizer": f"{rel}/vlm/tokenizer.json", **world_entry(a.out, f"{rel}/world.json")},
                      f, indent=2)
    with open(os.path.join(a.out, "latte_flow.json"), "w") as f:
        json.dump({"format": "latte-flow", "format_version": 1, "vlm": "vlm", "generator": "generator", "vae": "vae",
                   "tokenizer": "vlm/tokenizer.json", **world_entry(a.out, "world.json")}, f, indent=2)


if __name__ == "__main__":
    main()
