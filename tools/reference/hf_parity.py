"""Parity of the reference Qwen2-VL against Hugging Face transformers (fp32, CPU).

Run with a Python that has torch 2.x + transformers + tokenizers + pillow + jinja2 (not needed by CI):
    python3 -m venv /tmp/hfvenv && /tmp/hfvenv/bin/pip install torch transformers safetensors tokenizers pillow
    /tmp/hfvenv/bin/python tools/reference/hf_parity.py            # writes tools/reference/HF_PARITY.md
Checks, on several tiny random configs (odd image sizes, text only, multi-turn with two images, MHA +
untied head + sharded checkpoint): checkpoints written by either side load in the other; logits within
1e-4 relative (max |ours - hf| / max |hf|); identical greedy tokens; vision tower outputs; image
preprocessing (our PIL-exact bicubic vs Pillow bit for bit, pixel_values vs Qwen2VLImageProcessorPil);
tokenizer ids vs `tokenizers`; the chat template vs the checkpoint's Jinja template.
"""
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from latte_ref import chat, preprocess, tiny                       # noqa: E402
from latte_ref.tokenizer import Tokenizer                           # noqa: E402
from latte_ref.vlm import Qwen2VL                                   # noqa: E402

import transformers                                                 # noqa: E402
from PIL import Image                                               # noqa: E402
from tokenizers import Tokenizer as HFTokenizer                     # noqa: E402

# The chat template shipped with Qwen2-VL-*-Instruct (chat_template.json), images/text only.
QWEN2VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% for message in messages %}{% if loop.first and message['role'] "
    "!= 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>"
    "{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content or "
    "'image_url' in content %}{% set image_count.value = image_count.value + 1 %}<|vision_start|><|image_pad|>"
    "<|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

PCFG = {"min_pixels": 56 * 56, "max_pixels": 28 * 28 * 16, "patch_size": 14, "temporal_patch_size": 2,
        "merge_size": 2, "rescale_factor": 1 / 255, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711]}

LINES = []


def report(line):
    print(line)
    LINES.append(line)


