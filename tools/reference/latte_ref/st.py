"""Minimal safetensors reader/writer (no dependency on the `safetensors` package).

Debian bookworm ships no python3-safetensors, and the format is tiny:
    8 bytes   little-endian u64 N = header length
    N bytes   UTF-8 JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}
    rest      raw little-endian tensor data; offsets are relative to the end of the header.
We pad the header with spaces to a multiple of 8 (as the reference writer does) so data stays aligned,
and write tensors in sorted-name order, so the same tensors always give the same bytes.
"""
import json
import struct

import numpy as np
import torch

# safetensors dtype tag -> (torch dtype, numpy dtype used to move the bytes)
_DTYPES = {
    "F64": (torch.float64, np.float64),
    "F32": (torch.float32, np.float32),
    "F16": (torch.float16, np.float16),
    "BF16": (torch.bfloat16, np.int16),  # numpy has no bfloat16: move the raw 16-bit words
    "I64": (torch.int64, np.int64),
    "I32": (torch.int32, np.int32),
    "I16": (torch.int16, np.int16),
    "I8": (torch.int8, np.int8),
    "U8": (torch.uint8, np.uint8),
    "BOOL": (torch.bool, np.bool_),
}
_TAG = {td: tag for tag, (td, _) in _DTYPES.items()}


def _to_bytes(t):
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    arr = t.numpy()
    return arr.astype(arr.dtype.newbyteorder("<")).tobytes()


def save_file(tensors, path, metadata=None):
    """Write {name: tensor} to `path`. metadata: {str: str} (non-str values are JSON-encoded)."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in _TAG:
            raise TypeError(f"{name}: unsupported dtype {t.dtype}")
        b = _to_bytes(t)
        header[name] = {"dtype": _TAG[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    if metadata:
        header["__metadata__"] = {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True)
                                  for k, v in metadata.items()}
    hb = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def read_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n).decode("utf-8")), 8 + n


def load_file(path, names=None):
    """Read tensors (all, or those in `names`) -> ({name: tensor}, metadata dict)."""
    header, base = read_header(path)
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    with open(path, "rb") as f:
        for name, info in header.items():
            if names is not None and name not in names:
                continue
            td, nd = _DTYPES[info["dtype"]]
            b0, b1 = info["data_offsets"]
            f.seek(base + b0)
            raw = f.read(b1 - b0)
            arr = np.frombuffer(raw, dtype=np.dtype(nd).newbyteorder("<")).astype(nd, copy=True)
            t = torch.from_numpy(arr)
            if td == torch.bfloat16:
                t = t.view(torch.bfloat16)
            out[name] = t.reshape(info["shape"])
    return out, meta


def load_checkpoint_dir(directory):
    """Load every tensor of an HF-style checkpoint directory: its *.safetensors file(s), or the shards listed
    in *.safetensors.index.json ({"weight_map": {name: shard file}})."""
    import os
    idx = [p for p in os.listdir(directory) if p.endswith(".safetensors.index.json")]
    if idx:
        with open(os.path.join(directory, sorted(idx)[0])) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
    else:
        shards = sorted(p for p in os.listdir(directory) if p.endswith(".safetensors"))
    tensors = {}
    for s in shards:
        t, _ = load_file(os.path.join(directory, s))
        tensors.update(t)
    return tensors


def save_sharded(tensors, directory, max_shard_bytes, prefix="model"):
    """Write HF-style shards `{prefix}-0000i-of-0000n.safetensors` + `{prefix}.safetensors.index.json`."""
    import os
    shards, cur, size = [], {}, 0
    for name in sorted(tensors):
        nbytes = tensors[name].numel() * tensors[name].element_size()
        if cur and size + nbytes > max_shard_bytes:
            shards.append(cur)
            cur, size = {}, 0
        cur[name] = tensors[name]
        size += nbytes
    shards.append(cur)
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        fname = f"{prefix}-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, os.path.join(directory, fname), {"format": "pt"})
        for name, t in shard.items():
            weight_map[name] = fname
            total += t.numel() * t.element_size()
    with open(os.path.join(directory, f"{prefix}.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2, sort_keys=True)
