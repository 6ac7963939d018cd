"""Qwen2-VL image preprocessing, numerically identical to HF's (slow, PIL-based) Qwen2VLImageProcessor.

    uint8 RGB [H, W, 3] -> smart_resize -> PIL-exact bicubic (uint8, fixed point) -> * rescale_factor
    (f64, then f32) -> (x - mean) / std (f32) -> patchify [grid_t*grid_h*grid_w, C*T*P*P], grid_thw.

The bicubic is re-implemented (Pillow's Resample.c algorithm: a = -0.5 cubic, kernel widened by the
downscale factor = antialiasing, coefficients in 22-bit fixed point, horizontal pass then vertical, each
pass rounded and clamped to uint8) because Debian's CI image has no PIL; hf_parity.py checks it against
Pillow bit for bit. The engine implements the same algorithm.
"""
import json
import math

import numpy as np
import torch

PRECISION_BITS = 22


def load_preprocessor_config(path):
    with open(path) as f:
        d = json.load(f)
    size = d.get("size") or {}
    return {
        "min_pixels": d.get("min_pixels", size.get("shortest_edge", 56 * 56)),
        "max_pixels": d.get("max_pixels", size.get("longest_edge", 28 * 28 * 1280)),
        "patch_size": d.get("patch_size", 14), "temporal_patch_size": d.get("temporal_patch_size", 2),
        "merge_size": d.get("merge_size", 2), "rescale_factor": d.get("rescale_factor", 1 / 255),
        "image_mean": d.get("image_mean", [0.48145466, 0.4578275, 0.40821073]),
        "image_std": d.get("image_std", [0.26862954, 0.26130258, 0.27577711]),
    }


def smart_resize(height, width, factor=28, min_pixels=56 * 56, max_pixels=28 * 28 * 1280):
    """Nearest size with both sides multiples of `factor` and area within [min_pixels, max_pixels],
    keeping the aspect ratio as far as possible. Python's round() is round-half-even, as in HF."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError("aspect ratio must be below 200")
    h = round(height / factor) * factor
    w = round(width / factor) * factor
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def _cubic(x):
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _coeffs(in_size, out_size):
    """Pillow precompute_coeffs + normalize_coeffs_8bpc -> (xmin [out], int taps [out, ksize])."""
    scale = in_size / out_size
    fscale = max(scale, 1.0)
    support = 2.0 * fscale
    ksize = int(math.ceil(support)) * 2 + 1
    xmins = np.zeros(out_size, np.int64)
    taps = np.zeros((out_size, ksize), np.int64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)          # C (int) truncates toward zero
        xmax = min(int(center + support + 0.5), in_size) - xmin
        ss = 1.0 / fscale                                     # Pillow multiplies by the reciprocal
        w = [_cubic((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = sum(w)
        for x in range(xmax):
            k = w[x] / ww if ww != 0.0 else w[x]
            taps[xx, x] = int(-0.5 + k * (1 << PRECISION_BITS)) if k < 0 else int(0.5 + k * (1 << PRECISION_BITS))
        xmins[xx] = xmin
    return xmins, taps


def _pass(img, axis, out_size):
    """One resampling pass along `axis` of an int64 [H, W, C] image, with Pillow's rounding and clip8."""
    img = np.moveaxis(img, axis, 0)
    in_size = img.shape[0]
    xmins, taps = _coeffs(in_size, out_size)
    acc = np.full((out_size,) + img.shape[1:], 1 << (PRECISION_BITS - 1), np.int64)
    for j in range(taps.shape[1]):
        idx = np.minimum(xmins + j, in_size - 1)             # taps past xmax are 0, index just kept valid
        acc += taps[:, j].reshape((-1,) + (1,) * (img.ndim - 1)) * img[idx]
    out = np.clip(acc >> PRECISION_BITS, 0, 255)
    return np.moveaxis(out, 0, axis)


def resize_bicubic(img, height, width):
    """uint8 [H, W, C] -> uint8 [height, width, C], same bytes as PIL Image.resize(BICUBIC)."""
    x = img.astype(np.int64)
    if width != img.shape[1]:
        x = _pass(x, 1, width)
    if height != img.shape[0]:
        x = _pass(x, 0, height)
    return x.astype(np.uint8)


def patchify(chw, patch, tpatch, merge):
    """f32 [C, H, W] still image -> [grid_t*grid_h*grid_w, C*T*P*P] in HF's order: the frame repeated
    T times; patches ordered by merge window (row-major), then within the window row-major; inside a
    patch (channel, frame, y, x)."""
    frames = np.repeat(chw[None], tpatch, axis=0)                    # [T, C, H, W]
    c, h, w = chw.shape
    gt, gh, gw = 1, h // patch, w // patch
    x = frames.reshape(gt, tpatch, c, gh // merge, merge, patch, gw // merge, merge, patch)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(gt * gh * gw, c * tpatch * patch * patch), (gt, gh, gw)


def preprocess_image(img, pcfg):
    """uint8 RGB [H, W, 3] -> (pixel_values f32 tensor [N, C*T*P*P], grid_thw long tensor [1, 3])."""
    factor = pcfg["patch_size"] * pcfg["merge_size"]
    h, w = smart_resize(img.shape[0], img.shape[1], factor, pcfg["min_pixels"], pcfg["max_pixels"])
    x = resize_bicubic(img, h, w)
    x = (x.astype(np.float64) * pcfg["rescale_factor"]).astype(np.float32)
    mean = np.array(pcfg["image_mean"], np.float32)
    std = np.array(pcfg["image_std"], np.float32)
    x = ((x - mean) / std).transpose(2, 0, 1)                       # [C, H, W]
    flat, grid = patchify(np.ascontiguousarray(x), pcfg["patch_size"], pcfg["temporal_patch_size"],
                          pcfg["merge_size"])
    return torch.from_numpy(np.ascontiguousarray(flat)), torch.tensor([grid], dtype=torch.long)