def rand_image(seed, h, w):
    g = np.random.default_rng(seed)
    base = g.integers(0, 256, size=(h // 8 + 2, w // 8 + 2, 3)).astype(np.float64)   # smooth-ish content
    yy, xx = np.meshgrid(np.linspace(0, base.shape[0] - 1.01, h), np.linspace(0, base.shape[1] - 1.01, w), indexing="ij")
    img = base[yy.astype(int), xx.astype(int)] * 0.7 + g.integers(0, 77, size=(h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def check_bicubic():
    worst = 0
    for (h, w, H, W) in [(75, 131, 84, 140), (200, 90, 112, 56), (33, 47, 56, 56), (300, 301, 84, 84), (64, 64, 28, 112)]:
        img = rand_image(h * w, h, w)
        ours = preprocess.resize_bicubic(img, H, W)
        pil = np.asarray(Image.fromarray(img).resize((W, H), Image.BICUBIC, reducing_gap=None))
        worst = max(worst, int(np.abs(ours.astype(int) - pil.astype(int)).max()))
    report(f"- bicubic resize vs Pillow {Image.__version__} (5 size pairs, up and down): max |diff| = {worst} (uint8 levels)")
    return worst == 0


def check_preprocess():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    proc = Qwen2VLImageProcessorPil(min_pixels=PCFG["min_pixels"], max_pixels=PCFG["max_pixels"])
    worst, ok = 0.0, True
    for (h, w) in [(75, 131), (200, 90), (33, 47)]:
        img = rand_image(h + w, h, w)
        pv, grid = preprocess.preprocess_image(img, PCFG)
        hf = proc(images=[Image.fromarray(img)], return_tensors="np")
        ok &= list(grid[0]) == list(hf["image_grid_thw"][0]) and pv.shape == hf["pixel_values"].shape
        worst = max(worst, float(np.abs(pv.numpy() - hf["pixel_values"]).max()))
    report(f"- pixel_values vs Qwen2VLImageProcessorPil (75x131, 200x90, 33x47): grids equal = {ok}, max |diff| = {worst:.3g}")
    return ok and worst < 1e-5


def build_case(tmp, name, specials, vocab, **kw):
    sharded = kw.pop("sharded", False)
    cfg = tiny.tiny_qwen2vl_config(vocab, specials, **kw)
    d = os.path.join(tmp, name)
    if sharded:   # HF writes the checkpoint (sharded), we read it
        hcfg = transformers.Qwen2VLConfig.from_dict(cfg.to_hf_dict())
        torch.manual_seed(0)
        hf = transformers.Qwen2VLForConditionalGeneration(hcfg)
        tiny.randomize_(hf, 11, std=0.3)
        hf.save_pretrained(d, max_shard_size="40KB")
    else:         # we write the checkpoint, HF reads it
        ours = tiny.randomize_(Qwen2VL(cfg), 7, std=0.3)
        ours.save_pretrained(d)
    hf = transformers.Qwen2VLForConditionalGeneration.from_pretrained(d, attn_implementation="eager").eval()
    ours = Qwen2VL.from_pretrained(d)
    nshards = len([f for f in os.listdir(d) if f.endswith(".safetensors")])
    return cfg, ours, hf, nshards


def run_case(label, cfg, ours, hf, tok, messages, images, nshards):
    grids, pvs = [], []
    for img in images:
        pv, g = preprocess.preprocess_image(img, PCFG)
        pvs.append(pv)
        grids.append(g)
    text = chat.render(messages)
    if images:
        text = chat.expand_image_pads(text, [g[0].tolist() for g in grids], 2)
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    pv = torch.cat(pvs) if pvs else None
    grid = torch.cat(grids) if grids else None
    kw = {}
    if pv is not None:
        kw = {"pixel_values": pv, "image_grid_thw": grid,
              "mm_token_type_ids": (ids == cfg.image_token_id).int()[None]}
    with torch.no_grad():
        hl = hf(input_ids=ids[None], **kw).logits[0]
        ol, _ = ours.prefill(ids, pv, grid)
        rel = float((ol - hl).abs().max() / hl.abs().max())
        hgen = hf.generate(input_ids=ids[None], attention_mask=torch.ones_like(ids)[None], max_new_tokens=8,
                           min_new_tokens=8, do_sample=False, **kw)[0, ids.numel():].tolist()
        ogen = ours.generate(ids, pv, grid, max_new_tokens=8)
        vis = ""
        if pv is not None:
            hv = hf.model.visual(pv, grid_thw=grid)
            hv = hv.pooler_output if hasattr(hv, "pooler_output") else hv
            vrel = float((ours.visual(pv, grid) - hv).abs().max() / hv.abs().max())
            vis = f", vision rel {vrel:.2e}"
        kv = ""
        if pv is None:   # the generation stream's prompt K/V = the HF cache (post-RoPE) of a text prompt
            cache = hf(input_ids=ids[None], use_cache=True).past_key_values
            layers = [(c.keys, c.values) for c in cache.layers] if hasattr(cache, "layers") else list(cache)
            ours_kv = ours.prompt_kv(ids)
            krel = max(float((ok_.permute(0, 2, 1, 3) - hk).abs().max() / hk.abs().max())
                       for (ok_, _), (hk, _) in zip(ours_kv, layers))
            vrel_ = max(float((ov.permute(0, 2, 1, 3) - hv).abs().max() / hv.abs().max())
                        for (_, ov), (_, hv) in zip(ours_kv, layers))
            kv = f", prompt K/V vs HF cache rel {max(krel, vrel_):.2e}"
            rel = max(rel, krel, vrel_)
    ok = rel < 1e-4 and hgen == ogen
    report(f"- {label}: {ids.numel()} tokens, shards={nshards}: logits rel {rel:.2e}{vis}; greedy ours {ogen} "
           f"hf {hgen}{kv} -> {'OK' if ok else 'FAIL'}")
    return ok


def main():
    torch.set_num_threads(2)
    report(f"# HF parity (transformers {transformers.__version__}, torch {torch.__version__}, fp32 CPU)\n")
    ok = check_bicubic() & check_preprocess()
    with tempfile.TemporaryDirectory() as tmp:
        tj = os.path.join(tmp, "tokenizer.json")
        specials = tiny.write_tokenizer_json(tj, 40)
        tok, hftok = Tokenizer(tj), HFTokenizer.from_file(tj)
        vocab = hftok.get_vocab_size()
        samples = [tiny.SAMPLE_TEXT, "Héllo wörld  123 -- ok?\n\n x_y  ", chat.render([{"role": "user", "content": "hi"}])]
        same = all(tok.encode(s) == hftok.encode(s, add_special_tokens=False).ids for s in samples)
        import re as _re
        from latte_ref import tokenizer as _tk
        fallback = Tokenizer(tj)
        fallback.split_re = _re.compile(_tk._translate(_tk.QWEN2_PATTERN))   # the no-`regex` path (Debian CI)
        same_fb = all(fallback.encode(s) == hftok.encode(s, add_special_tokens=False).ids for s in samples)
        report(f"- tokenizer ids vs tokenizers {__import__('tokenizers').__version__} on {len(samples)} texts: "
               f"equal = {same} (with `regex`), {same_fb} (stdlib `re` fallback)")
        same &= same_fb
        import jinja2
        convs = [[{"role": "user", "content": "hello"}],
                 [{"role": "system", "content": "sys"}, {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what?"}]},
                  {"role": "assistant", "content": "a cat"}, {"role": "user", "content": [{"type": "text", "text": "and"}, {"type": "image"}]}]]
        tmpl = jinja2.Environment().from_string(QWEN2VL_TEMPLATE)
        same_t = all(chat.render(c) == tmpl.render(messages=c, add_generation_prompt=True) for c in convs)
        report(f"- chat template vs Qwen2-VL Jinja template: equal = {same_t}")
        ok &= same and same_t
        img_a, img_b = rand_image(1, 75, 131), rand_image(2, 200, 90)
        cases = [
            ("image 75x131 (-> 84x140, 15 image tokens), GQA 4:2, tied", {},
             [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "describe the image."}]}], [img_a]),
            ("text only", {"layers": 3},
             [{"role": "user", "content": "how many shapes are there?"}], []),
            ("multi-turn, two images (75x131, 200x90)", {"section": (4, 2, 2)},
             [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what colour is the square?"}]},
              {"role": "assistant", "content": "red"},
              {"role": "user", "content": [{"type": "text", "text": "and here?"}, {"type": "image"}]}], [img_a, img_b]),
            ("MHA 4:4, untied head, HF-written sharded checkpoint, image 33x47", {"kv_heads": 4, "tie": False, "sharded": True},
             [{"role": "user", "content": [{"type": "text", "text": "a small red circle?"}, {"type": "image"}]}], [rand_image(3, 33, 47)]),
        ]
        for i, (label, kw, msgs, imgs) in enumerate(cases):
            cfg, ours, hf, ns = build_case(tmp, f"case{i}", specials, vocab, **kw)
            ok &= run_case(label, cfg, ours, hf, tok, msgs, imgs, ns)
    report(f"\nRESULT: {'PASS' if ok else 'FAIL'}")
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "HF_PARITY.md")
    with open(out, "w") as f:
        f.write("\n".join(LINES) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
