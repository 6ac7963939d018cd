"""A complete model directory (docs/checkpoint-format.md section 1) and the two user-facing tasks:
image + question -> answer, and prompt -> image."""
import json
import os

import numpy as np
import torch

from . import chat, flow, preprocess
from .dcae import AutoencoderDC
from .genstream import GenerationStream
from .tokenizer import Tokenizer
from .vlm import Qwen2VL

DEFAULT_MANIFEST = {"vlm": "vlm", "generator": "generator", "vae": "vae", "tokenizer": "vlm/tokenizer.json"}


class LatteFlow:
    def __init__(self, directory, need_generator=True):
        man = dict(DEFAULT_MANIFEST)
        path = os.path.join(directory, "latte_flow.json")
        if os.path.exists(path):
            with open(path) as f:
                m = json.load(f)
            if int(m.get("format_version", 1)) > 1:
                raise ValueError(f"unsupported latte_flow.json format_version {m['format_version']}")
            man.update({k: v for k, v in m.items() if k in DEFAULT_MANIFEST})
        part = lambda k: os.path.join(directory, man[k])          # noqa: E731
        self.vlm = Qwen2VL.from_pretrained(part("vlm"))
        self.tokenizer = Tokenizer(part("tokenizer"))
        self.pcfg = preprocess.load_preprocessor_config(os.path.join(part("vlm"), "preprocessor_config.json"))
        self.gen = GenerationStream.load(part("generator")) if need_generator else None
        self.vae = AutoencoderDC.load(part("vae")) if need_generator else None
        self.stop_ids = tuple(self.tokenizer.token_id(t) for t in chat.STOP_TOKENS if self.tokenizer.token_id(t) is not None)

    @torch.no_grad()
    def answer(self, images, question, max_new_tokens=64, **sampling):
        """images: list of uint8 [H, W, 3] arrays. Returns the decoded answer text."""
        pvs, grids = zip(*[preprocess.preprocess_image(im, self.pcfg) for im in images]) if images else ((), ())
        content = [{"type": "image"} for _ in images] + [{"type": "text", "text": question}]
        text = chat.render([{"role": "user", "content": content}])
        if images:
            text = chat.expand_image_pads(text, [g[0].tolist() for g in grids], self.pcfg["merge_size"])
        ids = torch.tensor(self.tokenizer.encode(text), dtype=torch.long)
        out = self.vlm.generate(ids, torch.cat(pvs) if images else None, torch.cat(grids) if images else None,
                                max_new_tokens, self.stop_ids, **sampling)
        return self.tokenizer.decode([t for t in out if t not in self.stop_ids])

    @torch.no_grad()
    def text_to_image(self, prompt, seed=0, steps=None, sampler=None, guidance=None, shift=None):
        """Returns uint8 [H, W, 3]."""
        cfg = self.gen.cfg
        kv = flow.encode_prompt(self.vlm, self.tokenizer, prompt, cfg.prompt_template)
        nkv = flow.encode_prompt(self.vlm, self.tokenizer, cfg.null_prompt, cfg.prompt_template)
        x = flow.generate_latent(self.gen, kv, nkv, seed, steps, sampler, guidance, shift)
        return flow.latent_to_uint8(self.vae.decoder, x, self.vae.scaling_factor)[0].numpy()


def write_ppm(path, img):
    """uint8 [H, W, 3] -> binary PPM (no image library needed)."""
    with open(path, "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (img.shape[1], img.shape[0]))
        f.write(np.ascontiguousarray(img, dtype=np.uint8).tobytes())


def read_image(path):
    """PPM (P6) natively; other formats through Pillow when it is installed."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"P6":
        parts = data.split(maxsplit=4)
        w, h = int(parts[1]), int(parts[2])
        return np.frombuffer(parts[4][:w * h * 3], np.uint8).reshape(h, w, 3).copy()
    from PIL import Image
    return np.asarray(Image.open(path).convert("RGB"))
